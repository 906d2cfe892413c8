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

    ``tat`` and ``last_now`` are read and written in place by the throttle's fast
    path (``Throttle.acquire`` and ``ThrottleCore.settle_permit``), which repeats
    :meth:`try_take` and :meth:`settle_dated` inline to save two calls per request;
    a test holds the two to the same decisions.
    """

    __slots__ = ("burst", "interval", "last_now", "pending", "tat")

    def __init__(self, rate: Rate, burst: float) -> None:
        self.interval = rate.period / rate.limit
        self.burst = float(burst)
        self.tat = -math.inf
        self.pending = 0.0
        self.last_now = -math.inf

    @property
    def max_cost(self) -> float:
        return self.burst

    def _now(self, now: float) -> float:
        if now < self.last_now:
            now = self.last_now
        self.last_now = now
        return now

    def wait_time(self, now: float, cost: float) -> float:
        now = self._now(now)
        if self.pending + cost > self.burst + 1e-9:
            return math.inf
        base = max(self.tat, now) + self.pending * self.interval
        allow_at = base + (cost - self.burst) * self.interval
        return max(0.0, allow_at - now) if allow_at - now > 1e-9 else 0.0

    def acquire(self, now: float, cost: float, *, pending: bool) -> Ticket:
        now = self._now(now)
        if pending:
            self.pending += cost
            return _Grant(now, cost, pending=True)
        self.tat = max(self.tat, now) + cost * self.interval
        return _Grant(now, cost, pending=False)

    def try_take(self, now: float, cost: float) -> bool:
        """``wait_time`` and a dated ``acquire`` in one step (the throttle's fast path):
        take ``cost`` at ``now`` and return True if it fits now, else change nothing.
        Settle with :meth:`settle_dated`."""
        if now < self.last_now:
            now = self.last_now
        else:
            self.last_now = now
        if self.pending:
            return False
        tat = self.tat
        base = tat if tat > now else now
        if base + (cost - self.burst) * self.interval - now > 1e-9:
            return False
        self.tat = base + cost * self.interval
        return True

    def try_acquire(self, now: float, cost: float) -> Ticket | None:
        if not self.try_take(now, cost):
            return None
        return _Grant(self.last_now, cost, pending=False)

    def settle_dated(self, sent_at: float, cost: float, at: float) -> None:
        """Settle a unit taken by :meth:`try_take` at ``sent_at`` (see ``settle``)."""
        later = (at if at > sent_at else sent_at) + cost * self.interval
        if later > self.tat:
            self.tat = later

    def settle(self, ticket: Ticket, at: float) -> None:
        assert isinstance(ticket, _Grant)  # noqa: S101 - internal invariant
        at = max(at, ticket.at)
        if ticket.pending:
            ticket.pending = False
            self.pending -= ticket.cost
            self.tat = max(self.tat, self._now(at)) + ticket.cost * self.interval
        else:
            # The server's schedule runs at least one emission past the arrival.
            self.tat = max(self.tat, at + ticket.cost * self.interval)

    def used(self, now: float) -> float:
        now = self._now(now)
        backlog = max(0.0, self.tat - now) / self.interval
        return backlog + self.pending

    def room(self, now: float) -> float:
        return max(0.0, self.burst - self.used(now))

    def is_idle(self, now: float) -> bool:
        now = self._now(now)
        return self.tat <= now and self.pending <= 0

    def __repr__(self) -> str:
        return (
            f"<GCRALimiter interval={self.interval:g}s burst={self.burst:g} "
            f"pending={self.pending:g}>"
        )
