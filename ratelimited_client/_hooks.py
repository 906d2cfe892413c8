"""The hook protocol: every decision the client takes, as an event.

Subclass :class:`Hooks`, override the ``on_*`` methods you care about and pass
the object as ``metrics=`` (one or several). Hooks run inline, on the request's
own task, so they must be quick and must not block; a hook that raises never
breaks a request: the error is logged once per hook and method, then ignored.

The built-in :class:`~ratelimited_client.PrometheusMetrics` is such a hook, and
the ``ratelimited_client`` logger is fed by one that is always attached.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

from ._errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Hashable

    from ._retry import RetryEvent
    from ._throttle import ThrottleStatistics

__all__ = [
    "Hooks",
    "Paused",
    "QuotaObserved",
    "RequestCompleted",
    "RequestSent",
    "StatisticsSource",
    "Throttled",
    "TokenEvent",
    "UnitsSettled",
    "check_hooks",
    "redact_headers",
]

logger = logging.getLogger("ratelimited_client")

#: Headers whose values never reach a log record or a hook (compared lower-case).
SENSITIVE_HEADERS: Final = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-auth-token",
        "x-amz-security-token",
    }
)

#: ``request.extensions`` entry naming the request's route template for metrics and logs.
ROUTE_EXTENSION: Final = "ratelimit_route"


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``headers`` with credentials replaced by ``"[redacted]"``."""
    return {
        name: "[redacted]" if name.lower() in SENSITIVE_HEADERS else value
        for name, value in headers.items()
    }


@dataclass(frozen=True, slots=True)
class RequestSent:
    """An attempt left for the wire (after the throttle admitted it).

    Attributes:
        method: the HTTP method.
        path: the URL path, without the query string (which may carry keys).
        bucket: the quota bucket, as text.
        route: the route template from ``extensions["ratelimit_route"]``, if set.
        attempt: 1 for the first try, 2 for the first retry, ...
    """

    method: str
    path: str
    bucket: str
    route: str | None
    attempt: int


@dataclass(frozen=True, slots=True)
class RequestCompleted:
    """An attempt ended: its response headers arrived, or it failed.

    Attributes:
        method, path, bucket, route, attempt: as in :class:`RequestSent`.
        status: the response's status, or ``None`` when no response came.
        duration: seconds from sending to the response headers (or the failure).
        error: the exception's class name when no response came.
        throttled: the server said this response is a rate-limit rejection.
        ignored_wait: a success carried ``Retry-After`` (or its kin), which is no
            directive there (it is one on 429, 503 and 3xx): ignored.
    """

    method: str
    path: str
    bucket: str
    route: str | None
    attempt: int
    status: int | None
    duration: float
    error: str | None
    throttled: bool
    ignored_wait: bool = False


@dataclass(frozen=True, slots=True)
class Throttled:
    """The throttle admitted an attempt; emitted for every attempt, waited or not.

    Attributes:
        bucket: the quota bucket.
        route: as in :class:`RequestSent`.
        waited: seconds spent in the throttle (0 on the fast path).
        queued: requests still waiting in this client's throttle at admission.
        priority: the attempt's priority in its bucket's queue (0 by default).
        tenant: whose share of the bucket it took (``None`` without tenants).
    """

    bucket: str
    route: str | None
    waited: float
    queued: int
    priority: int = 0
    tenant: str | None = None


@dataclass(frozen=True, slots=True)
class Paused:
    """The server paused a bucket: nothing is sent on it until the pause ends.

    Attributes:
        bucket: the bucket paused.
        delay: seconds from the answer until the server's time.
        source: what said so: ``"retry-after"``, ``"x-ratelimit-reset"``, ...; for
            an exhausted quota ``"<dialect> remaining=0"``.
    """

    bucket: str
    delay: float
    source: str

    @property
    def foreseen(self) -> bool:
        """The headers foretold it: a quota read down to nothing, waited out until its
        reset (not a rejection)."""
        return self.source.endswith(" remaining=0")


