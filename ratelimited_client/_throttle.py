"""The gate every request passes: the only place that waits.

One ``Throttle`` per transport (per client). It keeps a ``_Bucket`` per quota
key, each with its own limiter state and FIFO queue, and one FIFO semaphore
for ``max_concurrency`` shared by all buckets.

How a request gets through:

1. *Fast path*: its bucket has nobody waiting, the limiter admits it now and a
   concurrency slot is free: it takes both and goes, without awaiting.
2. Otherwise it queues (refused at once with ``QueueFullError`` if
   ``max_queued`` requests already wait). Only the bucket's *head* works: it
   sleeps until the limiter says its cost fits (one timer, no polling), then
   takes a concurrency slot (FIFO across buckets), re-checks the limiter and
   takes its slot in the same instant, so the request is sent the moment it
   is counted. Then the next waiter becomes head.

A waiter owns nothing until it is admitted, so cancelling it frees its place
and consumes nothing. An admitted request holds a ``Permit``: ``settle()`` when
its response has started (or it failed), ``release()`` when its response is
closed; both are idempotent.

Dating a slot (why the default mode is safe on real sockets): the server
counts a request when it *arrives*, not when we send it, and the first burst
on a cold pool arrives late (it opens connections) while the next rides warm
connections and arrives early. So in the default mode a slot counts from its
send and, once its response is in, is re-dated to the response time (the
sliding window adds 1 ms): the request cannot have arrived later than that.
With ``latency_proof=True`` a slot counts from its send until its response
has arrived, and only then starts its period, so even a request still in
flight when its period would end keeps its slot.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import threading
import time
import typing
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import anyio

from ._clock import MONOTONIC, MonotonicClock
from ._errors import (
    BackendUnavailableError,
    DeadlineExceededError,
    QueueFullError,
    RetryAfterTooLongError,
)
from ._feedback import ServerFeedback
from ._limiters import GCRALimiter, build_limiter
from ._rate import SlidingWindow, TokenBucket

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Mapping, Sequence

    from ._backends import RedisBackend, RemoteAdmission, RemoteDecision
    from ._clock import Clock
    from ._limiters import Limiter, Ticket
    from ._rate import LimitSpec, Rate
    from ._signals import RateLimitSignal

__all__ = [
    "DEFAULT_MAX_WAIT",
    "BucketStatistics",
    "Permit",
    "SyncPermit",
    "SyncThrottle",
    "Throttle",
    "ThrottleCore",
    "ThrottleStatistics",
]

logger = logging.getLogger("ratelimited_client")

# The longest server-requested wait honoured before RetryAfterTooLongError.
DEFAULT_MAX_WAIT: Final = 300.0
# Sweep idle buckets once the map has grown past this many since the last sweep.
_SWEEP_AFTER: Final = 256


def _running_asyncio_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop, or ``None`` under trio (cheaper than sniffio)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _check_deadline(deadline: float | None, now: float, wait: float) -> None:
    """A wait known to end after the caller's deadline fails now, not then."""
    if deadline is not None and math.isfinite(wait) and now + wait > deadline:
        raise DeadlineExceededError(
            deadline=deadline - now,
            reason=f"the throttle's next slot is {wait:.3f} s away",
        )


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Waiter:
    """Private. One queued request, woken when its turn comes.

    On asyncio it parks on a bare future (about a tenth of the memory of an
    ``asyncio.Event``, which carries a deque of its own); on trio on an
    ``anyio.Event``. Cancellation works the same on both: anyio cancels the
    task, the await raises.
    """

    __slots__ = ("cancelled", "promoted", "signal")

    def __init__(self) -> None:
        self.signal: asyncio.Future[None] | anyio.Event | None = None
        self.cancelled = False
        self.promoted = False

    def arm(self) -> None:
        """Make it wakeable (only waiters that will sleep need this)."""
        loop = _running_asyncio_loop()
        self.signal = anyio.Event() if loop is None else loop.create_future()

    async def wait(self) -> None:
        signal = self.signal
        assert signal is not None  # noqa: S101 - armed before queueing
        if isinstance(signal, anyio.Event):
            await signal.wait()
        else:
            await signal

    def wake(self) -> None:
        signal = self.signal
        assert signal is not None  # noqa: S101 - armed before queueing
        if isinstance(signal, anyio.Event):
            signal.set()
        elif not signal.done():
            signal.set_result(None)


