"""What the throttle decides about a shared backend (Redis), without waiting on it.

Which limits a bucket has the backend decide, what an answer from it means here
(a limit another process learned, the wait it asks for), what this process has
to publish, and what to do while it cannot be reached. The round trips are
written once too (``_remote_acquire_with``, ``_after_answer_with``), over the
backend's calls as awaitables: the async throttle hands the backend itself, the
sync one ``BlockingCalls`` (its blocking twins, done before they are awaited),
run with ``run_blocking``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from .._blocking import DONE, Ready
from .._errors import BackendUnavailableError
from .._rate import SlidingWindow

if TYPE_CHECKING:
    from collections.abc import Awaitable, Hashable, Mapping

    from .._backends import Place, RedisBackend, RemoteAdmission, RemoteDecision
    from .._clock import Clock
    from .._priority import PriorityReserve
    from .._rate import LimitSpec, Rate
    from ._bucket import _Bucket
    from ._permit import Permit
    from ._waiting import _Waiter

__all__ = ["BackendCalls", "BlockingCalls", "RemoteCoordination"]

logger = logging.getLogger("ratelimited_client")


class BackendCalls(Protocol):
    """The backend's calls the throttle makes, each an awaitable (``RedisBackend``'s
    own async methods are)."""

    def acquire(
        self,
        bucket: str,
        specs: tuple[LimitSpec, ...],
        cost: float,
        *,
        learned: bool,
        place: Place | None = None,
    ) -> Awaitable[RemoteDecision]: ...
    def settle(self, admission: RemoteAdmission) -> Awaitable[None]: ...
    def pause(self, bucket: str, seconds: float) -> Awaitable[None]: ...
    def learn(self, bucket: str, rate: Rate) -> Awaitable[Rate | None]: ...


class BlockingCalls:
    """Private. The backend's blocking calls, each done before it is awaited."""

    __slots__ = ("backend",)

    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend

    def acquire(
        self,
        bucket: str,
        specs: tuple[LimitSpec, ...],
        cost: float,
        *,
        learned: bool,
        place: Place | None = None,
    ) -> Awaitable[RemoteDecision]:
        return Ready(self.backend.acquire_sync(bucket, specs, cost, learned=learned, place=place))

    def settle(self, admission: RemoteAdmission) -> Awaitable[None]:
        self.backend.settle_sync(admission)
        return DONE

    def pause(self, bucket: str, seconds: float) -> Awaitable[None]:
        self.backend.pause_sync(bucket, seconds)
        return DONE

    def learn(self, bucket: str, rate: Rate) -> Awaitable[Rate | None]:
        return Ready(self.backend.learn_sync(bucket, rate))


class RemoteCoordination:
    """Private. The shared-backend side of :class:`ThrottleCore` (a base class of it):
    the decisions both the async and the sync throttle make around their round trips.

    ``ThrottleCore.__init__`` sets ``backend`` (``None``: all in memory), ``clock``
    and ``_backend_down``.
    """

    backend: RedisBackend | None
    clock: Clock
    _backend_down: bool
    promote_after: float | None
    priority_reserve: PriorityReserve | None
    tenant_weights: dict[Hashable, float]
    tenant_rates: Mapping[Hashable, tuple[LimitSpec, ...]]
    _owner: str | None = None  # names this throttle's places in the buckets' lines

    def _place(self, bucket: _Bucket, waiter: _Waiter, now: float) -> Place:
        """The head ``waiter``'s place in the line of ``bucket`` that every process's
        heads share: its priority, tenant, weight and own cap, and how long it waited."""
        from .._backends import Place

        owner = self._owner
        if owner is None:
            assert self.backend is not None  # noqa: S101
            owner = self._owner = self.backend.new_owner()
        tenant = waiter.tenant
        reserve = self.priority_reserve
        held = 0.0
        if reserve is not None and bucket.remote:
            smallest = min(spec.rate.limit for spec in bucket.remote)
            held = reserve.held_back(waiter.priority, smallest, waiter.cost)
        return Place(
            owner,
            "" if tenant is None else str(tenant),
            self.tenant_weights.get(tenant, 1.0),
            waiter.priority,
            now - waiter.since,
            self.promote_after,
            held,
            self.tenant_rates.get(tenant, ()) if tenant is not None else (),
            bucket.queue.live_by_tenant.get(tenant, 0) > 1,
        )

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

    async def _remote_acquire_with(
        self, calls: BackendCalls, bucket: _Bucket, cost: float, place: Place | None = None
    ) -> tuple[RemoteAdmission | None, float]:
        """One admission round trip: the units taken, or the wait the backend asks for
        (the head keeps its ``place`` in the line shared by every process's heads)."""
        assert bucket.remote is not None  # noqa: S101
        try:
            decision = await calls.acquire(
                str(bucket.key),
                self._remote_specs(bucket),
                cost,
                learned=not bucket.remote,
                place=place,
            )
        except BackendUnavailableError as error:
            return self._unavailable(bucket, cost, error)
        return self._decided(bucket, decision)

    async def _after_answer_with(
        self, calls: BackendCalls, permit: Permit, pauses: list[tuple[float, str]]
    ) -> None:
        """Tell the shared backend: re-date the admission, publish the server's pauses."""
        bucket = permit.bucket
        if bucket.remote is None:
            return
        try:
            if permit.remote is not None:
                await calls.settle(permit.remote)
            for delay, _ in pauses:
                await calls.pause(str(permit.key), delay)
            learned = self._to_publish(bucket)
            if learned is not None:
                bucket.shared_rate = await calls.learn(str(permit.key), learned)
        except BackendUnavailableError as error:
            logger.debug("could not update the backend after an answer: %s", error)