@dataclass(frozen=True, slots=True)
class QuotaObserved:
    """A response stated a quota.

    Attributes:
        bucket: the bucket it applies to.
        name: the quota's name within the bucket (``"default"``, ``"requests"``, ...).
        dialect: the header dialect that read it.
        limit: units per window, if stated.
        remaining: units left, if stated.
        reset_in: seconds until it resets, if stated.
    """

    bucket: str
    name: str
    dialect: str
    limit: float | None
    remaining: float | None
    reset_in: float | None


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """An OAuth token request ended.

    Attributes:
        grant: ``"client_credentials"`` or ``"refresh_token"``.
        ok: a token was received.
        duration: seconds the token request took.
        expires_in: the new token's lifetime in seconds (``None`` if unstated or failed).
        status: the token endpoint's status on failure, if it answered.
    """

    grant: str
    ok: bool
    duration: float
    expires_in: float | None = None
    status: int | None = None


@dataclass(frozen=True, slots=True)
class UnitsSettled:
    """A request's reservation of a unit (a model call's tokens) was settled.

    Attributes:
        bucket: the bucket whose quota it was reserved on.
        unit: ``"tokens"``, ``"input_tokens"``, ``"output_tokens"`` ...
        reserved: the estimate reserved before the request went.
        settled: what it settled to: the usage the answer reported, the estimate
            where none came (a stream closed early, a failed attempt), 0 for a
            request the server refused (a 429 or another 4xx).
    """

    bucket: str
    unit: str
    reserved: float
    settled: float


@runtime_checkable
class StatisticsSource(Protocol):
    """What a hook can read live figures from (a client or a transport)."""

    def statistics(self) -> ThrottleStatistics: ...


class Hooks:
    """The events a client emits. Subclass and override what you need.

    Every method is a no-op here. Methods are called on the request's task, in
    the order the hooks were given; keep them quick. One that raises is logged
    once (per hook and method) and ignored: a hook never breaks a request.
    """

    def on_attach(self, source: StatisticsSource) -> None:
        """A client (or transport) using this hook was built: ``source.statistics()``
        gives its live figures (in flight, queued, retry budget left ...)."""

    def on_request_sent(self, event: RequestSent) -> None:
        """An attempt left for the wire."""

    def on_request_completed(self, event: RequestCompleted) -> None:
        """An attempt got its response headers, or failed."""

    def on_throttled(self, event: Throttled) -> None:
        """The throttle admitted an attempt after waiting ``event.waited`` seconds."""

    def on_paused(self, event: Paused) -> None:
        """The server paused a bucket."""

    def on_quota(self, event: QuotaObserved) -> None:
        """A response stated a quota (limit, remaining, reset)."""

    def on_retry(self, event: RetryEvent) -> None:
        """A retry is scheduled: ``event.wait`` seconds from now."""

    def on_give_up(self, event: RetryEvent) -> None:
        """A call stopped retrying; ``event.reason`` says why."""

    def on_budget_exhausted(self, event: RetryEvent) -> None:
        """A retry was refused because the client's retry budget is spent."""

    def on_token(self, event: TokenEvent) -> None:
        """An OAuth token request succeeded or failed."""

    def on_units_settled(self, event: UnitsSettled) -> None:
        """A reservation of another unit (tokens) was settled to what was used."""


def check_hooks(metrics: object) -> tuple[Hooks, ...]:
    """The ``metrics`` option: a :class:`Hooks`, a sequence of them, or ``None``."""
    if metrics is None:
        return ()
    if isinstance(metrics, Hooks):
        return (metrics,)
    if isinstance(metrics, Sequence) and not isinstance(metrics, str | bytes):
        hooks = tuple(metrics)
        for hook in hooks:
            if not isinstance(hook, Hooks):
                raise ConfigurationError(
                    "metrics must hold ratelimited_client.Hooks objects "
                    f"(e.g. PrometheusMetrics), got {hook!r}"
                )
        return hooks
    raise ConfigurationError(
        "metrics must be a ratelimited_client.Hooks (e.g. PrometheusMetrics), "
        f"a sequence of them, or None; got {metrics!r}"
    )