class _FifoSemaphore:
    """Private. A counting semaphore that serves waiters strictly in arrival order.

    Built on demand objects only (an ``anyio.Event`` per waiter), so it can be
    created outside any event loop and used from asyncio or trio.
    """

    __slots__ = ("_live", "_waiters", "in_use", "total")

    def __init__(self, total: int) -> None:
        self.total = total
        self.in_use = 0
        self._waiters: deque[_Waiter] = deque()
        self._live = 0

    @property
    def waiting(self) -> int:
        return self._live

    def try_acquire(self) -> bool:
        if self._live == 0 and self.in_use < self.total:
            self.in_use += 1
            return True
        return False

    async def acquire(self) -> None:
        if self.try_acquire():
            return
        waiter = _Waiter()
        waiter.arm()
        self._waiters.append(waiter)
        self._live += 1
        try:
            await waiter.wait()
        except BaseException:
            if waiter.promoted:
                self.release()  # it was handed a slot as it was cancelled: pass it on
            else:
                waiter.cancelled = True
                self._live -= 1
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if waiter.cancelled:
                continue
            # Hand the slot straight over; in_use stays the same.
            self._live -= 1
            waiter.promoted = True
            waiter.wake()
            return
        self.in_use -= 1


class _Bucket:
    """Private. One quota key: limiter state and FIFO queue."""

    __slots__ = (
        "admitted",
        "fallback",
        "fast",
        "fast_limiter",
        "fast_other",
        "feedback",
        "head_scope",
        "head_wake",
        "holds",
        "key",
        "limiter",
        "live",
        "outstanding",
        "remote",
        "shared_rate",
        "waiters",
    )

    def __init__(self, key: Hashable, limiter: Limiter | None, feedback: ServerFeedback) -> None:
        self.key = key
        self.limiter = limiter
        self.feedback = feedback
        self.waiters: deque[_Waiter] = deque()
        self.live = 0  # waiters not cancelled (the head included)
        self.head_scope: anyio.CancelScope | None = None
        self.head_wake: asyncio.Future[None] | None = None
        # The fast path (see ``ThrottleCore._fast_admit``): no shared backend and the
        # limiter, if any, taking dated units. A single token bucket is checked inline
        # (``fast_limiter``), any other limiter through ``try_acquire`` (``fast_other``).
        self.fast = False
        self.fast_limiter: GCRALimiter | None = None
        self.fast_other: Limiter | None = None
        self.outstanding = 0  # permits admitted and not yet settled
        self.holds = 0  # answers being read whose signal is not known yet
        self.admitted = 0
        # With a shared backend: the limits decided there, and the local share kept
        # while the backend is away (on_unavailable="local").
        self.remote: tuple[LimitSpec, ...] | None = None
        self.fallback: Limiter | None = None
        self.shared_rate: Rate | None = None  # learned by some process, kept in the backend

    def kick(self) -> None:
        """Wake the head early: something that may shorten its wait happened."""
        if self.head_scope is not None:
            self.head_scope.cancel()
        wake = self.head_wake
        if wake is not None and not wake.done():
            wake.set_result(None)


@dataclass(frozen=True, slots=True)
class BucketStatistics:
    """A snapshot of one quota bucket.

    Attributes:
        key: the bucket key (by default the origin, ``"https://host:443"``).
        waiting: requests queued on this bucket.
        used: quota units counted against the bucket right now.
        admitted: requests admitted through this bucket since it was created.
        paused_for: seconds the server's last pause still holds the bucket (0 if none).
        learned_rate: the rate learned from the server when none was configured.
        ignored_waits: successes whose ``Retry-After`` was ignored (no directive on
            a success).
        agreed_readings: quota readings (``remaining``, reset) that agreed with the
            configured limiter, which then decided alone (no cap from the server).
        corrected: the stricter shape adopted over the configured rate after the
            server rejected its bursts (same rate, smaller burst), or ``None``; a
            WARNING says so when it happens.
    """

    key: str
    waiting: int
    used: float
    admitted: int
    paused_for: float = 0.0
    learned_rate: Rate | None = None
    ignored_waits: int = 0
    agreed_readings: int = 0
    corrected: TokenBucket | None = None


@dataclass(frozen=True, slots=True)
class ThrottleStatistics:
    """A snapshot of a throttle, from ``RateLimitedTransport.statistics()``.

    Attributes:
        in_flight: admitted requests whose response is not yet closed.
        queued: requests waiting for their bucket or for a concurrency slot.
        max_concurrency: the configured cap, or ``None``.
        max_queued: the configured bound, or ``None``.
        admitted: requests admitted since the throttle was created.
        rejected: requests refused with ``QueueFullError``.
        buckets: per-bucket snapshots, by key.
        retry_budget_left: retries the client's retry budget allows right now
            (``None`` without retries).
    """

    in_flight: int
    queued: int
    max_concurrency: int | None
    max_queued: int | None
    admitted: int
    rejected: int
    buckets: Mapping[str, BucketStatistics]
    retry_budget_left: float | None = None


