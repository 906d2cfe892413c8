"""The queue of one bucket: highest priority first, first come first served within a
priority, and no request older than the promotion age left behind.

One FIFO deque per priority level in use, and the levels in descending order
(a handful, in practice: pushing is O(1) plus an insertion among the levels,
choosing the next is O(levels)). With one priority, as by default, it is the
single deque the bucket always had. Cancelled waiters stay where they are until
they reach the front of their level (lazily purged), so leaving is O(1).

Starvation is bounded: a waiter that has waited ``promote_after`` seconds goes
before every priority, the oldest of those first (each level's front is its oldest).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._waiting import _Waiter

__all__ = ["BucketQueue"]


class BucketQueue:
    """Private. Live waiters by priority (see the module)."""

    __slots__ = ("_levels", "_order", "live_by_priority")

    def __init__(self) -> None:
        self._levels: dict[int, deque[_Waiter]] = {}
        self._order: list[int] = []  # the levels in use, negated: ascending is highest first
        # Waiters not cancelled, per priority (a level's deque may hold cancelled ones).
        self.live_by_priority: dict[int, int] = {}

    def push(self, waiter: _Waiter) -> None:
        priority = waiter.priority
        level = self._levels.get(priority)
        if level is None:
            level = self._levels[priority] = deque()
            bisect.insort(self._order, -priority)
        level.append(waiter)
        self.live_by_priority[priority] = self.live_by_priority.get(priority, 0) + 1

    def leave(self, waiter: _Waiter) -> None:
        """``waiter`` is admitted or gives up: it no longer counts. Taken out now if
        it is at the front of its level (the head always is), else skipped later."""
        priority = waiter.priority
        left = self.live_by_priority[priority] - 1
        if left:
            self.live_by_priority[priority] = left
        else:
            del self.live_by_priority[priority]
        waiter.cancelled = True
        level = self._levels.get(priority)
        if level is not None:
            self._purge(priority, level)

    def _purge(self, priority: int, level: deque[_Waiter]) -> None:
        while level and level[0].cancelled:
            level.popleft()
        if not level:
            del self._levels[priority]
            self._order.remove(-priority)

    def remove(self, waiter: _Waiter) -> None:
        """Take ``waiter`` out wherever it is (the blocking throttle: O(level))."""
        level = self._levels.get(waiter.priority)
        if level is not None and waiter in level:
            level.remove(waiter)
            if not waiter.cancelled:
                waiter.cancelled = True
                left = self.live_by_priority[waiter.priority] - 1
                if left:
                    self.live_by_priority[waiter.priority] = left
                else:
                    del self.live_by_priority[waiter.priority]
            if not level:
                del self._levels[waiter.priority]
                self._order.remove(-waiter.priority)

    def top(self, now: float, promote_after: float | None) -> _Waiter | None:
        """The waiter that goes next: the oldest overdue one (waited ``promote_after``
        or longer), else the first of the highest priority."""
        order = self._order
        if not order:
            return None
        levels = self._levels
        first = levels[-order[0]][0]  # fronts are live: purged on every leave
        if promote_after is None or len(order) == 1:
            return first
        oldest = min((levels[-negated][0] for negated in order), key=_since)
        if oldest is not first and now - oldest.since >= promote_after:
            return oldest
        return first

    def next_promotion(self, now: float, promote_after: float | None) -> float:
        """When ``top`` may next change by age alone (``math.inf``: not by age): the
        first moment a waiter of a lower priority becomes overdue. Once one is, the
        oldest overdue waiter stays first until it leaves (later ones are younger)."""
        order = self._order
        if promote_after is None or len(order) < 2:
            return math.inf
        levels = self._levels
        soonest = math.inf
        for negated in order[1:]:
            due = levels[-negated][0].since + promote_after
            if due <= now:
                return math.inf
            soonest = min(soonest, due)
        return soonest

    def __len__(self) -> int:
        return sum(self.live_by_priority.values())


def _since(waiter: _Waiter) -> float:
    return waiter.since