class Dispatcher:
    """Private. Calls every hook for an event; a raising hook is logged once, then ignored."""

    __slots__ = ("_failed", "_user_hooks", "hooks")

    def __init__(self, hooks: tuple[Hooks, ...]) -> None:
        # The logger's hooks per client: their notices are counted per client.
        self.hooks = (_LoggingHooks(), *hooks)
        self._user_hooks = bool(hooks)
        self._failed: set[tuple[int, str]] = set()

    def per_request(self) -> bool:
        """Whether anyone hears the events of every request (``on_throttled``,
        ``on_request_sent``, ``on_request_completed``, ``on_quota``): a hook of the
        user's, or the logger at DEBUG. If not, the transport does not build them."""
        return self._user_hooks or logger.isEnabledFor(logging.DEBUG)

    def units_settled(self, bucket: Hashable, unit: str, reserved: float, settled: float) -> None:
        """The throttle's word that a reservation of ``unit`` was settled."""
        if self._user_hooks:
            self.emit("on_units_settled", UnitsSettled(str(bucket), unit, reserved, settled))

    def attach(self, source: StatisticsSource) -> None:
        for hook in self.hooks:
            self._call(hook, "on_attach", source)

    def emit(self, method: str, event: object) -> None:
        for hook in self.hooks:
            self._call(hook, method, event)

    def _call(self, hook: Hooks, method: str, argument: object) -> None:
        try:
            getattr(hook, method)(argument)
        except Exception:
            mark = (id(hook), method)
            if mark not in self._failed:
                self._failed.add(mark)
                logger.warning(
                    "hook %s.%s raised; ignored from now on (the request goes on)",
                    type(hook).__name__,
                    method,
                    exc_info=True,
                    extra={"event": "hook_failed", "hook": type(hook).__name__},
                )


# A bucket's unforeseen pauses are told at WARNING at most once in this many seconds;
# the ones between at DEBUG, counted in the next WARNING.
_PAUSE_NOTICE_EVERY: Final = 60.0
# Buckets whose last notice is remembered (a bound on the memory; forgetting one only
# lets its next pause be told at once).
_PAUSE_NOTICES_KEPT: Final = 10_000


