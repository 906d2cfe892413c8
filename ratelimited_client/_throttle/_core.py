"""The throttle's stack-free core (``ThrottleCore``): buckets, limiters, server
feedback, admission decisions, the fast path, settling, observing answers and
statistics. It never waits: the async throttle (anyio) and the sync one
(threads) subclass it with their waiting and their concurrency slots.
"""

from __future__ import annotations

import logging
import math
import random
import time
from typing import TYPE_CHECKING, Final

from .._clock import MONOTONIC, MonotonicClock
from .._errors import DeadlineExceededError, QueueFullError, RetryAfterTooLongError
from .._feedback import ServerFeedback
from .._limiters import GCRALimiter, build_limiter
from .._priority import DEFAULT_PROMOTE_AFTER
from .._rate import TokenBucket
from ._bucket import BucketStatistics, ThrottleStatistics, _Bucket
from ._permit import Permit
from ._remote import RemoteCoordination
from ._units import BucketUnits

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Mapping

    from .._backends import RedisBackend
    from .._clock import Clock
    from .._limiters import Limiter, Ticket
    from .._priority import PriorityReserve
    from .._rate import LimitSpec, Rate
    from .._signals import RateLimitSignal
    from ._units import Reservation
    from ._waiting import _Waiter

__all__ = ["DEFAULT_MAX_WAIT", "ThrottleCore", "_check_deadline"]

logger = logging.getLogger("ratelimited_client")

# The longest server-requested wait honoured before RetryAfterTooLongError.
DEFAULT_MAX_WAIT: Final = 300.0
# Sweep idle buckets once the map has grown past this many since the last sweep.
_SWEEP_AFTER: Final = 256


class TimeLeftExceededError(DeadlineExceededError):
    """Private. The throttle's deadline error: it knows only the time left (its
    ``deadline``), not the call's budget; the adapter tells it as the call's."""


def _check_deadline(deadline: float | None, now: float, wait: float) -> None:
    """A wait known to end after the caller's deadline fails now, not then."""
    if deadline is not None and math.isfinite(wait) and now + wait > deadline:
        raise TimeLeftExceededError(
            deadline=deadline - now,
            reason=f"the throttle's next slot is {wait:.3f} s away, "
            f"{deadline - now:.3f} s were left",
        )


