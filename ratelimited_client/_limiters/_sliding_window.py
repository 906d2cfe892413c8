"""Strict sliding-window log: never more than ``limit`` units in any period."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from .._rate import Rate
    from ._base import Ticket

__all__ = ["SlidingWindowLimiter"]

# The log drops its pruned front once at least this many entries (and half of it)
# have expired: amortised O(1), and no unbounded growth.
_COMPACT: Final = 256


class _Pending:
    """Private. A latency-proof acquisition: counted from ``acquire`` until settled."""

    __slots__ = ("cost", "settled")

    def __init__(self, cost: float) -> None:
        self.cost = cost
        self.settled = False


class SlidingWindowLimiter:
    """Private. Admits ``cost`` at ``now`` iff the units dated in ``(now - period, now]``
    plus the pending ones plus ``cost`` fit in ``limit``.

    An entry dated ``t`` stops counting at ``t + period`` exactly, so any
    half-open interval of one period holds at most ``limit`` units. Bursts up
    to ``limit`` are admitted at once, not smoothed.

    The log is kept in the order entries were dated, as two lists (dates and
    costs) read from ``_head``; a dated ticket is its entry's sequence number,
    so the log holds nothing the garbage collector has to walk (a window of
    50,000 a minute keeps 50,000 entries for a minute). Settling may move an
    entry's date later in place; pruning and waits then read the log
    conservatively (an entry behind a later-dated one expires with it), which
    can only delay, never over-admit.
    """

    __slots__ = (
        "_at",
        "_costs",
        "_head",
        "_last_now",
        "_pending",
        "_seq0",
        "_used",
        "limit",
        "period",
    )

    def __init__(self, rate: Rate) -> None:
        self.limit: float = rate.limit
        self.period: float = rate.period
        self._at: list[float] = []  # dates, in the order admitted
        self._costs: list[float] = []
        self._head = 0  # the first entry not yet expired
        self._seq0 = 0  # the sequence number of _at[0]
        self._used = 0.0  # sum of costs from _head on
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
        at = self._at
        head = self._head
        horizon = now - self.period
        if head < len(at) and at[head] <= horizon:
            costs = self._costs
            used = self._used
            end = len(at)
            while head < end and at[head] <= horizon:
                used -= costs[head]
                head += 1
            if head == end:
                at.clear()
                costs.clear()
                self._seq0 += head
                head = 0
                used = 0.0  # no float drift when empty
            elif head >= _COMPACT and 2 * head >= end:
                del at[:head]
                del costs[:head]
                self._seq0 += head
                head = 0
            self._head = head
            self._used = used
        return now

    def _append(self, at: float, cost: float) -> int:
        self._at.append(at)
        self._costs.append(cost)
        self._used += cost
        return self._seq0 + len(self._at) - 1

    def wait_time(self, now: float, cost: float) -> float:
        now = self._prune(now)
        excess = self._used + self._pending + cost - self.limit
        if excess <= 1e-9:
            return 0.0
        if self._pending + cost > self.limit + 1e-9:
            return math.inf  # even an empty log leaves no room: wait for a settle
        at, costs = self._at, self._costs
        freed = 0.0
        latest = -math.inf
        for index in range(self._head, len(at)):
            if at[index] > latest:
                latest = at[index]
            freed += costs[index]
            if freed >= excess - 1e-9:
                return max(0.0, latest + self.period - now)
        return math.inf  # unreachable while the sums are consistent

    def acquire(self, now: float, cost: float, *, pending: bool) -> Ticket:
        # Called right after ``wait_time`` at the same ``now`` (the protocol's rule),
        # which pruned the log for it already.
        if now != self._last_now:
            now = self._prune(now)
        if pending:
            self._pending += cost
            return _Pending(cost)
        return self._append(now, cost)

    def try_acquire(self, now: float, cost: float) -> Ticket | None:
        now = self._prune(now)
        if self._used + self._pending + cost - self.limit > 1e-9:
            return None
        return self._append(now, cost)

    def settle(self, ticket: Ticket, at: float) -> None:
        if isinstance(ticket, _Pending):
            if not ticket.settled:
                # Settled at the caller's "now", which is not before any date in the log.
                ticket.settled = True
                self._pending -= ticket.cost
                self._append(max(at, self._last_now), ticket.cost)
            return
        assert isinstance(ticket, int)  # noqa: S101 - internal invariant
        index = ticket - self._seq0
        if index >= self._head and at > self._at[index]:
            self._at[index] = at  # an expired entry is gone: nothing to re-date

    def used(self, now: float) -> float:
        self._prune(now)
        return self._used + self._pending

    def room(self, now: float) -> float:
        return max(0.0, self.limit - self.used(now))

    def is_idle(self, now: float) -> bool:
        self._prune(now)
        return self._head == len(self._at) and self._pending <= 0

    def __repr__(self) -> str:
        return (
            f"<SlidingWindowLimiter {self.limit:g}/{self.period:g}s "
            f"used={self._used:g} pending={self._pending:g}>"
        )
