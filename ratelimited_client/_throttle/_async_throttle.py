"""The throttle for async code (``Throttle``): the fast path inline, the queue,
the head's sleep and the shared backend's round trips, waiting with anyio
(asyncio or trio) on top of :class:`ThrottleCore`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import TYPE_CHECKING

import anyio

from ._core import ThrottleCore, _check_deadline
from ._permit import Permit
from ._waiting import _FifoSemaphore, _resolve, _running_asyncio_loop, _Waiter

if TYPE_CHECKING:
    from collections.abc import Hashable, Mapping

    from .._backends import RemoteAdmission
    from .._limiters import Limiter, Ticket
    from ._bucket import _Bucket

__all__ = ["Throttle"]

logger = logging.getLogger("ratelimited_client")


class Throttle(ThrottleCore):
    """Private. The gate for async code: waits with anyio (asyncio or trio)."""

    def _init_waiting(self) -> None:
        self._semaphore = _FifoSemaphore(self.max_concurrency) if self.max_concurrency else None

    def _take_slot(self) -> bool:
        return self._semaphore is None or self._semaphore.try_acquire()

    def _slot_free(self) -> bool:
        semaphore = self._semaphore
        return semaphore is None or (semaphore.waiting == 0 and semaphore.in_use < semaphore.total)

    def _give_slot(self) -> None:
        if self._semaphore is not None:
            self._semaphore.release()

    def _release(self) -> None:
        self._in_flight -= 1
        if self._semaphore is not None:
            self._semaphore.release()

    def permit_done(self, permit: Permit, *, settle: bool) -> None:
        # Settling and freeing the slot in one call (``settle_permit`` and ``_release``).
        if settle:
            self.settle_permit(permit)
        self._in_flight -= 1
        semaphore = self._semaphore
        if semaphore is not None:
            if semaphore._waiters:
                semaphore.release()  # handed over to the next in line
            else:
                semaphore.in_use -= 1  # ``release`` with nobody in line, inline

    # -- the way in ---------------------------------------------------------------

    def admit_now(self, key: Hashable, cost: float, origin: str | None) -> Permit | None:
        """Admit at once when the fast path can (nobody queued, nothing from the server
        in force, quota and a slot free); ``None``: ``acquire`` decides, and may wait.
        The call flows ask this first, so most requests never reach ``acquire``."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._bucket(key)
        # The fast path, as ``_fast_admit`` with ``GCRALimiter.try_take`` inline: for
        # most requests this is the whole cost of the throttle.
        semaphore = self._semaphore
        if (
            bucket.fast
            and not bucket.live
            and not bucket.holds
            and (origin is None or not self._origin_pauses)
            and (
                semaphore is None or (not semaphore.waiting and semaphore.in_use < semaphore.total)
            )
        ):
            now = self.now()
            limiter = bucket.fast_limiter
            if bucket.feedback.quiet_from <= now:  # ``feedback.is_quiet(now)``, inline
                tickets: tuple[tuple[Limiter, Ticket], ...] = ()
                if limiter is None:
                    other = bucket.fast_other
                    if other is None:
                        admit = True
                    else:
                        ticket = other.try_acquire(now, cost)
                        admit = ticket is not None
                        if ticket is not None:
                            tickets = ((other, ticket),)
                elif limiter.pending or now < limiter.last_now:
                    admit = False  # the general path knows these cases
                else:
                    limiter.last_now = now
                    base = limiter.tat if limiter.tat > now else now
                    admit = base + (cost - limiter.burst) * limiter.interval - now <= 1e-9
                    if admit:
                        limiter.tat = base + cost * limiter.interval
                if admit:
                    if semaphore is not None:
                        semaphore.in_use += 1
                    bucket.outstanding += 1
                    bucket.admitted += 1
                    self._admitted += 1
                    self._in_flight += 1
                    return Permit(self, bucket, tickets, now, limiter, cost)
        return None

    async def acquire(
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
        """Wait until a request of ``cost`` on bucket ``key`` may be sent; never over quota.

        ``origin`` (``scheme://host:port``) makes origin-wide server pauses apply.
        With a ``deadline`` (on this clock), a wait known to end after it fails at once.
        ``units``: the request's estimated units of other quotas (tokens), reserved
        on admission (the permit settles them). ``priority``: higher goes sooner
        among the requests waiting on the bucket (see ``BucketQueue``); ``tenant``:
        whose share of the bucket it takes (and whose own cap, if any, holds).

        Raises:
            QueueFullError: ``max_queued`` requests already wait (nothing was queued).
            RetryAfterTooLongError: the server paused this bucket for longer than allowed.
            DeadlineExceededError: the wait for a slot would end after ``deadline``.
            ValueError: ``cost`` can never fit the bucket's quota.
            UnitsTooLargeError: ``units`` can never fit the bucket's quota of a unit.
        """
        if units:
            bucket = self._bucket(key)  # the fast path knows no units
        else:
            permit = self.admit_now(key, cost, origin)
            if permit is not None:
                return permit
            bucket = self._buckets[key]  # made by ``admit_now``
        now = self.clock.now()
        self._check_too_long(bucket, now)
        self._check_cost(bucket, cost, units)
        if bucket.live == 0 and bucket.remote is None:
            permit = self._try_admit(bucket, cost, origin, units, priority, tenant)
            if permit is not None:
                return permit
        self._check_queue()
        self._queued += 1
        # Waiting in line, inline (no coroutine frame of its own): a queued request's
        # memory is mostly frames, and 100,000 may wait at once.
        try:
            waiter = _Waiter(priority, now, tenant, cost, origin)
            queue = bucket.queue
            queue.push(waiter)
            bucket.live += 1
            head = bucket.head
            if head is None:
                bucket.head = waiter
            elif self._first(bucket, now) is waiter:
                # It outranks the head: it serves now, the head steps back at its next
                # look (woken for it).
                bucket.head = waiter
                bucket.kick()
            else:
                waiter.arm()
                signal = waiter.signal
                # Parked: the head admitted before it may admit it too (``_grant``);
                # not with units (the grant knows none) nor a shared backend.
                waiter.parked = not units and bucket.remote is None
                try:
                    if isinstance(signal, asyncio.Future):
                        await signal  # a bare future: no frame either
                    else:
                        await waiter.wait()
                except BaseException:
                    waiter.parked = False
                    if waiter.granted is not None:
                        waiter.granted.release()  # admitted as it was cancelled: given back
                    else:
                        self._leave(bucket, waiter)  # made head as it was cancelled: passed on
                    raise
                waiter.parked = False
                if waiter.granted is not None:
                    return waiter.granted  # admitted in line, out of the queue already
            try:
                return await self._serve_head(bucket, waiter, cost, origin, deadline, units)
            except BaseException:
                self._leave(bucket, waiter)
                raise
        finally:
            self._queued -= 1

    async def _serve_head(
        self,
        bucket: _Bucket,
        waiter: _Waiter,
        cost: float,
        origin: str | None,
        deadline: float | None,
        units: Mapping[str, float] | None,
    ) -> Permit:
        """Wait as the bucket's head until the request may go. The head may change
        meanwhile: a request of a higher priority arrives, or a lower one has waited
        past the promotion age; this one then waits its turn again."""
        semaphore = self._semaphore
        holding = False
        remote: RemoteAdmission | None = None
        retry_at = -math.inf  # when the shared backend said to come back (local kicks
        # cannot make room there: re-dating only ever moves slots later)
        queue = bucket.queue
        try:
            while True:
                if bucket.head is not waiter:
                    if holding:
                        assert semaphore is not None  # noqa: S101
                        semaphore.release()
                        holding = False
                    waiter.arm()
                    await waiter.wait()
                    continue
                now = self.clock.now()
                self._check_too_long(bucket, now)
                first = self._first(bucket, now)
                if first is not waiter and first is not None:
                    # One of a lower priority waited past the promotion age: it goes first.
                    bucket.head = first
                    first.wake()
                    continue
                wait = max(
                    self._wait_time(
                        bucket, now, cost, origin, units, waiter.priority, waiter.tenant
                    ),
                    retry_at - now,
                )
                if wait <= 0:
                    if semaphore is not None and not holding:
                        if not semaphore.try_acquire():
                            await semaphore.acquire()
                            holding = True
                            continue  # then check the limiter again at the new "now"
                        holding = True
                    if bucket.remote is None:
                        break
                    # One round trip: admitted, or told when to come back (no polling).
                    remote, wait = await self._remote_acquire(bucket, waiter, now)
                    if wait <= 0:
                        break
                    now = self.clock.now()
                    retry_at = now + wait
                _check_deadline(deadline, now, wait)
                if holding:
                    assert semaphore is not None  # noqa: S101
                    semaphore.release()  # never hold concurrency while sleeping
                    holding = False
                await self._sleep_head(
                    bucket, min(now + wait, queue.next_promotion(now, self.promote_after, waiter))
                )
        except BaseException:
            if holding:
                assert semaphore is not None  # noqa: S101
                semaphore.release()
            raise
        permit = self._admit(bucket, cost, now, units, waiter.tenant)
        permit.remote = remote
        self._leave(bucket, waiter)
        if bucket.remote is None:
            self._grant(bucket)
        return permit

    def _grant(self, bucket: _Bucket) -> None:
        """The head was admitted: admit the next in line too, in their order, as long
        as each may go at once (as each would admit itself as head, a turn of the event
        loop later), each woken with its permit (``_Waiter.granted``).

        Without this a queue drains one request per turn of the event loop, the next
        head waking only when its predecessor has gone; under a steady load (each
        answer followed by a request) as many arrive per turn, so a queue formed once
        (slow start, a pause) lasts, and every request takes the queue's way although
        quota and slots are free. Only parked waiters (never head yet: no
        ``_serve_head`` of theirs under way) are granted; the first that may not go
        now stays head, woken as ever. On asyncio only: its tasks resume in the order
        they were woken, so the granted go on (and send) in their order in line; trio
        runs the tasks woken together in either order."""
        feedback = bucket.feedback
        while True:
            head = bucket.head
            if (
                head is None
                or not head.parked
                or not isinstance(head.signal, asyncio.Future)
                or feedback.too_long_until > self.clock.now()
            ):
                return  # (a refusal too long is the head's own to raise)
            try:
                permit = self._try_admit(
                    bucket, head.cost, head.origin, None, head.priority, head.tenant
                )
            except Exception:  # noqa: BLE001 - the waiter's own to raise, as head
                # (a server's quota found spent past max_wait as the wait was worked
                # out): the admitted head goes on with its permit all the same.
                return
            if permit is None:
                return
            head.granted = permit
            head.wake()  # before the next in line, woken by ``_leave``
            self._leave(bucket, head)

    async def _remote_acquire(
        self, bucket: _Bucket, waiter: _Waiter, now: float
    ) -> tuple[RemoteAdmission | None, float]:
        assert self.backend is not None  # noqa: S101
        place = self._place(bucket, waiter, now)
        return await self._remote_acquire_with(self.backend, bucket, waiter.cost, place)

    async def after_answer(self, permit: Permit, pauses: list[tuple[float, str]]) -> None:
        """Tell the shared backend: re-date the admission, publish the server's pauses."""
        if self.backend is not None:
            await self._after_answer_with(self.backend, permit, pauses)

    async def _sleep_head(self, bucket: _Bucket, deadline: float) -> None:
        """Sleep until ``deadline`` or until ``bucket.kick()``, whichever is first."""
        if self._real_time and math.isfinite(deadline):
            loop = _running_asyncio_loop()
            if loop is not None:
                # On asyncio a bare future and one timer: a third of the CPU of a cancel
                # scope around a sleep, paid on every queued admission.
                wake = bucket.head_wake = loop.create_future()
                timer = loop.call_later(max(0.0, deadline - time.monotonic()), _resolve, wake)
                try:
                    await wake
                finally:
                    timer.cancel()
                    if bucket.head_wake is wake:  # not a head's that took over meanwhile
                        bucket.head_wake = None
                return
        with anyio.CancelScope() as scope:
            bucket.head_scope = scope
            try:
                await self.clock.sleep_until(deadline)
            finally:
                if bucket.head_scope is scope:
                    bucket.head_scope = None

    def _leave(self, bucket: _Bucket, waiter: _Waiter) -> None:
        """``waiter`` leaves the queue (admitted or cancelled); if it was the head, the
        next in line becomes head."""
        bucket.queue.leave(waiter)
        bucket.live -= 1
        if bucket.head is waiter:
            bucket.head = None
            following = self._first(bucket, self.clock.now())
            if following is not None:
                bucket.head = following
                following.wake()
