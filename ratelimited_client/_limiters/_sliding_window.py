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


class _Window:
    """Private. One rate's view of the shared log: the first entry it still counts
    (``head``) and the units dated from there on (``used``)."""

    __slots__ = ("head", "limit", "period", "used")

    def __init__(self, rate: Rate) -> None:
        self.limit: float = rate.limit
        self.period: float = rate.period
        self.head = 0
        self.used = 0.0


class SlidingWindowLimiter:
    """Private. Admits ``cost`` at ``now`` iff, for each of its rates, the units dated in
    ``(now - period, now]`` plus the pending ones plus ``cost`` fit in ``limit``.

    An entry dated ``t`` stops counting at ``t + period`` exactly, so any
    half-open interval of one period holds at most ``limit`` units. Bursts up
    to ``limit`` are admitted at once, not smoothed.

    The log is kept in the order entries were dated, as two lists (dates and
    costs); a dated ticket is its entry's sequence number, so the log holds
    nothing the garbage collector has to walk (a window of 50,000 a minute keeps
    50,000 entries for a minute). Settling may move an entry's date later in
    place; pruning and waits then read the log conservatively (an entry behind a
    later-dated one expires with it), which can only delay, never over-admit.

    Several rates (2 per second and 100 per minute) share one log, each reading
    it from its own ``head``: every admission is dated and re-dated alike for all
    of them, so this is exactly a composite of one limiter per rate, with one
    entry, one pruning pass and one settle per request instead of one per rate.
    """

    __slots__ = (
        "_at",
        "_costs",
        "_last_now",
        "_pending",
        "_seq0",
        "_windows",
    )

    def __init__(self, rate: Rate, *more: Rate) -> None:
        # The longest period first: its head is never ahead of another's (a longer
        # period expires less of the same log at the same ``now``), so the entries
        # before it are expired for every rate.
        rates = sorted((rate, *more), key=lambda r: r.period, reverse=True)
        self._windows = tuple(_Window(r) for r in rates)
        self._at: list[float] = []  # dates, in the order admitted
        self._costs: list[float] = []
        self._seq0 = 0  # the sequence number of _at[0]
        self._pending = 0.0  # sum of costs acquired pending and not yet settled
        self._last_now = -math.inf

    @property
    def max_cost(self) -> float:
        return min(window.limit for window in self._windows)

    def _prune(self, now: float) -> float:
        # Time never runs backwards for the state machine, whatever the caller passes.
        if now < self._last_now:
            now = self._last_now
        self._last_now = now
        at = self._at
        end = len(at)
        moved = False
        for window in self._windows:
            head = window.head
            horizon = now - window.period
            if head < end and at[head] <= horizon:
                costs = self._costs
                used = window.used
                while head < end and at[head] <= horizon:
                    used -= costs[head]
                    head += 1
                window.head = head
                window.used = 0.0 if head == end else used  # no float drift when empty
                moved = True
        if moved:
            first = self._windows[0].head  # the least head: see ``__init__``
            if first == end:
                at.clear()
                self._costs.clear()
                self._seq0 += first
                for window in self._windows:
                    window.head = 0
            elif first >= _COMPACT and 2 * first >= end:
                del at[:first]
                del self._costs[:first]
                self._seq0 += first
                for window in self._windows:
                    window.head -= first
        return now

    def _append(self, at: float, cost: float) -> int:
        # Also inline in ``try_acquire``: a change here goes there too.
        self._at.append(at)
        self._costs.append(cost)
        for window in self._windows:
            window.used += cost
        return self._seq0 + len(self._at) - 1

    def wait_time(self, now: float, cost: float) -> float:
        now = self._prune(now)
        pending = self._pending
        wait = 0.0
        for window in self._windows:
            excess = window.used + pending + cost - window.limit
            if excess <= 1e-9:
                continue
            if pending + cost > window.limit + 1e-9:
                return math.inf  # even an empty log leaves no room: wait for a settle
            wait = max(wait, self._wait_for(window, excess, now))
        return wait

    def _wait_for(self, window: _Window, excess: float, now: float) -> float:
        """Seconds until ``excess`` units of ``window`` have expired."""
        at, costs = self._at, self._costs
        freed = 0.0
        latest = -math.inf
        for index in range(window.head, len(at)):
            if at[index] > latest:
                latest = at[index]
            freed += costs[index]
            if freed >= excess - 1e-9:
                return max(0.0, latest + window.period - now)
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
        pending = self._pending
        windows = self._windows
        for window in windows:
            if window.used + pending + cost - window.limit > 1e-9:
                return None
        # ``_append`` inline: the throttle's fast path takes every request through here.
        at = self._at
        at.append(now)
        self._costs.append(cost)
        for window in windows:
            window.used += cost
        return self._seq0 + len(at) - 1

    def settle(self, ticket: Ticket, at: float) -> None:
        if isinstance(ticket, int):  # dated: its sequence number
            index = ticket - self._seq0
            # An entry every rate has expired is gone: nothing to re-date (one that only
            # shorter periods expired is behind their heads, never read by them again).
            if index >= self._windows[0].head and at > self._at[index]:
                self._at[index] = at
            return
        assert isinstance(ticket, _Pending)  # noqa: S101 - internal invariant
        if not ticket.settled:
            # Settled at the caller's "now", which is not before any date in the log.
            ticket.settled = True
            self._pending -= ticket.cost
            self._append(max(at, self._last_now), ticket.cost)

    def used(self, now: float) -> float:
        self._prune(now)
        # The busiest rate, as a fraction would mislead across different limits.
        return max(window.used for window in self._windows) + self._pending

    def room(self, now: float) -> float:
        self._prune(now)
        return min(
            max(0.0, window.limit - (window.used + self._pending)) for window in self._windows
        )

    def is_idle(self, now: float) -> bool:
        self._prune(now)
        return self._windows[0].head == len(self._at) and self._pending <= 0

    def __repr__(self) -> str:
        rates = ", ".join(f"{window.limit:g}/{window.period:g}s" for window in self._windows)
        used = max(window.used for window in self._windows)
        return f"<SlidingWindowLimiter {rates} used={used:g} pending={self._pending:g}>"