class ThrottleCore(RemoteCoordination):
    """Private. The gate's bookkeeping, shared by the async and the sync throttle:
    buckets, limiters, server feedback, admission, settling and statistics.
    Subclasses add the waiting (anyio for :class:`Throttle`, threads for the sync one)
    and the concurrency slots.

    A :class:`Permit` talks to its throttle only through the methods under "for the
    permit" (``settle_permit``, ``observe_for``, ``kick``, ``permit_done``)."""

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
        unit_rates: Mapping[str, Rate] | None = None,
        promote_after: float | None = DEFAULT_PROMOTE_AFTER,
        priority_reserve: PriorityReserve | None = None,
        tenant_weights: Mapping[Hashable, float] | None = None,
        tenant_rates: Mapping[Hashable, tuple[LimitSpec, ...]] | None = None,
    ) -> None:
        self.rates = rates
        # The queue's discipline: priorities, the promotion age, the reserve; the
        # tenants' weights and their own caps inside each bucket's quota.
        self.promote_after = promote_after
        self.priority_reserve = priority_reserve
        self.tenant_weights = dict(tenant_weights or {})
        self.tenant_rates = dict(tenant_rates or {})
        # Every bucket's quotas in other units (tokens per minute ...), configured.
        self.unit_rates = dict(unit_rates or {})
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
        # ``now()`` reads ``clock``: the real clock (any MonotonicClock: it is
        # ``time.monotonic``) straight from ``time.monotonic``, one call less.
        self._real_time = isinstance(clock, MonotonicClock)
        self.now: Callable[[], float] = time.monotonic if self._real_time else clock.now
        self._buckets: dict[Hashable, _Bucket] = {}
        # Told of each settled reservation of other units: (bucket key, unit, reserved,
        # settled); the client's hooks set it.
        self.on_units_settled: Callable[[Hashable, str, float, float], None] | None = None
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

    def _check_cost(
        self, bucket: _Bucket, cost: float, units: Mapping[str, float] | None = None
    ) -> None:
        if units:
            self._units(bucket).check(bucket.key, units)
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

    def _wait_time(
        self,
        bucket: _Bucket,
        now: float,
        cost: float,
        origin: str | None,
        units: Mapping[str, float] | None = None,
        priority: int = 0,
        tenant: Hashable | None = None,
    ) -> float:
        """Seconds until ``cost`` (and ``units``) may go on ``bucket`` (``math.inf``:
        until an answer); below the reserve's priority, with the reserve left free;
        within its ``tenant``'s own cap, if it has one."""
        if bucket.holds:
            return math.inf  # an answer that may pause the bucket is still being read
        limiter = bucket.limiter
        wait = 0.0
        if limiter is not None:
            reserve = self.priority_reserve
            held = 0.0 if reserve is None else reserve.held_back(priority, limiter.max_cost, cost)
            wait = limiter.wait_time(now, cost + held)
        if self.tenant_rates:
            wait = max(wait, self._tenant_wait(bucket, tenant, now, cost))
        if units and bucket.units is not None:
            wait = max(wait, bucket.units.wait_time(now, units))
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

    def admit_now(self, key: Hashable, cost: float, origin: str | None) -> Permit | None:
        """For the call flows: admit at once when the fast path can (``_fast_admit``:
        nobody queued, nothing from the server in force, quota and a slot free), with
        no wait to perform; ``None``: the request goes through ``acquire``."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._bucket(key)
        return self._fast_admit(bucket, cost, origin, self.now())

    def _slot_free(self) -> bool:
        """Whether ``_take_slot`` would succeed now."""
        raise NotImplementedError

    def _try_admit(
        self,
        bucket: _Bucket,
        cost: float,
        origin: str | None,
        units: Mapping[str, float] | None = None,
        priority: int = 0,
        tenant: Hashable | None = None,
    ) -> Permit | None:
        now = self.clock.now()
        if self._wait_time(bucket, now, cost, origin, units, priority, tenant) > 0:
            return None
        if not self._take_slot():
            return None
        return self._admit(bucket, cost, now, units, tenant)

    def _admit(
        self,
        bucket: _Bucket,
        cost: float,
        now: float,
        units: Mapping[str, float] | None = None,
        tenant: Hashable | None = None,
    ) -> Permit:
        tickets: list[tuple[Limiter, Ticket]] = []
        limiter = bucket.limiter
        if limiter is not None:
            tickets.append((limiter, limiter.acquire(now, cost, pending=self.latency_proof)))
        own = self._tenant_limiter(bucket, tenant) if self.tenant_rates else None
        if own is not None:
            own.wait_time(now, cost)  # (prunes, as acquire expects)
            tickets.append((own, own.acquire(now, cost, pending=self.latency_proof)))
        learned = bucket.feedback.learned
        learned_ticket = bucket.feedback.on_admit(now, cost)
        if learned is not None and learned_ticket is not None:
            tickets.append((learned, learned_ticket))
        bucket.outstanding += 1
        bucket.admitted += 1
        self._admitted += 1
        self._in_flight += 1
        permit = self.permit_class(self, bucket, tickets, now)
        if units:
            permit.units = self._units(bucket).reserve(units)
        return permit

    def _tenant_limiter(self, bucket: _Bucket, tenant: Hashable | None) -> Limiter | None:
        """The tenant's own cap inside the bucket's quota (``tenant_rates``), made
        when first needed; ``None`` for a tenant without one."""
        specs = self.tenant_rates.get(tenant)
        if specs is None:
            return None
        limiters = bucket.tenant_limiters
        if limiters is None:
            limiters = bucket.tenant_limiters = {}
        found = limiters.get(tenant)
        if found is None:
            built = build_limiter(specs)
            assert built is not None  # noqa: S101 - tenant_rates hold a rate each
            found = limiters[tenant] = built
        return found

    def _tenant_wait(
        self, bucket: _Bucket, tenant: Hashable | None, now: float, cost: float
    ) -> float:
        own = self._tenant_limiter(bucket, tenant)
        return 0.0 if own is None else own.wait_time(now, cost)

    def _first(self, bucket: _Bucket, now: float) -> _Waiter | None:
        """The waiter of ``bucket`` that goes next (see ``BucketQueue.top``): tenants
        over their own cap are passed over."""
        if not self.tenant_rates:
            return bucket.queue.top(now, self.promote_after)

        def ready(waiter: _Waiter) -> float:
            return self._tenant_wait(bucket, waiter.tenant, now, waiter.cost)

        return bucket.queue.top(now, self.promote_after, ready)

    def _units(self, bucket: _Bucket) -> BucketUnits:
        """The bucket's unit ledgers, made when first needed."""
        if bucket.units is None:
            bucket.units = BucketUnits(self.unit_rates)
            bucket.feedback.metered_units = bucket.units.metered
        return bucket.units

    # -- the way out: for the permit ------------------------------------------------

    def kick(self, bucket: _Bucket) -> None:
        """For the permit (and the core). Something that may shorten the bucket's wait
        happened: wake its head."""
        bucket.kick()

    def settle_permit(self, permit: Permit) -> None:
        """For the permit. Its response has started, or its attempt failed: date its
        slots (once; the permit keeps count)."""
        bucket = permit.bucket
        bucket.outstanding -= 1
        now = self.now()
        fast = permit.fast_limiter
        if fast is not None:
            # GCRALimiter.settle_dated, inline (the fast path's every request).
            later = (now if now > permit.sent_at else permit.sent_at) + permit.cost * fast.interval
            if later > fast.tat:
                fast.tat = later
        if permit.tickets:
            for limiter, ticket in permit.tickets:
                limiter.settle(ticket, now)
        if bucket.live:
            # A slot got its date, or the learning window has room again: re-evaluate.
            self.kick(bucket)

    def settle_units(
        self, permit: Permit, usage: Mapping[str, float] | None, *, refused: bool = False
    ) -> None:
        """For the permit. Settle its reservations of other units (once): to the
        ``usage`` the answer reported, unit by unit, the estimate kept for a unit it
        does not report (``usage`` ``None``: for all); to nothing if the server
        ``refused`` the request (a 429 or another 4xx: nothing was processed)."""
        reserved, permit.units = permit.units, ()
        if not reserved:
            return
        now = self.now()
        for ledger, reservation in reserved:
            amount = 0.0 if refused else None if usage is None else usage.get(ledger.unit)
            ledger.settle(reservation, amount, now)
            self.units_settled(permit.bucket, ledger.unit, reservation)
        self.kick(permit.bucket)  # over-estimates came back: the head may go

    def units_settled(self, bucket: _Bucket, unit: str, reservation: Reservation) -> None:
        """A reservation was settled: for the hooks (the adapter's state listens)."""
        if self.on_units_settled is not None:
            self.on_units_settled(bucket.key, unit, reservation.estimate, reservation.amount)

    def observe_for(
        self, permit: Permit, signal: RateLimitSignal, origin: str | None
    ) -> list[tuple[float, str]]:
        """For the permit. Feed what the server said in its answer to its bucket;
        returns the pauses that began, as ``(delay, source)``."""
        bucket = permit.bucket
        if (
            bucket.units is not None
            and signal.quotas
            and bucket.units.observe(signal.quotas, self.now())
        ):
            self.kick(bucket)  # a limit learned: the head may know its wait now
        feedback = bucket.feedback
        limiter = bucket.limiter
        # The configured limiter's view, where it alone decides admissions (a shared
        # backend's state is not local: its caps stay).
        room = limiter.room(self.now()) if limiter is not None and not bucket.remote else None
        until = feedback.observe(
            signal, sent_at=permit.sent_at, others_in_flight=bucket.outstanding, local_room=room
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
        self.kick(bucket)
        return feedback.take_pauses() if feedback.new_pauses else []

    def _release(self) -> None:
        self._in_flight -= 1
        self._give_slot()

    def permit_done(self, permit: Permit, *, settle: bool) -> None:
        """For the permit. It is released: settle it if it was not, free its slot."""
        if settle:
            self.settle_permit(permit)
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
            own = self.bucket_rates.get(key)
            rates = self.rates if own is None else own
            pacing = (
                self._pacing_rate  # the default rates' pacing, worked out once
                if own is None
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
                if self.priority_reserve is not None or self.tenant_rates:
                    pass  # every admission asks its priority or tenant: no fast path
                elif limiter is None:
                    bucket.fast = True
                elif not self.latency_proof:
                    bucket.fast = True
                    if isinstance(limiter, GCRALimiter):
                        bucket.fast_limiter = limiter
                    else:
                        bucket.fast_other = limiter
            bucket.queue.weights = self.tenant_weights
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
                and (bucket.units is None or bucket.units.is_idle(now))
            ):
                del self._buckets[key]
        self._sweep_at = max(_SWEEP_AFTER, 2 * len(self._buckets))

    def _reserve(self, bucket: _Bucket, now: float) -> tuple[float | None, float]:
        """The units the priority reserve keeps on ``bucket``, and how many of them
        are taken now (the reserve less the room left, at least 0)."""
        reserve, limiter = self.priority_reserve, bucket.limiter
        if reserve is None or limiter is None:
            return None, 0.0
        kept = reserve.held_back(reserve.priority - 1, limiter.max_cost, 0.0)
        return kept, min(kept, max(0.0, kept - limiter.room(now)))

    def statistics(self) -> ThrottleStatistics:
        now = self.clock.now()
        reserves = {key: self._reserve(bucket, now) for key, bucket in self._buckets.items()}
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
                units={} if bucket.units is None else bucket.units.statistics(now),
                waiting_by_priority=dict(bucket.queue.live_by_priority),
                waiting_by_tenant={
                    str(tenant): count for tenant, count in bucket.queue.live_by_tenant.items()
                },
                reserve=reserves[key][0],
                reserve_in_use=reserves[key][1],
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
