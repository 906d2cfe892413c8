"""The rate-limited mock upstream: a raw ASGI app, no web framework.

It enforces one quota the way strict upstreams do and records what it saw, so
a test can prove a client never exceeded it. State is shared between
uvicorn's thread (requests) and the test's thread (``stats()``), so every
touch of it happens under one ``threading.Lock``, never across an ``await``.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

import anyio

from .._rate import is_finite_number
from ._dialects import DIALECTS, Dialect, QuotaView, go_duration, http_date
from ._oauth_server import TokenIssuer
from ._openapi import openapi_document

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]

__all__ = ["Algorithm", "MockAPI", "MockAPIConfig", "MockAPIStats"]

Algorithm = Literal["sliding", "fixed", "token_bucket"]
_ALGORITHMS: tuple[str, ...] = ("sliding", "fixed", "token_bucket")
_ARRIVAL_LOG = 100_000


@dataclass(frozen=True, slots=True)
class MockAPIConfig:
    """How the mock upstream limits.

    Args:
        limit: requests admitted per window (token bucket: its capacity).
        window: the window in seconds (token bucket: refills ``limit`` per window).
        algorithm: ``"sliding"`` (strict: never more than ``limit`` in any
            half-open window), ``"fixed"`` (windows aligned to the first
            arrival) or ``"token_bucket"``.
        latency: ``(low, high)`` seconds of uniform random delay applied
            *before* a request is counted: simulated network ingress jitter.
        retry_after: send ``Retry-After`` (integer seconds, rounded up) on 429.
        seed: seeds the latency random source, for repeatable runs.
        dialect: how the quota is reported on every limited response:
            ``"retry-after"`` (only ``Retry-After`` on 429s), ``"ietf"``
            (``RateLimit-Policy``/``RateLimit``, draft -08+), ``"ietf-07"``,
            ``"ietf-trio"``, ``"x-ratelimit"``, ``"github"``, ``"openai"``,
            ``"anthropic"``, ``"discord"`` or ``"gitlab"``.
        clock_skew: seconds added to the server's wall clock (its ``Date``
            header and absolute reset times), to test clients against skew.
        penalty_after: ban the client after this many rejections within one
            window: every request then gets 429 for ``penalty_for`` seconds
            (a provider blocking an abusive client). ``None``: never.
        penalty_for: the ban's length in seconds.
        fail_rate: share of requests answered 503 before the limiter sees them
            (half with ``Retry-After: 1``, half without).
        drop_rate: share of requests whose connection is dropped after the
            response headers, mid-body.
        oauth: protect the API with OAuth 2.0 bearer tokens from the mock's
            token endpoint (``POST /oauth/token``); unknown or expired tokens
            get 401 before the limiter sees them.
        client_id: the OAuth client's id.
        client_secret: the OAuth client's secret.
        token_ttl: seconds an access token lives.
        model_tokens: the model vendors' token quota (their TPM): tokens per
            ``model_tokens_window`` on ``/v1/chat/completions``, ``/v1/responses``
            and ``/v1/messages``. A call reserves its prompt (a quarter token a
            character) plus its ``max_tokens`` (``max_completion_tokens``,
            ``max_output_tokens``; 16 if none) and uses its prompt plus a completion
            of 30-100 % of ``max_tokens`` (seeded), reported as ``usage``. Past
            the quota: 429 with ``Retry-After`` until enough tokens have left the
            window; a call that could never fit: 400. Reported in the OpenAI and
            Anthropic dialects' token headers. ``None``: tokens are counted and
            reported in ``usage``, not limited.
        model_tokens_window: the token quota's window in seconds.
        write_limit: give writes (``POST``, ``PUT``, ``PATCH``, ``DELETE``) their
            own strict sliding window of this many per ``window``, apart from
            ``limit`` (a stricter write quota, as many APIs have). ``None``:
            writes share ``limit``.

    Raises:
        ValueError: naming the option, when a value is invalid.

    .. versionadded:: 0.1
    """

    limit: int = 10
    window: float = 1.0
    algorithm: Algorithm = "sliding"
    latency: tuple[float, float] = (0.0, 0.0)
    retry_after: bool = True
    seed: int | None = None
    dialect: Dialect = "retry-after"
    clock_skew: float = 0.0
    penalty_after: int | None = None
    penalty_for: float = 5.0
    fail_rate: float = 0.0
    drop_rate: float = 0.0
    oauth: bool = False
    client_id: str = "mock-client"
    client_secret: str = field(default="mock-secret", repr=False)
    token_ttl: float = 3600.0
    write_limit: int | None = None
    model_tokens: int | None = None
    model_tokens_window: float = 60.0

    def __post_init__(self) -> None:
        limit: object = self.limit
        window: object = self.window
        if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
            raise ValueError(f"limit must be a positive integer, got {limit!r}")
        write_limit: object = self.write_limit
        if write_limit is not None and (
            isinstance(write_limit, bool) or not isinstance(write_limit, int) or write_limit <= 0
        ):
            raise ValueError(f"write_limit must be a positive integer or None, got {write_limit!r}")
        if (
            isinstance(window, bool)
            or not isinstance(window, int | float)
            or not math.isfinite(window)
            or window <= 0
        ):
            raise ValueError(f"window must be a positive, finite number of seconds, got {window!r}")
        if self.algorithm not in _ALGORITHMS:
            raise ValueError(f"algorithm must be one of {_ALGORITHMS}, got {self.algorithm!r}")
        model_tokens: object = self.model_tokens
        if model_tokens is not None and (
            isinstance(model_tokens, bool) or not isinstance(model_tokens, int) or model_tokens <= 0
        ):
            raise ValueError(
                f"model_tokens must be a positive integer or None, got {model_tokens!r}"
            )
        token_window: object = self.model_tokens_window
        if not is_finite_number(token_window) or token_window <= 0:
            raise ValueError(
                f"model_tokens_window must be a positive, finite number of seconds, "
                f"got {token_window!r}"
            )
        latency: object = self.latency
        if not (
            isinstance(latency, tuple | list)
            and len(latency) == 2
            and all(isinstance(v, int | float) and math.isfinite(v) for v in latency)
            and 0 <= latency[0] <= latency[1]
        ):
            raise ValueError(f"latency must be a pair 0 <= low <= high of seconds, got {latency!r}")
        if self.dialect not in DIALECTS:
            raise ValueError(f"dialect must be one of {sorted(DIALECTS)}, got {self.dialect!r}")
        skew: object = self.clock_skew
        if isinstance(skew, bool) or not isinstance(skew, int | float) or not math.isfinite(skew):
            raise ValueError(f"clock_skew must be a finite number of seconds, got {skew!r}")
        penalty: object = self.penalty_after
        if penalty is not None and (
            isinstance(penalty, bool) or not isinstance(penalty, int) or penalty <= 0
        ):
            raise ValueError(f"penalty_after must be a positive integer or None, got {penalty!r}")
        _check_fraction("penalty_for", self.penalty_for, upper=math.inf)
        _check_fraction("fail_rate", self.fail_rate, upper=1.0)
        _check_fraction("drop_rate", self.drop_rate, upper=1.0)
        _check_fraction("token_ttl", self.token_ttl, upper=math.inf)
        object.__setattr__(self, "window", float(window))
        object.__setattr__(self, "latency", (float(latency[0]), float(latency[1])))


def _check_fraction(name: str, value: object, *, upper: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or math.isnan(value)
        or not 0 <= value <= upper
        or (upper == math.inf and not math.isfinite(value))
    ):
        bound = "a finite number >= 0" if upper == math.inf else f"between 0 and {upper:g}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")


@dataclass(frozen=True, slots=True)
class MockAPIStats:
    """What the mock upstream saw since it started or was last reset.

    ``max_received_in_window`` is the proof a test wants: the most requests
    (admitted or not) that arrived within any half-open interval of one window.
    """

    received: int
    admitted: int
    rejected: int
    max_received_in_window: int
    max_admitted_in_window: int
    limit: int
    window: float
    algorithm: str
    first_arrival: float | None
    last_arrival: float | None
    in_flight: int
    max_in_flight: int
    penalties: int = 0
    rejected_while_banned: int = 0
    faults: int = 0
    tokens_issued: int = 0
    unauthorized: int = 0
    refresh_token_reuse: int = 0
    writes_received: int = 0
    writes_rejected: int = 0
    max_writes_in_window: int = 0
    model_tokens_used: int = 0
    model_tokens_rejected: int = 0
    max_model_tokens_in_window: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The stats as a JSON-ready dict."""
        return asdict(self)


