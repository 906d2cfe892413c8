"""The queue of one bucket: highest priority first; within a priority, each tenant
its weighted share (start-time fair queuing); first come first served within a
tenant; and no request older than the promotion age left behind.

Each priority level in use holds one FIFO deque per tenant in it (a "lane"),
and the levels are kept in descending order (a handful, in practice). A
waiter's start tag is ``max(level's virtual time, its lane's last finish)``;
its finish adds ``cost / weight``; the level serves the lowest start tag and its
virtual time becomes that tag. Under contention the tenants' admissions follow
their weights; a tenant alone goes at the whole rate; an idle tenant banks no
credit. With one tenant (the default, ``None``) a level is the single FIFO deque
it always was.

A tenant over its own cap (``ready`` says how long until it may go) is passed
over, so it never blocks the others. Starvation is bounded: a waiter that has
waited ``promote_after`` seconds goes before every priority and tenant, the oldest
first (each lane's front is its oldest). Cancelled waiters stay where they are
until they reach the front of their lane (lazily purged), so leaving is O(1).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Iterator, Mapping

    from ._waiting import _Waiter

    #: Seconds until a waiter's tenant's own cap lets it go (0: now).
    Ready = Callable[[_Waiter], float]

__all__ = ["BucketQueue"]

_K = TypeVar("_K", bound="Hashable")


class _Level:
    """Private. One priority's waiters: a FIFO lane per tenant, served fairly."""

    __slots__ = ("finish", "lanes", "vtime")

    def __init__(self) -> None:
        self.lanes: dict[Hashable, deque[_Waiter]] = {}
        self.finish: dict[Hashable, float] = {}  # each lane's last finish tag
        self.vtime = 0.0

    def heads(self) -> Iterator[_Waiter]:
        for lane in self.lanes.values():
            yield lane[0]  # fronts are live: purged on every leave


class BucketQueue:
    """Private. Live waiters by priority and tenant (see the module)."""

    __slots__ = ("_levels", "_order", "live_by_priority", "live_by_tenant", "weights")

    def __init__(self, weights: Mapping[Hashable, float] | None = None) -> None:
        self._levels: dict[int, _Level] = {}
        self._order: list[int] = []  # the levels in use, negated: ascending is highest first
        self.weights = weights or {}  # a tenant's weight (1 if absent)
        # Waiters not cancelled, per priority and per tenant.
        self.live_by_priority: dict[int, int] = {}
        self.live_by_tenant: dict[Hashable, int] = {}

    def push(self, waiter: _Waiter) -> None:
        priority, tenant = waiter.priority, waiter.tenant
        level = self._levels.get(priority)
        if level is None:
            level = self._levels[priority] = _Level()
            bisect.insort(self._order, -priority)
        lane = level.lanes.get(tenant)
        if lane is None:
            lane = level.lanes[tenant] = deque()
            start = level.vtime
        else:
            start = max(level.vtime, level.finish[tenant])
        waiter.tag = start
        level.finish[tenant] = start + waiter.cost / self.weights.get(tenant, 1.0)
        lane.append(waiter)
        _count(self.live_by_priority, priority, 1)
        _count(self.live_by_tenant, tenant, 1)

    def leave(self, waiter: _Waiter) -> None:
        """``waiter`` is admitted or gives up: it no longer counts. Taken out now if
        it is at the front of its lane (the head always is), else skipped later."""
        _count(self.live_by_priority, waiter.priority, -1)
        _count(self.live_by_tenant, waiter.tenant, -1)
        waiter.cancelled = True
        level = self._levels.get(waiter.priority)
        if level is None:
            return
        lane = level.lanes.get(waiter.tenant)
        if lane is not None and lane[0] is waiter:
            level.vtime = max(level.vtime, waiter.tag)  # served (or gone): time moves on
        self._purge(waiter.priority, level, waiter.tenant)

    def _purge(self, priority: int, level: _Level, tenant: Hashable) -> None:
        lane = level.lanes.get(tenant)
        if lane is None:
            return
        while lane and lane[0].cancelled:
            lane.popleft()
        if not lane:
            del level.lanes[tenant]
            del level.finish[tenant]
            if not level.lanes:
                del self._levels[priority]
                self._order.remove(-priority)

    def remove(self, waiter: _Waiter) -> None:
        """Take ``waiter`` out wherever it is (the blocking throttle: O(lane))."""
        level = self._levels.get(waiter.priority)
        lane = None if level is None else level.lanes.get(waiter.tenant)
        if level is None or lane is None or waiter not in lane:
            return
        if not waiter.cancelled:
            self.leave(waiter)
        if waiter in lane:
            lane.remove(waiter)
            self._purge(waiter.priority, level, waiter.tenant)

    def top(
        self, now: float, promote_after: float | None, ready: Ready | None = None
    ) -> _Waiter | None:
        """The waiter that goes next: the oldest overdue one (waited ``promote_after``
        or longer), else the fairest of the highest priority whose tenant may go
        (``ready``), else the one whose tenant may go soonest."""
        order = self._order
        if not order:
            return None
        levels = self._levels
        if promote_after is not None and (len(order) > 1 or len(levels[-order[0]].lanes) > 1):
            oldest = min(self._heads(), key=_since)
            if now - oldest.since >= promote_after and (ready is None or ready(oldest) <= 0):
                return oldest
        if ready is None:
            return _fairest(levels[-order[0]])
        soonest: tuple[float, _Waiter] | None = None
        for negated in order:
            level = levels[-negated]
            chosen = _fairest(level, ready)
            if chosen is not None:
                return chosen
            for head in level.heads():
                wait = ready(head)
                if soonest is None or wait < soonest[0]:
                    soonest = (wait, head)
        return None if soonest is None else soonest[1]

    def _heads(self) -> Iterator[_Waiter]:
        for level in self._levels.values():
            yield from level.heads()

    def next_promotion(self, now: float, promote_after: float | None, head: _Waiter) -> float:
        """When ``top`` may next change by age alone (``math.inf``: not by age): the
        first moment another waiter becomes overdue. Once one is, the oldest overdue
        waiter stays first until it leaves (later ones are younger)."""
        if promote_after is None:
            return math.inf
        soonest = math.inf
        for other in self._heads():
            if other is head:
                continue
            due = other.since + promote_after
            if due <= now:
                return math.inf
            soonest = min(soonest, due)
        return soonest

    def __len__(self) -> int:
        return sum(self.live_by_priority.values())


def _fairest(level: _Level, ready: Ready | None = None) -> _Waiter | None:
    """The lane head with the lowest start tag (then the oldest) among the tenants
    that may go now."""
    lanes = level.lanes
    if len(lanes) == 1 and ready is None:
        return next(iter(lanes.values()))[0]
    best: _Waiter | None = None
    for lane in lanes.values():
        head = lane[0]
        if ready is not None and ready(head) > 0:
            continue
        if best is None or (head.tag, head.since) < (best.tag, best.since):
            best = head
    return best


def _count(counts: dict[_K, int], key: _K, change: int) -> None:
    left = counts.get(key, 0) + change
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


def _since(waiter: _Waiter) -> float:
    return waiter.since