class _LoggingHooks(Hooks):
    """Private. The ``ratelimited_client`` logger: DEBUG for every decision, INFO for
    retries, WARNING for what the client did not see coming: a pause the server
    imposed (a 429 or 503 and its ``Retry-After``: once a minute per bucket at most,
    with a count of those between), a give-up, a failed refresh, a broken hook. A
    pause the headers foretold (a quota read down to ``remaining=0``, waited out until
    its reset) is the throttle doing its job: DEBUG."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._notices: dict[str, tuple[float, int]] = {}  # bucket: (last told, held back)

    def on_request_sent(self, event: RequestSent) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s sent (bucket %s, attempt %d)",
                event.method,
                event.path,
                event.bucket,
                event.attempt,
                extra={
                    "event": "request_sent",
                    "method": event.method,
                    "path": event.path,
                    "bucket": event.bucket,
                    "route": event.route,
                    "attempt": event.attempt,
                },
            )

    def on_request_completed(self, event: RequestCompleted) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %s in %.3f s (bucket %s, attempt %d)",
                event.method,
                event.path,
                event.status if event.status is not None else event.error,
                event.duration,
                event.bucket,
                event.attempt,
                extra={
                    "event": "request_completed",
                    "method": event.method,
                    "path": event.path,
                    "bucket": event.bucket,
                    "route": event.route,
                    "attempt": event.attempt,
                    "status": event.status,
                    "duration": event.duration,
                    "error": event.error,
                    "throttled": event.throttled,
                },
            )
            if event.ignored_wait:
                logger.debug(
                    "%s %s -> %s carried Retry-After: ignored, a success is no rejection "
                    "(bucket %s)",
                    event.method,
                    event.path,
                    event.status,
                    event.bucket,
                    extra={"event": "ignored_wait", "bucket": event.bucket},
                )

    def on_throttled(self, event: Throttled) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "admitted after %.3f s in the throttle (bucket %s, %d still queued)",
                event.waited,
                event.bucket,
                event.queued,
                extra={
                    "event": "throttled",
                    "bucket": event.bucket,
                    "waited": event.waited,
                    "queued": event.queued,
                },
            )

    def on_paused(self, event: Paused) -> None:
        extra = {
            "event": "paused",
            "bucket": event.bucket,
            "delay": event.delay,
            "source": event.source,
        }
        if event.foreseen:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "bucket %s waits %.3f s for its quota to reset (%s)",
                    event.bucket,
                    event.delay,
                    event.source,
                    extra=extra,
                )
            return
        now = self.clock()
        told, held = self._notices.get(event.bucket, (-float("inf"), 0))
        if now - told < _PAUSE_NOTICE_EVERY:
            self._notices[event.bucket] = (told, held + 1)
            logger.debug(
                "server paused bucket %s for %.3f s (%s)",
                event.bucket,
                event.delay,
                event.source,
                extra=extra,
            )
            return
        if len(self._notices) >= _PAUSE_NOTICES_KEPT:
            self._notices.clear()
        self._notices[event.bucket] = (now, 0)
        since = f"; {held} more since the last notice" if held else ""
        logger.warning(
            "server paused bucket %s for %.3f s (%s%s)",
            event.bucket,
            event.delay,
            event.source,
            since,
            extra={**extra, "held_back": held},
        )

    def on_quota(self, event: QuotaObserved) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "quota %s on %s: %s of %s left, reset in %s s",
                event.name,
                event.bucket,
                event.remaining,
                event.limit,
                event.reset_in,
                extra={
                    "event": "quota",
                    "bucket": event.bucket,
                    "quota": event.name,
                    "dialect": event.dialect,
                    "limit": event.limit,
                    "remaining": event.remaining,
                    "reset_in": event.reset_in,
                },
            )

    def on_retry(self, event: RetryEvent) -> None:
        logger.info(
            "%s retry of attempt %d in %.3f s: %s",
            event.method,
            event.attempt,
            event.wait,
            event.reason,
            extra=_retry_extra("retry", event),
        )

    def on_give_up(self, event: RetryEvent) -> None:
        logger.warning(
            "%s gave up after attempt %d: %s",
            event.method,
            event.attempt,
            event.reason,
            extra=_retry_extra("give_up", event),
        )

    def on_budget_exhausted(self, event: RetryEvent) -> None:
        logger.debug(
            "retry budget exhausted (%s attempt %d)",
            event.method,
            event.attempt,
            extra=_retry_extra("budget_exhausted", event),
        )

    def on_token(self, event: TokenEvent) -> None:
        extra = {
            "event": "token_refreshed" if event.ok else "token_refresh_failed",
            "grant": event.grant,
            "duration": event.duration,
            "expires_in": event.expires_in,
            "status": event.status,
        }
        if event.ok:
            logger.debug(
                "new %s token, expires in %s s", event.grant, event.expires_in, extra=extra
            )
        else:
            logger.warning(
                "%s token request failed (status %s)", event.grant, event.status, extra=extra
            )


def _retry_extra(name: str, event: RetryEvent) -> dict[str, object]:
    return {
        "event": name,
        "method": event.method,
        "bucket": event.bucket,
        "attempt": event.attempt,
        "reason": event.reason,
        "wait": event.wait,
        "status": event.status,
    }