class Permit:
    """Private. An admitted request's hold on its quota slots and concurrency slot."""

    __slots__ = (
        "_bucket",
        "_cost",
        "_fast",
        "_holding",
        "_released",
        "_settled",
        "_throttle",
        "_tickets",
        "remote",
        "sent_at",
    )

    def __init__(
        self,
        throttle: ThrottleCore,
        bucket: _Bucket,
        tickets: Sequence[tuple[Limiter, Ticket]],
        sent_at: float,
        fast: GCRALimiter | None = None,
        cost: float = 1.0,
    ) -> None:
        self._throttle = throttle
        self._bucket = bucket
        self._tickets = tickets
        self._fast = fast  # the token bucket that took a dated unit on the fast path
        self._cost = cost
        self._settled = False
        self._released = False
        self._holding = False
        self.sent_at = sent_at
        self.remote: RemoteAdmission | None = None  # the units taken in a shared backend

    @property
    def key(self) -> Hashable:
        return self._bucket.key

    def settle(self) -> None:
        """The response has started arriving, or the attempt failed: date the slots."""
        if not self._settled:
            self._settled = True
            self._throttle._settle(self)

    def hold(self) -> None:
        """Hold the whole bucket until ``observe``: the answer is still being read."""
        if not self._holding:
            self._holding = True
            self._bucket.holds += 1

    def _unhold(self) -> None:
        if self._holding:
            self._holding = False
            self._bucket.holds -= 1
            self._throttle._kick(self._bucket)

    def observe(self, signal: RateLimitSignal, origin: str | None) -> list[tuple[float, str]]:
        """Feed what the server said in this response to the bucket (settles first).

        Returns the pauses it began, as ``(delay, source)``.
        """
        self.settle()
        pauses = self._throttle._observe(self._bucket, signal, self.sent_at, origin)
        self._unhold()
        return pauses

    def observe_quiet(self, status: int, received_at: float, *, cached: bool) -> None:
        """``observe`` for an answer that says nothing of rate limits (most of them)."""
        self.settle()
        if not cached and self._bucket.feedback.quiet_answer(status, self.sent_at, received_at):
            self._throttle._kick(self._bucket)
        self._unhold()

    def release(self) -> None:
        """The response is closed: free the concurrency slot (settling first if needed)."""
        if self._released:
            return
        self._released = True
        settle = not self._settled
        self._settled = True
        if self._holding:
            if settle:
                self._throttle._settle(self)
                settle = False
            self._unhold()
        self._throttle._done(self, settle=settle)


