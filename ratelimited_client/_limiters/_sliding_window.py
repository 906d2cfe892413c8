"""Strict sliding-window log: never more than ``limit`` units in any period."""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._rate import Rate
    from ._base import Ticket

__all__ = ["SlidingWindowLimiter"]


class _Entry:
    """Private. One admitted acquisition; ``at`` is mutable so settling can re-date it."""

    __slots__ = ("at", "cost", "pending")

    def __init__(self, at: float, cost: float, *, pending: bool) -> None:
        self.at = at
        self.cost = cost
        self.pending = pending


class SlidingWindowLimiter:
    """Private. Admits ``cost`` at ``now`` iff the units dated in ``(now - period, now]``
    plus the pending ones plus ``cost`` fit in ``limit``.

    An entry dated ``t`` stops counting at ``t + period`` exactly, so any
    half-open interval of one period holds at most ``limit`` units. Bursts up
    to ``limit`` are admitted at once, not smoothed.

    The log is kept in the order entries were dated. Settling may move an
    entry's date later in place; pruning and waits then read the log
    conservatively (an entry behind a later-dated one expires with it), which
    can only delay, never over-admit.
    """

    __slots__ = ("_last_now", "_log", "_pending", "_used", "limit", "period")

    def __init__(self, rate: Rate) -> None:
        self.limit: float = rate.limit
        self.period: float = rate.period
        self._log: deque[_Entry] = deque()
        self._used = 0.0  # sum of costs in _log
        self._pending = 0.0  # sum of costs acquired pending and not yet settled
        self._last_now = -math.inf

    @property
    def max_cost(self) -> float:
        return self.limit

    def _prune(self, now: float) -> float:
        # Time never runs backwards for the state machine, whatever the caller passes.
        if now < self._last_now:
            now = self._last_now
        self._last_now = now
        log = self._log
        horizon = now - self.period
        while log and log[0].at <= horizon:
            self._used -= log.popleft().cost
        if not log:
            self._used = 0.0  # no float drift when empty
        return now

    def wait_time(self, now: float, cost: float) -> float:
        now = self._prune(now)
        excess = self._used + self._pending + cost - self.limit
        if excess <= 1e-9:
            return 0.0
        if self._pending + cost > self.limit + 1e-9:
            return math.inf  # even an empty log leaves no room: wait for a settle
        freed = 0.0
        latest = -math.inf
        for entry in self._log:
            latest = max(latest, entry.at)
            freed += entry.cost
            if freed >= excess - 1e-9:
                return max(0.0, latest + self.period - now)
        return math.inf  # unreachable while the sums are consistent

    def acquire(self, now: float, cost: float, *, pending: bool) -> Ticket:
        now = self._prune(now)
        entry = _Entry(now, cost, pending=pending)
        if pending:
            self._pending += cost
        else:
            self._log.append(entry)
            self._used += cost
        return entry

    def settle(self, ticket: Ticket, at: float) -> None:
        assert isinstance(ticket, _Entry)  # noqa: S101 - internal invariant
        if ticket.pending:
            # Settled at the caller's "now", which is not before any date in the log.
            ticket.pending = False
            self._pending -= ticket.cost
            ticket.at = max(at, self._last_now)
            self._log.append(ticket)
            self._used += ticket.cost
        elif at > ticket.at:
            ticket.at = at  # if already pruned this changes nothing

    def used(self, now: float) -> float:
        self._prune(now)
        return self._used + self._pending

    def is_idle(self, now: float) -> bool:
        self._prune(now)
        return not self._log and self._pending <= 0

    def __repr__(self) -> str:
        return (
            f"<SlidingWindowLimiter {self.limit:g}/{self.period:g}s "
            f"used={self._used:g} pending={self._pending:g}>"
        )
