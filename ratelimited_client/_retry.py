"""``RetryPolicy``: when and how a request is tried again, built on tenacity.

The policy is a frozen value; the transport turns it into a
``tenacity.AsyncRetrying`` per call whose *retry* predicate, *wait* and
*stop* are the small functions below, and whose sleep is the throttle's clock
(so tests run on virtual time, on asyncio and trio alike).

Rules, in the order they are applied to an attempt's outcome:

1. Cancellation is never retried.
2. The server's word: a terminal answer (``insufficient_quota``, a daily cap)
   is final; ``x-should-retry`` / ``Stripe-Should-Retry`` decide when sent.
3. What is retryable: ``statuses`` (408, 429, 502, 503, 504 by default),
   connection errors, timeouts and dropped connections.
4. Idempotency: a request whose method is not idempotent (POST, PATCH) is
   retried only where the server cannot have acted on it (429, a connection
   that was never made) or when it carries an idempotency key. A request with
   a streaming body that cannot be replayed is never retried.
5. The wait is the larger of the jittered backoff and the server's delay
   (the bucket's pause enforces the latter for everyone); a server delay
   beyond ``max_retry_after`` raises ``RetryAfterTooLongError`` at once.
6. The retry budget (shared by the client): retries may be at most
   ``budget`` of the requests of the last ``budget_window`` seconds, plus
   ``budget_floor`` per second. An exhausted budget gives up.
7. The deadline: a retry whose wait cannot end before the call's deadline is
   not attempted.

Giving up returns the last response (a 429, say) or raises the last error.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

from ._errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable
    from collections.abc import Set as AbstractSet

    from ._http import RequestView
    from ._signals import RateLimitSignal

__all__ = [
    "IDEMPOTENT_EXTENSION",
    "IDEMPOTENT_METHODS",
    "Jitter",
    "RetryBudget",
    "RetryDecision",
    "RetryEvent",
    "RetryPolicy",
]

Jitter = Literal["full", "equal", "decorrelated", "none"]
_JITTERS: Final = ("full", "equal", "decorrelated", "none")

#: Methods the server may receive twice without harm (RFC 9110 §9.2.2).
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
#: ``request.extensions`` entry saying whether the request is safe to send twice
#: (``True``/``False``), over its method's rule; set by an ``OperationPolicy``.
IDEMPOTENT_EXTENSION: Final = "ratelimit_idempotent"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how to retry; immutable, validated, every field with a safe default.

    Args:
        attempts: total tries per call, the first included (``1`` = never retry).
        backoff: the first backoff in seconds; it doubles per attempt.
        max_backoff: the longest backoff, before jitter.
        jitter: ``"full"`` (uniform in ``[0, b]``, the default), ``"equal"``
            (``b/2`` plus uniform ``[0, b/2]``), ``"decorrelated"`` (uniform in
            ``[backoff, 3 * previous]``) or ``"none"``.
        statuses: the HTTP statuses that are retried: error statuses (400-599),
            given as any set (kept as a ``frozenset``).
        retry_network_errors: retry connection errors, timeouts and dropped
            connections (subject to the idempotency rules). Errors that sending
            again cannot change are never retried and raise at once, as from the
            plain client: ``UnsupportedProtocol`` (a relative URL and no
            ``base_url``, a misspelt scheme), ``LocalProtocolError`` (a request
            the HTTP library refuses to write) and ``ProxyError`` (the proxy
            refused the tunnel: its address or credentials).
        max_retry_after: the longest server-requested wait honoured; a longer
            one raises ``RetryAfterTooLongError`` at once, for every caller of
            the bucket until the server's time.
        budget: retries may be at most this fraction of recent requests.
        budget_floor: retries per second always allowed, whatever the traffic.
        budget_window: seconds of history the budget looks at.
        deadline: seconds one call may take in all (queueing in the throttle,
            every attempt and every backoff); ``None`` for no deadline.
        idempotency_header: the header that marks a request as safe to repeat;
            with ``auto_idempotency_key`` the client sets it (one random key,
            the same on every attempt) on non-idempotent requests.
        auto_idempotency_key: see ``idempotency_header``.
        random: the source of jitter; pass a seeded ``random.Random`` in tests.
        on_retry: called with a :class:`RetryEvent` before each retry's wait.
        on_give_up: called with a :class:`RetryEvent` when a call stops retrying
            and returns its last response or raises its last error.

    Raises:
        ConfigurationError: (a ``ValueError``) naming the invalid field.

    .. versionadded:: 0.1
    """

    attempts: int = 4
    backoff: float = 0.5
    max_backoff: float = 30.0
    jitter: Jitter = "full"
    statuses: AbstractSet[int] = frozenset({408, 429, 502, 503, 504})
    retry_network_errors: bool = True
    max_retry_after: float = 300.0
    budget: float = 0.2
    budget_floor: float = 1.0
    budget_window: float = 10.0
    deadline: float | None = None
    idempotency_header: str = "Idempotency-Key"
    auto_idempotency_key: bool = False
    random: random.Random = field(default_factory=random.Random, compare=False, repr=False)
    on_retry: Callable[[RetryEvent], object] | None = field(default=None, compare=False)
    on_give_up: Callable[[RetryEvent], object] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        attempts: object = self.attempts
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ConfigurationError(
                f"RetryPolicy attempts must be an integer >= 1, got {attempts!r}"
            )
        for name in ("backoff", "max_backoff", "max_retry_after", "budget", "budget_floor"):
            _check_number(name, getattr(self, name), positive=False)
        _check_number("budget_window", self.budget_window, positive=True)
        if self.deadline is not None:
            _check_number("deadline", self.deadline, positive=True)
        if self.max_backoff < self.backoff:
            raise ConfigurationError(
                f"RetryPolicy max_backoff ({self.max_backoff}) must be >= backoff ({self.backoff})"
            )
        if self.jitter not in _JITTERS:
            raise ConfigurationError(
                f"RetryPolicy jitter must be one of {_JITTERS}, got {self.jitter!r}"
            )
        raw: object = self.statuses
        if isinstance(raw, str | bytes) or not isinstance(raw, Iterable):
            raise ConfigurationError(
                f"RetryPolicy statuses must be a set of HTTP error statuses, got {raw!r}"
            )
        statuses: frozenset[object] = frozenset(raw)
        wrong = sorted(
            repr(s)
            for s in statuses
            if isinstance(s, bool) or not isinstance(s, int) or not 400 <= s <= 599
        )
        if wrong:
            raise ConfigurationError(
                f"RetryPolicy statuses must be HTTP error statuses (400-599), got "
                f"{', '.join(wrong)} in {raw!r}"
            )
        object.__setattr__(self, "statuses", statuses)
        if not isinstance(self.random, random.Random):
            raise ConfigurationError(
                f"RetryPolicy random must be a random.Random, got {self.random!r}"
            )

    def backoff_for(self, attempt: int, previous: float) -> float:
        """The jittered backoff before retry number ``attempt`` (1 = the first retry)."""
        ceiling = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        if self.jitter == "full":
            return self.random.uniform(0.0, ceiling)
        if self.jitter == "equal":
            return ceiling / 2 + self.random.uniform(0.0, ceiling / 2)
        if self.jitter == "decorrelated":
            upper = max(self.backoff, previous * 3.0)
            return min(self.max_backoff, self.random.uniform(self.backoff, upper))
        return ceiling


