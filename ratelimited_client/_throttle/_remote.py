"""What the throttle decides about a shared backend (Redis), without waiting on it.

Which limits a bucket has the backend decide, what an answer from it means here
(a limit another process learned, the wait it asks for), what this process has
to publish, and what to do while it cannot be reached. The round trips
themselves are the async and the sync throttle's (``_remote_acquire`` and
``after_answer`` in each), the only code here that a stack would change.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .._rate import SlidingWindow

if TYPE_CHECKING:
    from .._backends import RedisBackend, RemoteAdmission, RemoteDecision
    from .._clock import Clock
    from .._errors import BackendUnavailableError
    from .._rate import LimitSpec, Rate
    from ._bucket import _Bucket

__all__ = ["RemoteCoordination"]

logger = logging.getLogger("ratelimited_client")


class RemoteCoordination:
    """Private. The shared-backend side of :class:`ThrottleCore` (a base class of it):
    the decisions both the async and the sync throttle make around their round trips.

    ``ThrottleCore.__init__`` sets ``backend`` (``None``: all in memory), ``clock``
    and ``_backend_down``.
    """

    backend: RedisBackend | None
    clock: Clock
    _backend_down: bool

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