class _DroppedConnection(Exception):  # noqa: N818 - a control signal, not an error
    """Private. Makes the server drop the connection mid-response."""


class _WindowMax:
    """Private. The most events in any half-open window, maintained online."""

    __slots__ = ("best", "times", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        self.times: deque[float] = deque()
        self.best = 0

    def add(self, t: float) -> None:
        times = self.times
        while times and t - times[0] >= self.window:
            times.popleft()
        times.append(t)
        self.best = max(self.best, len(times))


_WRITE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class MockAPI:
    """A rate-limited ASGI app: every path but ``/__stats``, ``/__reset``,
    ``/openapi.json`` and ``/oauth/token`` is limited.

    It serves a small "document notification service": ``GET /documents``,
    ``POST /documents`` (``{"title": ..., "body": ...}`` → 201) and
    ``GET /documents/{id}``, described by ``GET /openapi.json`` (OpenAPI 3.0);
    the model vendors' first calls, ``POST /v1/chat/completions``,
    ``/v1/responses`` (OpenAI) and ``/v1/messages`` (Anthropic), with the
    minimal answers their SDKs validate; any other path answers a small echo.
    Admitted requests get their answer; excess ones ``429`` with
    ``{"error": "rate_limited", "retry_after": seconds}`` and, unless disabled,
    ``Retry-After``. ``GET /__stats`` returns :meth:`stats` as JSON; ``POST
    /__reset`` clears counters and limiter state.

    Args:
        config: the quota and behaviour; defaults to ``MockAPIConfig()``.
        clock: monotonic seconds; injectable for tests.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        config: MockAPIConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or MockAPIConfig()
        self._clock = clock
        self._wall_clock = wall_clock
        self.tokens = TokenIssuer(
            client_id=self.config.client_id,
            client_secret=self.config.client_secret,
            ttl=self.config.token_ttl,
            clock=clock,
        )
        self._unauthorized = 0
        self._lock = threading.Lock()
        # Simulated latency and faults, reproducible from a seed: not secrets.
        self._random = random.Random(self.config.seed)  # nosec B311
        # Completion lengths, from a seed of their own (latency draws stay as they were).
        seed = self.config.seed
        self._completions = random.Random(None if seed is None else seed + 7919)  # nosec B311
        self._in_flight = 0
        self._max_in_flight = 0
        self._reset_state()

    # -- state ------------------------------------------------------------------

    def _reset_state(self) -> None:
        window = self.config.window
        self._received = 0
        self._admitted = 0
        self._rejected = 0
        self._received_max = _WindowMax(window)
        self._admitted_max = _WindowMax(window)
        self._first: float | None = None
        self._last: float | None = None
        self._log: deque[float] = deque()  # sliding: admitted arrival times in the window
        self._fixed_origin: float | None = None
        self._fixed_start: float | None = None
        self._fixed_count = 0
        self._tokens = float(self.config.limit)
        self._tokens_at: float | None = None
        self._arrivals: deque[tuple[float, int]] = deque(maxlen=_ARRIVAL_LOG)
        self._rejections: deque[float] = deque()
        self._banned_until = -math.inf
        self._penalties = 0
        self._banned_rejections = 0
        self._faults = 0
        self._write_log: deque[float] = deque()
        self._writes_received = 0
        self._writes_rejected = 0
        self._writes_max = _WindowMax(window)
        self._documents: dict[int, dict[str, Any]] = {}
        # The model vendors' token quota: (arrival, tokens used) in its window.
        self._model_log: deque[tuple[float, int]] = deque()
        self._model_used = 0  # in the window
        self._model_used_total = 0
        self._model_rejected = 0
        self._model_max = 0

    def reset(self) -> None:
        """Forget all counters and limiter state (in-flight bookkeeping is kept)."""
        with self._lock:
            self._max_in_flight = self._in_flight
            self._reset_state()

    def arrivals(self) -> list[tuple[float, int]]:
        """``(clock time, status)`` of each limited request, in arrival order (the last 100,000)."""
        with self._lock:
            return list(self._arrivals)

    def stats(self) -> MockAPIStats:
        """A consistent snapshot of what the server has seen."""
        with self._lock:
            return MockAPIStats(
                received=self._received,
                admitted=self._admitted,
                rejected=self._rejected,
                max_received_in_window=self._received_max.best,
                max_admitted_in_window=self._admitted_max.best,
                limit=self.config.limit,
                window=self.config.window,
                algorithm=self.config.algorithm,
                first_arrival=self._first,
                last_arrival=self._last,
                in_flight=self._in_flight,
                max_in_flight=self._max_in_flight,
                penalties=self._penalties,
                rejected_while_banned=self._banned_rejections,
                faults=self._faults,
                tokens_issued=self.tokens.issued,
                unauthorized=self._unauthorized,
                refresh_token_reuse=self.tokens.refresh_reuse,
                model_tokens_used=self._model_used_total,
                model_tokens_rejected=self._model_rejected,
                max_model_tokens_in_window=self._model_max,
                writes_received=self._writes_received,
                writes_rejected=self._writes_rejected,
                max_writes_in_window=self._writes_max.best,
            )

    def _view(self, now: float) -> QuotaView:
        """The quota after the request just decided, as the dialects report it."""
        limit, window = self.config.limit, self.config.window
        algorithm = self.config.algorithm
        if algorithm == "sliding":
            log = self._log
            remaining = limit - len(log)
            next_unit = log[0] + window - now if log else 0.0
            # As the token-bucket vendors (OpenAI, Anthropic) count "until full".
            full = len(log) * window / limit
        elif algorithm == "fixed":
            start = self._fixed_start if self._fixed_start is not None else now
            remaining = limit - self._fixed_count
            next_unit = full = start + window - now
        else:
            refill = limit / window
            remaining = math.floor(self._tokens)
            next_unit = max(0.0, (1.0 - self._tokens) / refill)
            full = (limit - self._tokens) / refill
        return QuotaView(
            limit=limit,
            window=window,
            remaining=max(0, remaining),
            next_unit=max(0.0, next_unit),
            full=max(0.0, full),
            wall_now=self._wall_clock() + self.config.clock_skew,
        )

    # -- the limiter ---------------------------------------------------------------

    def _decide(self, now: float, *, write: bool = False, token_wait: float = 0.0) -> float:
        """Count an arrival at ``now``; 0.0 if admitted, else the wait in seconds.
        ``token_wait``: the token quota's refusal (``_model_wait``), decided before the
        request limiter is asked (which then never sees the arrival)."""
        if self._first is None:
            self._first = now
        self._last = now
        self._received += 1
        if write:
            self._writes_received += 1
            self._writes_max.add(now)
        else:
            self._received_max.add(now)
        if now < self._banned_until:
            wait = self._banned_until - now
            self._banned_rejections += 1
        elif token_wait > 0.0:
            wait = token_wait
            self._model_rejected += 1
        else:
            if write:
                wait = self._decide_write(now)
            else:
                wait = getattr(self, f"_decide_{self.config.algorithm}")(now)
            if wait > 0.0:
                self._count_rejection(now)
                if now < self._banned_until:
                    wait = self._banned_until - now
        if wait == 0.0:
            self._admitted += 1
            if not write:
                self._admitted_max.add(now)
        else:
            self._rejected += 1
            if write:
                self._writes_rejected += 1
        self._arrivals.append((now, 200 if wait == 0.0 else 429))
        return float(wait)

    def _count_rejection(self, now: float) -> None:
        """Penalty mode: too many rejections within one window ban the client."""
        limit = self.config.penalty_after
        if limit is None:
            return
        rejections = self._rejections
        while rejections and now - rejections[0] >= self.config.window:
            rejections.popleft()
        rejections.append(now)
        if len(rejections) >= limit:
            self._banned_until = now + self.config.penalty_for
            self._penalties += 1
            rejections.clear()

    def _decide_sliding(self, now: float) -> float:
        log, window = self._log, self.config.window
        while log and now - log[0] >= window:
            log.popleft()
        if len(log) < self.config.limit:
            log.append(now)
            return 0.0
        return max(log[0] + window - now, 1e-6)

    def _decide_write(self, now: float) -> float:
        log, window = self._write_log, self.config.window
        limit = self.config.write_limit or self.config.limit
        while log and now - log[0] >= window:
            log.popleft()
        if len(log) < limit:
            log.append(now)
            return 0.0
        return max(log[0] + window - now, 1e-6)

    def _write_view(self, now: float) -> QuotaView:
        limit, window, log = self.config.write_limit or 1, self.config.window, self._write_log
        return QuotaView(
            limit=limit,
            window=window,
            remaining=max(0, limit - len(log)),
            next_unit=max(0.0, log[0] + window - now) if log else 0.0,
            full=len(log) * window / limit,
            wall_now=self._wall_clock() + self.config.clock_skew,
        )

    def _decide_fixed(self, now: float) -> float:
        window = self.config.window
        if self._fixed_origin is None:
            self._fixed_origin = self._fixed_start = now
        # Each window's start from the first arrival, never by accumulating (float drift
        # would move the boundaries and admit more than the limit around them).
        start = self._fixed_origin + math.floor((now - self._fixed_origin) / window) * window
        if start != self._fixed_start:
            self._fixed_start = start
            self._fixed_count = 0
        if self._fixed_count < self.config.limit:
            self._fixed_count += 1
            return 0.0
        return max(self._fixed_start + window - now, 1e-6)

    def _decide_token_bucket(self, now: float) -> float:
        limit, window = self.config.limit, self.config.window
        refill = limit / window
        if self._tokens_at is not None:
            self._tokens = min(float(limit), self._tokens + (now - self._tokens_at) * refill)
        self._tokens_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return max((1.0 - self._tokens) / refill, 1e-6)

    # -- ASGI --------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":  # pragma: no cover - websockets are not served
            return
        body = await _read_body(receive)
        path, method = scope.get("path", "/"), scope.get("method", "GET")
        authorization = _header(scope, b"authorization")
        if path == "/openapi.json" and method == "GET":
            await _send_json(send, 200, openapi_document(self.config))
            return
        if path == "/oauth/token" and method == "POST":
            status, answer = await self.tokens.answer(body, authorization)
            await _send_json(send, status, answer, [(b"cache-control", b"no-store")])
            return
        protected = self.config.oauth and path not in ("/__stats", "/__reset")
        if protected and not self.tokens.is_valid(authorization):
            with self._lock:
                self._unauthorized += 1
            await _send_json(send, 401, {"error": "invalid_token"})
            return
        if path == "/__stats" and method == "GET":
            await _send_json(send, 200, self.stats().as_dict())
            return
        if path == "/__reset" and method == "POST":
            self.reset()
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await self._limited(path, method, body, send)

    async def _limited(self, path: str, method: str, body: bytes, send: Send) -> None:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            low, high = self.config.latency
            delay = self._random.uniform(low, high) if high > 0 else 0.0
            roll = self._random.random()
        try:
            if delay > 0:
                await anyio.sleep(delay)
            if roll < self.config.fail_rate + self.config.drop_rate:
                await self._fault(send, dropped=roll < self.config.drop_rate, half=roll)
                return
            write = self.config.write_limit is not None and method in _WRITE_METHODS
            ask = _ModelAsk.read(body) if method == "POST" and path in _VENDOR_ENDPOINTS else None
            usage: tuple[int, int] | None = None
            with self._lock:
                now = self._clock()
                wait = self._decide(now, write=write, token_wait=self._model_wait(now, ask))
                if wait == 0.0 and ask is not None:
                    usage = self._model_use(now, ask)
                admitted = self._admitted
                view = self._write_view(now) if write else self._view(now)
                token_headers = self._model_headers(now, view.wall_now)
            headers = [
                (k.lower().encode(), v.encode()) for k, v in DIALECTS[self.config.dialect](view)
            ]
            headers.extend((k.encode(), v.encode()) for k, v in token_headers)
            headers.append((b"date", http_date(view.wall_now).encode()))
            if wait == math.inf:
                error = {
                    "type": "invalid_request_error",
                    "message": "the request's tokens exceed the token limit",
                }
                await _send_json(send, 400, {"type": "error", "error": error}, headers)
                return
            if wait == 0.0:
                status, answer = self._resource(path, method, body, admitted, usage)
                if status == 200 and ask is not None and ask.stream:
                    await _send_events(send, _events(path, answer), headers)
                    return
                await _send_json(send, status, answer, headers)
                return
            if self.config.retry_after:
                seconds = max(1, math.ceil(wait))
                headers.append((b"retry-after", str(seconds).encode()))
            await _send_json(send, 429, {"error": "rate_limited", "retry_after": wait}, headers)
        finally:
            with self._lock:
                self._in_flight -= 1

    # -- the model vendors' token quota ---------------------------------------------

    def _model_prune(self, now: float) -> None:
        window = self.config.model_tokens_window
        log = self._model_log
        while log and now - log[0][0] >= window:
            self._model_used -= log.popleft()[1]

    def _model_wait(self, now: float, ask: _ModelAsk | None) -> float:
        """Seconds until the call's reservation fits the token quota (0: now; inf:
        never, bigger than the quota)."""
        limit = self.config.model_tokens
        if ask is None or limit is None:
            return 0.0
        need = ask.prompt + ask.max_tokens
        if need > limit:
            return math.inf
        self._model_prune(now)
        excess = self._model_used + need - limit
        if excess <= 0:
            return 0.0
        for at, tokens in self._model_log:
            excess -= tokens
            if excess <= 0:
                return max(at + self.config.model_tokens_window - now, 1e-6)
        return self.config.model_tokens_window  # unreachable: need <= limit

    def _model_use(self, now: float, ask: _ModelAsk) -> tuple[int, int]:
        """Charge an admitted call its prompt and a completion of 30-100 % of its
        ``max_tokens``; ``(prompt, completion)``."""
        completion = max(1, round(ask.max_tokens * self._completions.uniform(0.3, 1.0)))
        used = ask.prompt + completion
        self._model_prune(now)
        self._model_log.append((now, used))
        self._model_used += used
        self._model_used_total += used
        self._model_max = max(self._model_max, self._model_used)
        return ask.prompt, completion

    def _model_headers(self, now: float, wall_now: float) -> list[tuple[str, str]]:
        """The token quota in the OpenAI or Anthropic dialect (nothing in the others)."""
        limit = self.config.model_tokens
        dialect = self.config.dialect
        if limit is None or dialect not in ("openai", "anthropic"):
            return []
        self._model_prune(now)
        remaining = max(0, limit - self._model_used)
        log = self._model_log
        full = log[-1][0] + self.config.model_tokens_window - now if log else 0.0
        if dialect == "openai":
            return [
                ("x-ratelimit-limit-tokens", str(limit)),
                ("x-ratelimit-remaining-tokens", str(remaining)),
                ("x-ratelimit-reset-tokens", go_duration(max(0.0, full))),
            ]
        reset = datetime.fromtimestamp(math.ceil(wall_now + max(0.0, full)), tz=UTC)
        return [
            ("anthropic-ratelimit-tokens-limit", str(limit)),
            ("anthropic-ratelimit-tokens-remaining", str(remaining)),
            ("anthropic-ratelimit-tokens-reset", reset.strftime("%Y-%m-%dT%H:%M:%SZ")),
        ]

    def _resource(
        self,
        path: str,
        method: str,
        body: bytes,
        admitted: int,
        usage: tuple[int, int] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """What an admitted request gets: the document store under ``/documents``,
        the model vendors' endpoints (``_vendor``), a small echo anywhere else."""
        if method == "POST" and path in _VENDOR_ENDPOINTS:
            return _vendor(path, body, admitted, usage or (1, 1))
        parts = path.strip("/").split("/")
        if parts[0] != "documents" or len(parts) > 2:
            return 200, {"ok": True, "method": method, "path": path, "n": admitted}
        with self._lock:
            documents = self._documents
            if len(parts) == 1 and method == "GET":
                items = [documents[key] for key in sorted(documents)]
                return 200, {"items": items, "count": len(items)}
            if len(parts) == 1 and method == "POST":
                try:
                    fields = json.loads(body or b"null")
                except ValueError:
                    fields = None
                if (
                    not isinstance(fields, dict)
                    or not isinstance(fields.get("title"), str)
                    or not fields["title"].strip()
                    or not isinstance(fields.get("body", ""), str)
                ):
                    detail = "expected a JSON object with a non-empty 'title' and a string 'body'"
                    return 422, {"error": "invalid_document", "detail": detail}
                number = len(documents) + 1
                document = {
                    "id": number,
                    "title": fields["title"],
                    "body": fields.get("body", ""),
                    "created_at": self._wall_clock(),
                }
                documents[number] = document
                return 201, document
            if len(parts) == 2 and method == "GET":
                found = documents.get(int(parts[1])) if parts[1].isdigit() else None
                if found is None:
                    return 404, {"error": "not_found", "id": parts[1]}
                return 200, found
        return 405, {"error": "method_not_allowed", "method": method}

    async def _fault(self, send: Send, *, dropped: bool, half: float) -> None:
        """An injected failure: a 503 (with or without Retry-After) or a dropped answer."""
        with self._lock:
            self._faults += 1
            self._received += 1
        if dropped:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", b"1000")],
                }
            )
            raise _DroppedConnection  # uvicorn closes the connection mid-body
        headers = (
            [(b"retry-after", b"1")]
            if half < self.config.drop_rate + (self.config.fail_rate / 2)
            else []
        )
        await _send_json(send, 503, {"error": "unavailable"}, headers)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def __repr__(self) -> str:
        c = self.config
        return f"<MockAPI {c.algorithm} {c.limit}/{c.window:g}s>"