def _check_number(name: str, value: object, *, positive: bool) -> None:
    ok = (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and (value > 0 if positive else value >= 0)
    )
    if not ok:
        kind = "a positive" if positive else "a non-negative"
        raise ConfigurationError(f"RetryPolicy {name} must be {kind} finite number, got {value!r}")


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """What a retry hook is told.

    Attributes:
        attempt: the attempt that just ended (1 = the first try).
        reason: why it is retried, or why retrying stopped.
        wait: seconds until the next attempt (0 when giving up).
        method: the request's method.
        status: the response's status, or ``None`` after a network error.
        bucket: the quota bucket of the request, as text.
        route: the route template from ``extensions["ratelimit_route"]``, if set.
    """

    attempt: int
    reason: str
    wait: float
    method: str
    status: int | None
    bucket: str = ""
    route: str | None = None


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Private. Whether an outcome is retried, and why (for hooks and logs)."""

    retry: bool
    reason: str


def decide(
    policy: RetryPolicy,
    request: RequestView,
    status: int | None,
    error: BaseException | None,
    signal: RateLimitSignal | None,
    *,
    can_replay: bool = True,
    error_kind: str | None = None,
) -> RetryDecision:
    """Private. Rules 1-4 of the module docstring for one attempt's outcome: a
    response's ``status``, or an ``error`` that the HTTP library classified as
    ``error_kind`` (``"never-sent"``, ``"network"`` or ``None``, see ``HttpLibrary``)."""
    if error is not None and not isinstance(error, Exception):
        return RetryDecision(retry=False, reason="cancelled")
    if not can_replay:
        return RetryDecision(retry=False, reason="body cannot be replayed")
    stated = request.extensions.get(IDEMPOTENT_EXTENSION)
    idempotent = (
        stated if isinstance(stated, bool) else request.method in IDEMPOTENT_METHODS
    ) or policy.idempotency_header in request.headers
    if error is not None:
        if not policy.retry_network_errors or error_kind is None:
            return RetryDecision(retry=False, reason=type(error).__name__)
        if error_kind == "never-sent" or idempotent:
            return RetryDecision(retry=True, reason=type(error).__name__)
        return RetryDecision(retry=False, reason=f"{type(error).__name__} on {request.method}")
    assert status is not None  # noqa: S101 - one of the two is set
    retry = signal.retry if signal is not None else None
    if retry is not None and retry.terminal and not retry.over_cap:
        return RetryDecision(retry=False, reason="terminal")
    if retry is not None and retry.should_retry is not None:
        return RetryDecision(retry=retry.should_retry, reason=f"server says {retry.should_retry}")
    if status not in policy.statuses:
        return RetryDecision(retry=False, reason=f"status {status}")
    if status == 429 or idempotent:
        return RetryDecision(retry=True, reason=f"status {status}")
    return RetryDecision(retry=False, reason=f"status {status} on {request.method}")


class RetryBudget:
    """Private. Retries as a share of recent requests, shared by one client."""

    __slots__ = ("_requests", "_retries", "floor", "ratio", "window")

    def __init__(self, ratio: float, floor: float, window: float) -> None:
        self.ratio = ratio
        self.floor = floor
        self.window = window
        self._requests: deque[float] = deque()
        self._retries: deque[float] = deque()

    def _prune(self, now: float) -> None:
        for log in (self._requests, self._retries):
            while log and now - log[0] >= self.window:
                log.popleft()

    def record_request(self, now: float) -> None:
        requests = self._requests
        # Forget what left the window as we go: a client that never retries must not
        # keep every request it ever made.
        while requests and now - requests[0] >= self.window:
            requests.popleft()
        requests.append(now)

    def try_spend(self, now: float) -> bool:
        """Take one retry from the budget if it has one."""
        self._prune(now)
        allowed = self.ratio * len(self._requests) + self.floor * self.window
        if len(self._retries) + 1 > allowed:
            return False
        self._retries.append(now)
        return True

    def left(self, now: float) -> float:
        self._prune(now)
        allowed = self.ratio * len(self._requests) + self.floor * self.window
        return max(0.0, allowed - len(self._retries))
