"""The throttle for threads (``SyncThrottle``): the same core as the async one,
waiting on one condition variable under one lock.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import TYPE_CHECKING

from .._blocking import run_blocking
from ._core import ThrottleCore, TimeLeftExceededError, _check_deadline
from ._permit import SyncPermit
from ._remote import BlockingCalls
from ._waiting import _Waiter

if TYPE_CHECKING:
    from collections.abc import Hashable, Mapping

    from .._backends import RemoteAdmission
    from ._bucket import ThrottleStatistics, _Bucket
    from ._permit import Permit

__all__ = ["SyncThrottle"]

logger = logging.getLogger("ratelimited_client")


class SyncThrottle(ThrottleCore):
    """Private. The gate for threads (and gevent greenlets, once gevent has patched
    ``threading``): the same bookkeeping as :class:`Throttle`, waiting on one
    condition variable. Each bucket serves its queue in order; the head sleeps
    until the limiter's next slot or until something changes (a slot settles,
    an answer arrives, a concurrency slot frees), never polling.

    ``lock`` guards every change, the permits' included (:class:`SyncPermit` takes it).
    """

    permit_class = SyncPermit

    def _init_waiting(self) -> None:
        self.lock = threading.RLock()
        self._changed = threading.Condition(self.lock)
        self._slots_in_use = 0

    # -- concurrency slots (under the lock) -----------------------------------------

    def _take_slot(self) -> bool:
        if self.max_concurrency is None:
            return True
        if self._slots_in_use < self.max_concurrency:
            self._slots_in_use += 1
            return True
        return False

    def _slot_free(self) -> bool:
        return self.max_concurrency is None or self._slots_in_use < self.max_concurrency

    def _give_slot(self) -> None:
        if self.max_concurrency is not None:
            self._slots_in_use -= 1
            self._changed.notify_all()

    def kick(self, bucket: _Bucket) -> None:
        self._changed.notify_all()

    # -- the way in -----------------------------------------------------------------

    def admit_now(self, key: Hashable, cost: float, origin: str | None) -> Permit | None:
        with self.lock:
            return super().admit_now(key, cost, origin)

    def acquire_sync(
        self,
        key: Hashable,
        cost: float = 1.0,
        *,
        origin: str | None = None,
        deadline: float | None = None,
        units: Mapping[str, float] | None = None,
        priority: int = 0,
        tenant: Hashable | None = None,
    ) -> Permit:
        """Block until a request of ``cost`` (and ``units``) on bucket ``key`` may be
        sent, the higher ``priority`` first (see :meth:`Throttle.acquire`; same errors)."""
        with self.lock:
            bucket = self._bucket(key)
            if not units:  # the fast path knows no units
                permit = self._fast_admit(bucket, cost, origin, self.now())
                if permit is not None:
                    return permit
            now = self.clock.now()
            self._check_too_long(bucket, now)
            self._check_cost(bucket, cost, units)
            if bucket.live == 0 and bucket.remote is None:
                permit = self._try_admit(bucket, cost, origin, units, priority, tenant)
                if permit is not None:
                    return permit
            self._check_queue()
            waiter = _Waiter(priority, now, tenant, cost)
            bucket.queue.push(waiter)
            bucket.live += 1
            self._changed.notify_all()  # it may outrank the head
            self._queued += 1
            try:
                return self._wait_turn(bucket, waiter, cost, origin, deadline, units)
            finally:
                self._queued -= 1
                bucket.live -= 1
                bucket.queue.remove(waiter)
                self._changed.notify_all()  # the next in line may go

    def _wait_turn(
        self,
        bucket: _Bucket,
        waiter: _Waiter,
        cost: float,
        origin: str | None,
        deadline: float | None,
        units: Mapping[str, float] | None = None,
    ) -> Permit:
        retry_at = -math.inf  # when the shared backend said to come back
        queue = bucket.queue
        first = False  # the one that goes next (it alone sleeps with a timeout)
        while True:
            now = self.clock.now()
            if self._first(bucket, now) is not waiter:
                # Not its turn: a higher priority, or one that waited past the promotion
                # age, goes first; told when it left this one's place.
                if first:
                    first = False
                    self._changed.notify_all()
                self._wait_changed(deadline)
                continue
            first = True
            self._check_too_long(bucket, now)
            wait = max(
                self._wait_time(bucket, now, cost, origin, units, waiter.priority, waiter.tenant),
                retry_at - now,
            )
            if wait <= 0:
                if not self._take_slot():
                    self._wait_changed(deadline)  # a slot frees: notified
                    continue
                if bucket.remote is None:
                    return self._admit(bucket, cost, now, units, waiter.tenant)
                try:
                    remote, wait = self._remote_acquire_sync(bucket, waiter, now)
                except BaseException:
                    self._give_slot()
                    raise
                if wait <= 0:
                    permit = self._admit(bucket, cost, now, units, waiter.tenant)
                    permit.remote = remote
                    return permit
                self._give_slot()  # never hold concurrency while sleeping
                now = self.clock.now()
                retry_at = now + wait
            _check_deadline(deadline, now, wait)
            self._wait_changed(
                deadline, min(wait, queue.next_promotion(now, self.promote_after, waiter) - now)
            )

    def _wait_changed(self, deadline: float | None, wait: float = math.inf) -> None:
        """Wait (the lock released) for a change, ``wait`` seconds at most, and never past
        ``deadline``: a request still waiting then leaves the queue, having taken
        nothing (the caller's ``finally`` removes it)."""
        if deadline is not None:
            left = deadline - self.clock.now()
            if left <= 0:
                raise TimeLeftExceededError(
                    deadline=0.0, reason="no slot before the deadline: left the queue"
                )
            wait = min(wait, left)
        self._changed.wait(None if math.isinf(wait) else wait)

    def _remote_acquire_sync(
        self, bucket: _Bucket, waiter: _Waiter, now: float
    ) -> tuple[RemoteAdmission | None, float]:
        assert self.backend is not None  # noqa: S101
        calls = BlockingCalls(self.backend)
        place = self._place(bucket, waiter, now)
        return run_blocking(self._remote_acquire_with(calls, bucket, waiter.cost, place))

    def after_answer_sync(self, permit: Permit, pauses: list[tuple[float, str]]) -> None:
        """Tell the shared backend: re-date the admission, publish the server's pauses."""
        if self.backend is not None:
            run_blocking(self._after_answer_with(BlockingCalls(self.backend), permit, pauses))

    def statistics(self) -> ThrottleStatistics:
        with self.lock:
            return super().statistics()
