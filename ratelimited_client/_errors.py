"""Exceptions raised by ratelimited_client.

The hierarchy::

    RateLimitedClientError
    ├── ConfigurationError      (also a ValueError) invalid option, raised at construction
    ├── QueueFullError          too many requests already waiting (``max_queued``)
    ├── RetryAfterTooLongError  the server asked for a wait longer than allowed
    ├── DeadlineExceededError   the call's deadline passed, or could not be met
    ├── UnitsTooLargeError      a request's estimated units (tokens) can never fit the quota
    └── TokenRefreshError       an OAuth 2.0 token could not be had

Network and protocol errors are httpx's own (``httpx.ConnectError`` and so on)
and pass through unchanged.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "ConfigurationError",
    "DeadlineExceededError",
    "QueueFullError",
    "RateLimitedClientError",
    "RetryAfterTooLongError",
    "TokenRefreshError",
    "UnitsTooLargeError",
]


class RateLimitedClientError(Exception):
    """Base class of every error this library raises itself."""


class ConfigurationError(RateLimitedClientError, ValueError):
    """An option was given an invalid value; the message names the option.

    Raised when a client, transport or policy is constructed, never later.
    It is also a :class:`ValueError`, so ``except ValueError`` catches it.
    """


class QueueFullError(RateLimitedClientError):
    """The request was refused at once because ``max_queued`` requests already wait.

    Nothing was queued or sent. ``max_queued`` and ``queued`` say how full it was.
    """

    def __init__(self, *, max_queued: int, queued: int) -> None:
        self.max_queued = max_queued
        self.queued = queued
        super().__init__(
            f"{queued} {'request is' if queued == 1 else 'requests are'} already waiting "
            f"for a slot (max_queued={max_queued}); "
            "refused at once, nothing was sent"
        )


class RetryAfterTooLongError(RateLimitedClientError):
    """The server asked for a wait longer than the client may sleep.

    Raised at once, instead of a silent hours-long sleep, for the request that
    got the answer and for every later request on the same bucket until the
    server's time has passed. ``retry_after`` is the server's wait in seconds
    (from when the answer arrived); ``limit`` the longest wait allowed.
    """

    def __init__(self, *, retry_after: float, limit: float, key: object = None) -> None:
        self.retry_after = retry_after
        self.limit = limit
        self.key = key
        where = f" for bucket {key!r}" if key is not None else ""
        super().__init__(
            f"the server asked to wait {retry_after:.1f} s{where}, longer than the "
            f"{limit:g} s allowed; not waiting (the client's "
            "retry=RetryPolicy(max_retry_after=...) allows longer)"
        )


class DeadlineExceededError(RateLimitedClientError, TimeoutError):
    """The call's deadline (``RetryPolicy.deadline``) passed, or a wait could not end
    before it. It covers queueing in the throttle, every attempt and every backoff.
    Also a :class:`TimeoutError`. ``deadline`` is the budget in seconds.
    """

    def __init__(self, *, deadline: float, reason: str) -> None:
        self.deadline = deadline
        self.reason = reason
        super().__init__(f"deadline of {deadline:g} s: {reason}")


class UnitsTooLargeError(RateLimitedClientError, ValueError):
    """A request's estimated units of a quota (a model call's tokens: its prompt and
    its ``max_tokens``) exceed that quota's whole limit: it could never be sent, so
    it fails at once, before it is sent, instead of waiting forever. Also a
    :class:`ValueError`. ``unit``, ``amount``, ``limit`` and ``window`` say which
    quota and by how much; ``key`` is the bucket.
    """

    def __init__(
        self, *, unit: str, amount: float, limit: float, window: float, key: object = None
    ) -> None:
        self.unit = unit
        self.amount = amount
        self.limit = limit
        self.window = window
        self.key = key
        where = f" of bucket {key!r}" if key is not None else ""
        super().__init__(
            f"the request needs an estimated {amount:g} {unit}, more than the whole quota"
            f"{where} ({limit:g} {unit} per {window:g} s); it could never be sent (lower "
            "its max_tokens or its prompt, or check the estimate)"
        )


class TokenRefreshError(RateLimitedClientError):
    """Getting an OAuth 2.0 token failed; every request waiting for it gets this.

    ``status`` is the token endpoint's HTTP status (``None`` when it could not be
    reached) and ``detail`` a safe part of its answer (the RFC 6749 ``error`` and
    ``error_description`` fields, shortened). Secrets and tokens never appear.
    The next request tries again.
    """

    def __init__(self, message: str, *, status: int | None = None, detail: str = "") -> None:
        self.status = status
        self.detail = detail
        super().__init__(message)


class BackendUnavailableError(RateLimitedClientError, ConnectionError):
    """The shared limiter state (Redis) could not be reached, and the backend is set
    to fail closed: the request was not sent. Nothing was counted; retry later.

    Attributes:
        backend: a description of the backend (its address, no credentials).
    """

    def __init__(self, backend: str, cause: str) -> None:
        super().__init__(
            f"the rate-limit backend {backend} is unavailable ({cause}); the request was "
            "not sent (on_unavailable='fail_closed'; 'fail_open' or 'local' keep sending)"
        )
        self.backend = backend