class ThrottleCore:
    """Private. The gate's bookkeeping, shared by the async and the sync throttle:
    buckets, limiters, server feedback, admission, settling and statistics.
    Subclasses add the waiting (anyio for :class:`Throttle`, threads for the sync one)
    and the concurrency slots."""

    permit_class: type[Permit] = Permit

    def __init__(
        self,
        rates: tuple[LimitSpec, ...],
        *,
        max_concurrency: int | None = None,
        max_queued: int | None = None,
        latency_proof: bool = False,
        learn: bool = True,
        slow_start: bool = True,
        max_wait: float = DEFAULT_MAX_WAIT,
        clock: Clock = MONOTONIC,
        rng: random.Random | None = None,
        bucket_rates: Mapping[Hashable, tuple[LimitSpec, ...]] | None = None,
        backend: RedisBackend | None = None,
    ) -> None:
        self.rates = rates
        self.backend = backend
        self._backend_down = False
        # Buckets with a quota of their own (a stricter write bucket ...); others use ``rates``.
        self.bucket_rates = dict(bucket_rates or {})
        self.learn = learn
        self.slow_start = slow_start
        self.max_wait = max_wait
        # Jitter, not secrets: a seedable generator is the point.
        self.rng = rng or random.Random()  # noqa: S311  # nosec B311
        # The rate that paces the release after a server pause: the strictest configured one.
        self._pacing_rate = min(
            (spec.rate for spec in rates), key=lambda r: r.per_second, default=None
        )
        self._origin_pauses: dict[str, float] = {}
        self.max_concurrency = max_concurrency
        self.max_queued = max_queued
        self.latency_proof = latency_proof
        self.clock = clock
        # The real clock is read straight from ``time.monotonic`` (one call less).
        # The real clock (any MonotonicClock: it is ``time.monotonic``) is read directly.
        self._real_time = isinstance(clock, MonotonicClock)
        self._now: Callable[[], float] = time.monotonic if self._real_time else clock.now
        self._buckets: dict[Hashable, _Bucket] = {}
        self._sweep_at = _SWEEP_AFTER
        self._queued = 0
        self._in_flight = 0
        self._admitted = 0
        self._rejected = 0
        self._init_waiting()

    def _init_waiting(self) -> None:
        """The subclass's waiting state (concurrency slots, locks)."""
        raise NotImplementedError

    # -- admission (the subclass waits) --------------------------------------------

    def _check_cost(self, bucket: _Bucket, cost: float) -> None:
        limiter = bucket.limiter or bucket.fallback
        if bucket.remote:
            most = min(
                (spec.burst or spec.rate.limit)
                if isinstance(spec, TokenBucket)
                else spec.rate.limit
                for spec in bucket.remote
            )
            if math.ceil(cost) > most:
                raise ValueError(
                    f"request cost {cost:g} exceeds the largest the quota of bucket "
                    f"{bucket.key!r} can ever admit ({most:g}); it could never be sent"
                )
        if limiter is not None and cost > limiter.max_cost:
            raise ValueError(
                f"request cost {cost:g} exceeds the largest the quota of bucket {bucket.key!r} "
                f"can ever admit ({limiter.max_cost:g}); it could never be sent"
            )

    def _check_queue(self) -> None:
        if self.max_queued is not None and self._queued >= self.max_queued:
            self._rejected += 1
            raise QueueFullError(max_queued=self.max_queued, queued=self._queued)

    def _take_slot(self) -> bool:
        """Take a concurrency slot now if one is free (and nobody waits for one)."""
        raise NotImplementedError

    def _give_slot(self) -> None:
        raise NotImplementedError

    def _kick(self, bucket: _Bucket) -> None:
        """Something that may shorten the bucket's wait happened: wake its head."""
        bucket.kick()

    def _unavailable(
        self, bucket: _Bucket, cost: float, error: BackendUnavailableError
    ) -> tuple[RemoteAdmission | None, float]:
        """The backend is away: fail closed (raise), open (admit), or limit locally."""
        backend = self.backend
        assert backend is not None  # noqa: S101
        if not self._backend_down:
            self._backend_down = True
            logger.warning(
                "%s; on_unavailable=%r",
                error,
                backend.on_unavailable,
                extra={"event": "backend_unavailable", "backend": backend.describe()},
            )
        if backend.on_unavailable == "fail_closed":
            raise error
        fallback = bucket.fallback
        if fallback is None:
            return None, 0.0  # fail open
        now = self.clock.now()
        wait = fallback.wait_time(now, cost)
        if wait <= 0:
            fallback.acquire(now, cost, pending=False)
        return None, max(0.0, wait)

    @staticmethod
    def _remote_specs(bucket: _Bucket) -> tuple[LimitSpec, ...]:
        """The limits decided in the backend: configured, or learned by some process."""
        if bucket.remote:
            return bucket.remote
        if bucket.shared_rate is not None:
            return (SlidingWindow(bucket.shared_rate),)
        return ()

    def _decided(
        self, bucket: _Bucket, decision: RemoteDecision
    ) -> tuple[RemoteAdmission | None, float]:
        self._backend_back()
        learned = decision.learned
        if not bucket.remote and learned is not None and learned != bucket.shared_rate:
            bucket.shared_rate = learned  # another process learned the limit: keep to it
            bucket.feedback.adopt(learned, self.clock.now(), bucket.outstanding)
        return decision.admission, decision.wait

    def _to_publish(self, bucket: _Bucket) -> Rate | None:
        """A limit this process learned that the backend does not hold yet."""
        learned = bucket.feedback.learned_rate
        if bucket.remote or learned is None or learned == bucket.shared_rate:
            return None
        return learned

    def _backend_back(self) -> None:
        if self._backend_down:
            self._backend_down = False
            assert self.backend is not None  # noqa: S101
            logger.warning(
                "the rate-limit backend %s answers again",
                self.backend.describe(),
                extra={"event": "backend_available", "backend": self.backend.describe()},
            )

    def _wait_time(self, bucket: _Bucket, now: float, cost: float, origin: str | None) -> float:
        """Seconds until ``cost`` may go on ``bucket`` (``math.inf``: until an answer)."""
        if bucket.holds:
            return math.inf  # an answer that may pause the bucket is still being read
        wait = bucket.limiter.wait_time(now, cost) if bucket.limiter is not None else 0.0
        wait = max(wait, bucket.feedback.wait_time(now, cost, bucket.outstanding))
        self._check_too_long(bucket, now)  # the server's quota may reset too far away
        if origin is not None and self._origin_pauses:
            wait = max(wait, self._origin_pauses.get(origin, now) - now)
        return wait

    def _check_too_long(self, bucket: _Bucket, now: float) -> None:
        feedback = bucket.feedback
        if feedback.too_long_until > now:
            raise RetryAfterTooLongError(
                retry_after=feedback.too_long_until - now, limit=self.max_wait, key=bucket.key
            )

    def _fast_admit(
        self, bucket: _Bucket, cost: float, origin: str | None, now: float
    ) -> Permit | None:
        """Admit at once when nothing but the bucket's own token bucket can say no: no
        queue, no shared backend, no answer being read, nothing from the server in
        force, a concurrency slot free. ``None``: take the general path."""
        if (
            bucket.live
            or not bucket.fast
            or bucket.holds
            or (origin is not None and self._origin_pauses)
            or not bucket.feedback.is_quiet(now)
            or not self._slot_free()
        ):
            return None
        limiter = bucket.fast_limiter
        tickets: tuple[tuple[Limiter, Ticket], ...] = ()
        if limiter is not None:
            if not limiter.try_take(now, cost):
                return None
        elif bucket.fast_other is not None:
            ticket = bucket.fast_other.try_acquire(now, cost)
            if ticket is None:
                return None
            tickets = ((bucket.fast_other, ticket),)
        self._take_slot()
        bucket.outstanding += 1
        bucket.admitted += 1
        self._admitted += 1
        self._in_flight += 1
        return self.permit_class(self, bucket, tickets, now, limiter, cost)

    def _slot_free(self) -> bool:
        """Whether ``_take_slot`` would succeed now."""
        raise NotImplementedError

    def _try_admit(self, bucket: _Bucket, cost: float, origin: str | None) -> Permit | None:
        now = self.clock.now()
        if self._wait_time(bucket, now, cost, origin) > 0:
            return None
        if not self._take_slot():
            return None
        return self._admit(bucket, cost, now)

    def _admit(self, bucket: _Bucket, cost: float, now: float) -> Permit:
        tickets: list[tuple[Limiter, Ticket]] = []
        limiter = bucket.limiter
        if limiter is not None:
            tickets.append((limiter, limiter.acquire(now, cost, pending=self.latency_proof)))
        learned = bucket.feedback.learned
        learned_ticket = bucket.feedback.on_admit(now, cost)
        if learned is not None and learned_ticket is not None:
            tickets.append((learned, learned_ticket))
        bucket.outstanding += 1
        bucket.admitted += 1
        self._admitted += 1
        self._in_flight += 1
        return self.permit_class(self, bucket, tickets, now)

    # -- the way out --------------------------------------------------------------

    def _settle(self, permit: Permit) -> None:
        bucket = permit._bucket
        bucket.outstanding -= 1
        now = self._now()
        fast = permit._fast
        if fast is not None:
            # GCRALimiter.settle_dated, inline (the fast path's every request).
            later = (now if now > permit.sent_at else permit.sent_at) + permit._cost * fast.interval
            if later > fast.tat:
                fast.tat = later
        if permit._tickets:
            for limiter, ticket in permit._tickets:
                limiter.settle(ticket, now)
        if bucket.live:
            # A slot got its date, or the learning window has room again: re-evaluate.
            self._kick(bucket)

    def _observe(
        self, bucket: _Bucket, signal: RateLimitSignal, sent_at: float, origin: str | None
    ) -> list[tuple[float, str]]:
        feedback = bucket.feedback
        limiter = bucket.limiter
        # The configured limiter's view, where it alone decides admissions (a shared
        # backend's state is not local: its caps stay).
        room = limiter.room(self._now()) if limiter is not None and not bucket.remote else None
        until = feedback.observe(
            signal, sent_at=sent_at, others_in_flight=bucket.outstanding, local_room=room
        )
        if until is not None and origin is not None:
            self._origin_pauses[origin] = max(self._origin_pauses.get(origin, until), until)
        if feedback.new_corrections:
            notices, feedback.new_corrections = feedback.new_corrections, []
            for notice in notices:
                logger.warning(
                    "bucket %s: %s",
                    bucket.key,
                    notice,
                    extra={
                        "event": "rate_corrected",
                        "bucket": str(bucket.key),
                        "corrected": str(feedback.corrected),
                    },
                )
        self._kick(bucket)
        return feedback.take_pauses() if feedback.new_pauses else []

    def _release(self) -> None:
        self._in_flight -= 1
        self._give_slot()

    def _done(self, permit: Permit, *, settle: bool) -> None:
        """A permit is released: settle it if it was not, free its slot."""
        if settle:
            self._settle(permit)
        self._release()

    # -- buckets and statistics ---------------------------------------------------

    @property
    def queued(self) -> int:
        """Requests waiting right now."""
        return self._queued

    def _bucket(self, key: Hashable) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._sweep_at:
                self._sweep()
            rates = self.bucket_rates.get(key, self.rates)
            pacing = (
                self._pacing_rate
                if rates is self.rates
                else min((spec.rate for spec in rates), key=lambda r: r.per_second, default=None)
            )
            shape = build_limiter(rates)
            feedback = ServerFeedback(
                configured_rate=pacing,
                learning=self.learn and not rates,
                rng=self.rng,
                max_wait=self.max_wait,
                configured_burst=shape.max_cost if shape is not None else None,
                slow_start=self.slow_start,
                max_concurrency=self.max_concurrency,
            )
            if self.backend is not None:
                # Shared: limits, pauses and learned limits live in the backend.
                bucket = self._buckets[key] = _Bucket(key, None, feedback)
                bucket.remote = rates
                if rates and self.backend.on_unavailable == "local":
                    bucket.fallback = build_limiter(self.backend.local_specs(rates))
            else:
                limiter = shape
                bucket = self._buckets[key] = _Bucket(key, limiter, feedback)
                if limiter is None:
                    bucket.fast = True
                elif not self.latency_proof:
                    bucket.fast = True
                    if isinstance(limiter, GCRALimiter):
                        bucket.fast_limiter = limiter
                    else:
                        bucket.fast_other = limiter
        return bucket

    def _sweep(self) -> None:
        """Forget buckets that hold nothing, so per-key state cannot grow without bound."""
        now = self.clock.now()
        for key, bucket in list(self._buckets.items()):
            idle = bucket.limiter is None or bucket.limiter.is_idle(now)
            if (
                idle
                and bucket.live == 0
                and bucket.outstanding == 0
                and bucket.feedback.is_idle(now)
            ):
                del self._buckets[key]
        self._sweep_at = max(_SWEEP_AFTER, 2 * len(self._buckets))

    def statistics(self) -> ThrottleStatistics:
        now = self.clock.now()
        buckets = {
            str(key): BucketStatistics(
                key=str(key),
                waiting=bucket.live,
                used=bucket.limiter.used(now) if bucket.limiter is not None else 0.0,
                admitted=bucket.admitted,
                paused_for=max(0.0, bucket.feedback.pause_until - now),
                learned_rate=bucket.feedback.learned_rate,
                ignored_waits=bucket.feedback.ignored_waits,
                agreed_readings=bucket.feedback.agreed,
                corrected=bucket.feedback.corrected,
            )
            for key, bucket in self._buckets.items()
        }
        return ThrottleStatistics(
            in_flight=self._in_flight,
            queued=self._queued,
            max_concurrency=self.max_concurrency,
            max_queued=self.max_queued,
            admitted=self._admitted,
            rejected=self._rejected,
            buckets=buckets,
        )

    def __repr__(self) -> str:
        rates = ", ".join(str(spec) for spec in self.rates) or "no local limit"
        if self.bucket_rates:
            rates += f" (+{len(self.bucket_rates)} buckets with their own)"
        return (
            f"<Throttle {rates} in_flight={self._in_flight} queued={self._queued} "
            f"buckets={len(self._buckets)} latency_proof={self.latency_proof}>"
        )


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

    def _done(self, permit: Permit, *, settle: bool) -> None:
        # Settling and freeing the slot in one call (``_settle`` and ``_release``).
        if settle:
            self._settle(permit)
        self._in_flight -= 1
        if self._semaphore is not None:
            self._semaphore.release()

    # -- the way in ---------------------------------------------------------------

    async def acquire(
        self,
        key: Hashable,
        cost: float = 1.0,
        *,
        origin: str | None = None,
        deadline: float | None = None,
    ) -> Permit:
        """Wait until a request of ``cost`` on bucket ``key`` may be sent; never over quota.

        ``origin`` (``scheme://host:port``) makes origin-wide server pauses apply.
        With a ``deadline`` (on this clock), a wait known to end after it fails at once.

        Raises:
            QueueFullError: ``max_queued`` requests already wait (nothing was queued).
            RetryAfterTooLongError: the server paused this bucket for longer than allowed.
            DeadlineExceededError: the wait for a slot would end after ``deadline``.
            ValueError: ``cost`` can never fit the bucket's quota.
        """
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
            and (semaphore is None or (not semaphore._live and semaphore.in_use < semaphore.total))
        ):
            now = self._now()
            limiter = bucket.fast_limiter
            if bucket.feedback.is_quiet(now):
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
        self._check_too_long(bucket, self.clock.now())
        self._check_cost(bucket, cost)
        if bucket.live == 0 and bucket.remote is None:
            permit = self._try_admit(bucket, cost, origin)
            if permit is not None:
                return permit
        self._check_queue()
        self._queued += 1
        # Waiting in line, inline (no coroutine frame of its own): a queued request's
        # memory is mostly frames, and 100,000 may wait at once.
        try:
            waiter = _Waiter()
            bucket.waiters.append(waiter)
            bucket.live += 1
            # The front of the deque is always the live head (cancelled waiters behind
            # it are purged when it leaves), so live == 1 means this one is the head.
            if bucket.live > 1:
                waiter.arm()
                signal = waiter.signal
                try:
                    if isinstance(signal, asyncio.Future):
                        await signal  # a bare future: no frame either
                    else:
                        await waiter.wait()
                except BaseException:
                    if waiter.promoted:
                        self._next_head(bucket)  # made head as it was cancelled: pass it on
                    else:
                        waiter.cancelled = True  # skipped when its turn comes
                        bucket.live -= 1
                    raise
            try:
                return await self._serve_head(bucket, cost, origin, deadline)
            except BaseException:
                self._next_head(bucket)
                raise
        finally:
            self._queued -= 1

    async def _serve_head(
        self, bucket: _Bucket, cost: float, origin: str | None, deadline: float | None
    ) -> Permit:
        semaphore = self._semaphore
        holding = False
        remote: RemoteAdmission | None = None
        retry_at = -math.inf  # when the shared backend said to come back (local kicks
        # cannot make room there: re-dating only ever moves slots later)
        try:
            while True:
                now = self.clock.now()
                self._check_too_long(bucket, now)
                wait = max(self._wait_time(bucket, now, cost, origin), retry_at - now)
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
                    remote, wait = await self._remote_acquire(bucket, cost)
                    if wait <= 0:
                        break
                    now = self.clock.now()
                    retry_at = now + wait
                _check_deadline(deadline, now, wait)
                if holding:
                    assert semaphore is not None  # noqa: S101
                    semaphore.release()  # never hold concurrency while sleeping
                    holding = False
                await self._sleep_head(bucket, now + wait)
        except BaseException:
            if holding:
                assert semaphore is not None  # noqa: S101
                semaphore.release()
            raise
        permit = self._admit(bucket, cost, now)
        permit.remote = remote
        self._next_head(bucket)
        return permit

    async def _remote_acquire(
        self, bucket: _Bucket, cost: float
    ) -> tuple[RemoteAdmission | None, float]:
        backend = self.backend
        assert backend is not None  # noqa: S101
        assert bucket.remote is not None  # noqa: S101
        try:
            decision = await backend.acquire(
                str(bucket.key), self._remote_specs(bucket), cost, learned=not bucket.remote
            )
        except BackendUnavailableError as error:
            return self._unavailable(bucket, cost, error)
        return self._decided(bucket, decision)

    async def after_answer(self, permit: Permit, pauses: list[tuple[float, str]]) -> None:
        """Tell the shared backend: re-date the admission, publish the server's pauses."""
        backend = self.backend
        bucket = permit._bucket
        if backend is None or bucket.remote is None:
            return
        try:
            if permit.remote is not None:
                await backend.settle(permit.remote)
            for delay, _ in pauses:
                await backend.pause(str(permit.key), delay)
            learned = self._to_publish(bucket)
            if learned is not None:
                bucket.shared_rate = await backend.learn(str(permit.key), learned)
        except BackendUnavailableError as error:
            logger.debug("could not update the backend after an answer: %s", error)

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
                    bucket.head_wake = None
                return
        with anyio.CancelScope() as scope:
            bucket.head_scope = scope
            try:
                await self.clock.sleep_until(deadline)
            finally:
                bucket.head_scope = None

    def _next_head(self, bucket: _Bucket) -> None:
        """The head leaves (admitted or cancelled): promote the next live waiter."""
        waiters = bucket.waiters
        waiters.popleft()
        bucket.live -= 1
        while waiters and waiters[0].cancelled:
            waiters.popleft()
        if waiters:
            head = waiters[0]
            head.promoted = True
            head.wake()


