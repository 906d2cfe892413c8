"""Token bucket as GCRA (generic cell rate algorithm): smooth rate, explicit burst."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._rate import Rate
    from ._base import Ticket

__all__ = ["GCRALimiter"]


class _Grant:
    """Private. A GCRA acquisition: when it was taken, and whether it is still pending."""

    __slots__ = ("at", "cost", "pending")

    def __init__(self, at: float, cost: float, *, pending: bool) -> None:
        self.at = at
        self.cost = cost
        self.pending = pending


class GCRALimiter:
    """Private. A bucket of ``burst`` units refilled at ``rate``, kept as one number.

    The state is the theoretical arrival time ``tat``: with emission interval
    ``T = period / limit``, ``cost`` is admitted at ``now`` iff
    ``max(tat, now) + cost*T - burst*T <= now``. In any interval of length ``d``
    it admits at most ``burst + d / T`` units; pick the sliding window where an
    upstream counts strictly per period.

    Pending units (latency-proof mode) are counted as if sent at every moment
    until settled; settling dates them at the response.
    """

    __slots__ = ("_last_now", "_pending", "_tat", "burst", "interval")

    def __init__(self, rate: Rate, burst: float) -> None:
        self.interval = rate.period / rate.limit
        self.burst = float(burst)
        self._tat = -math.inf
        self._pending = 0.0
        self._last_now = -math.inf

    @property
    def max_cost(self) -> float:
        return self.burst

    def _now(self, now: float) -> float:
        if now < self._last_now:
            now = self._last_now
        self._last_now = now
        return now

    def wait_time(self, now: float, cost: float) -> float:
        now = self._now(now)
        if self._pending + cost > self.burst + 1e-9:
            return math.inf
        base = max(self._tat, now) + self._pending * self.interval
        allow_at = base + (cost - self.burst) * self.interval
        return max(0.0, allow_at - now) if allow_at - now > 1e-9 else 0.0

    def acquire(self, now: float, cost: float, *, pending: bool) -> Ticket:
        now = self._now(now)
        if pending:
            self._pending += cost
            return _Grant(now, cost, pending=True)
        self._tat = max(self._tat, now) + cost * self.interval
        return _Grant(now, cost, pending=False)

    def settle(self, ticket: Ticket, at: float) -> None:
        assert isinstance(ticket, _Grant)  # noqa: S101 - internal invariant
        at = max(at, ticket.at)
        if ticket.pending:
            ticket.pending = False
            self._pending -= ticket.cost
            self._tat = max(self._tat, self._now(at)) + ticket.cost * self.interval
        else:
            # The server's schedule runs at least one emission past the arrival.
            self._tat = max(self._tat, at + ticket.cost * self.interval)

    def used(self, now: float) -> float:
        now = self._now(now)
        backlog = max(0.0, self._tat - now) / self.interval
        return backlog + self._pending

    def is_idle(self, now: float) -> bool:
        now = self._now(now)
        return self._tat <= now and self._pending <= 0

    def __repr__(self) -> str:
        return (
            f"<GCRALimiter interval={self.interval:g}s burst={self.burst:g} "
            f"pending={self._pending:g}>"
        )