# The endpoints the OpenAI and Anthropic SDKs' first calls use, at the paths their
# clients build from a base URL (OpenAI's ends in ``/v1``, Anthropic's does not).
_VENDOR_ENDPOINTS: Final = frozenset({"/v1/chat/completions", "/v1/responses", "/v1/messages"})


@dataclass(frozen=True, slots=True)
class _ModelAsk:
    """Private. What a model call asks of the token quota: its prompt's tokens (a
    quarter a character of its text) and its ``max_tokens``."""

    prompt: int
    max_tokens: int
    stream: bool = False

    @classmethod
    def read(cls, body: bytes) -> _ModelAsk | None:
        try:
            asked = json.loads(body or b"null")
        except ValueError:
            return None
        if not isinstance(asked, dict):
            return None
        chars = sum(
            len(text)
            for text in _texts([asked.get("messages"), asked.get("system"), asked.get("input")])
        )
        cap = next(
            (
                value
                for name in ("max_tokens", "max_completion_tokens", "max_output_tokens")
                if isinstance(value := asked.get(name), int)
                and not isinstance(value, bool)
                and value > 0
            ),
            16,
        )
        stream = asked.get("stream") is True
        return cls(prompt=max(1, math.ceil(chars / 4)), max_tokens=cap, stream=stream)