class SyncPermit(Permit):
    """Private. A permit of the sync throttle: every change under its lock."""

    __slots__ = ()

    @property
    def _lock(self) -> threading.RLock:
        return typing.cast("SyncThrottle", self._throttle)._lock

    def settle(self) -> None:
        with self._lock:
            super().settle()

    def hold(self) -> None:
        with self._lock:
            super().hold()

    def observe(self, signal: RateLimitSignal, origin: str | None) -> list[tuple[float, str]]:
        with self._lock:
            return super().observe(signal, origin)

    def observe_quiet(self, status: int, received_at: float, *, cached: bool) -> None:
        with self._lock:
            super().observe_quiet(status, received_at, cached=cached)

    def release(self) -> None:
        with self._lock:
            super().release()


class SyncThrottle(ThrottleCore):
    """Private. The gate for threads (and gevent greenlets, once gevent has patched
    ``threading``): the same bookkeeping as :class:`Throttle`, waiting on one
    condition variable. Each bucket serves its queue in order; the head sleeps
    until the limiter's next slot or until something changes (a slot settles,
    an answer arrives, a concurrency slot frees), never polling."""

    permit_class = SyncPermit

    def _init_waiting(self) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
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

    def _kick(self, bucket: _Bucket) -> None:
        self._changed.notify_all()

    # -- the way in -----------------------------------------------------------------

    def acquire_sync(
        self,
        key: Hashable,
        cost: float = 1.0,
        *,
        origin: str | None = None,
        deadline: float | None = None,
    ) -> Permit:
        """Block until a request of ``cost`` on bucket ``key`` may be sent (see
        :meth:`Throttle.acquire`; same errors)."""
        with self._lock:
            bucket = self._bucket(key)
            permit = self._fast_admit(bucket, cost, origin, self._now())
            if permit is not None:
                return permit
            self._check_too_long(bucket, self.clock.now())
            self._check_cost(bucket, cost)
            if bucket.live == 0 and bucket.remote is None:
                permit = self._try_admit(bucket, cost, origin)
                if permit is not None:
                    return permit
            self._check_queue()
            waiter = _Waiter()
            bucket.waiters.append(waiter)
            bucket.live += 1
            self._queued += 1
            try:
                return self._wait_turn(bucket, waiter, cost, origin, deadline)
            finally:
                self._queued -= 1
                bucket.live -= 1
                if bucket.waiters and bucket.waiters[0] is waiter:
                    bucket.waiters.popleft()
                else:
                    bucket.waiters.remove(waiter)
                self._changed.notify_all()  # the next in line may go

    def _wait_turn(
        self,
        bucket: _Bucket,
        waiter: _Waiter,
        cost: float,
        origin: str | None,
        deadline: float | None,
    ) -> Permit:
        retry_at = -math.inf  # when the shared backend said to come back
        while True:
            if bucket.waiters[0] is not waiter:
                self._changed.wait()
                continue
            now = self.clock.now()
            self._check_too_long(bucket, now)
            wait = max(self._wait_time(bucket, now, cost, origin), retry_at - now)
            if wait <= 0:
                if not self._take_slot():
                    self._changed.wait()  # a slot frees: notified
                    continue
                if bucket.remote is None:
                    return self._admit(bucket, cost, now)
                try:
                    remote, wait = self._remote_acquire_sync(bucket, cost)
                except BaseException:
                    self._give_slot()
                    raise
                if wait <= 0:
                    permit = self._admit(bucket, cost, now)
                    permit.remote = remote
                    return permit
                self._give_slot()  # never hold concurrency while sleeping
                now = self.clock.now()
                retry_at = now + wait
            _check_deadline(deadline, now, wait)
            self._changed.wait(None if math.isinf(wait) else wait)

    def _remote_acquire_sync(
        self, bucket: _Bucket, cost: float
    ) -> tuple[RemoteAdmission | None, float]:
        backend = self.backend
        assert backend is not None  # noqa: S101
        assert bucket.remote is not None  # noqa: S101
        try:
            decision = backend.acquire_sync(
                str(bucket.key), self._remote_specs(bucket), cost, learned=not bucket.remote
            )
        except BackendUnavailableError as error:
            return self._unavailable(bucket, cost, error)
        return self._decided(bucket, decision)

    def after_answer_sync(self, permit: Permit, pauses: list[tuple[float, str]]) -> None:
        """Tell the shared backend: re-date the admission, publish the server's pauses."""
        backend = self.backend
        bucket = permit._bucket
        if backend is None or bucket.remote is None:
            return
        try:
            if permit.remote is not None:
                backend.settle_sync(permit.remote)
            for delay, _ in pauses:
                backend.pause_sync(str(permit.key), delay)
            learned = self._to_publish(bucket)
            if learned is not None:
                bucket.shared_rate = backend.learn_sync(str(permit.key), learned)
        except BackendUnavailableError as error:
            logger.debug("could not update the backend after an answer: %s", error)

    def statistics(self) -> ThrottleStatistics:
        with self._lock:
            return super().statistics()