def _texts(value: object) -> list[str]:
    """Every string of message text in a request body's part (content strings,
    ``{"type": "text", "text": ...}`` parts, nested lists)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    if isinstance(value, dict):
        found = _texts(value.get("content"))
        text = value.get("text")
        return [*found, text] if isinstance(text, str) else found
    return []


def _vendor(
    path: str, body: bytes, admitted: int, usage: tuple[int, int] = (1, 1)
) -> tuple[int, dict[str, Any]]:
    """A minimal answer each SDK validates strictly (its required fields, no more):
    a chat completion, a response, a message, echoing the model asked for, with the
    tokens used (``usage``: prompt, completion)."""
    try:
        asked = json.loads(body or b"null")
    except ValueError:
        asked = None
    if not isinstance(asked, dict) or not isinstance(asked.get("model"), str):
        error = {"type": "invalid_request_error", "message": "a JSON body with a 'model'"}
        return 400, {"type": "error", "error": error}
    model = asked["model"]
    prompt, completion = usage
    if path == "/v1/chat/completions":
        message = {"role": "assistant", "content": "ok"}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return 200, {
            "id": f"chatcmpl-{admitted}",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [choice],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
    if path == "/v1/responses":
        return 200, {
            "id": f"resp_{admitted}",
            "object": "response",
            "created_at": 0,
            "model": model,
            "output": [],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": prompt,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": completion,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": prompt + completion,
            },
        }
    return 200, {
        "id": f"msg_{admitted}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": prompt, "output_tokens": completion},
    }


def _events(path: str, answer: dict[str, Any]) -> list[tuple[str | None, dict[str, Any] | str]]:
    """The answer streamed as its vendor streams it (server-sent events), its usage in
    the last events: OpenAI's chat chunks end with a chunk of ``usage`` alone (as with
    ``stream_options={"include_usage": true}``) and ``[DONE]``; Anthropic's message
    events report the input tokens at ``message_start`` and the output tokens at
    ``message_delta``. ``(event name or None, data)`` each."""
    if path == "/v1/chat/completions":
        head = {key: answer[key] for key in ("id", "created", "model")}
        chunk = {**head, "object": "chat.completion.chunk"}
        delta = {"role": "assistant", "content": "ok"}
        return [
            (None, {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}),
            (None, {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            (None, {**chunk, "choices": [], "usage": answer["usage"]}),
            (None, "[DONE]"),
        ]
    if path == "/v1/messages":
        usage = answer["usage"]
        start = {
            **answer,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": usage["input_tokens"], "output_tokens": 1},
        }
        text = {"type": "text", "text": ""}
        return [
            ("message_start", {"type": "message_start", "message": start}),
            (
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": text},
            ),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": "ok"},
                },
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": usage["output_tokens"]},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
    return [(None, answer)]  # the Responses API's events are not served: the answer whole


async def _send_events(
    send: Send,
    events: list[tuple[str | None, dict[str, Any] | str]],
    headers: list[tuple[bytes, bytes]],
) -> None:
    """A ``text/event-stream`` answer, one event a body message."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream"), *headers],
        }
    )
    for name, data in events:
        payload = data if isinstance(data, str) else json.dumps(data)
        line = (f"event: {name}\n" if name else "") + f"data: {payload}\n\n"
        await send({"type": "http.response.body", "body": line.encode(), "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _read_body(receive: Receive, limit: int = 1 << 20) -> bytes:
    """Read the request body (kept up to ``limit`` bytes, the rest discarded)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        if size < limit:
            chunks.append(chunk)
            size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


async def _send_json(
    send: Send, status: int, body: object, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
