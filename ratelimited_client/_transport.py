"""``RateLimitedTransport``: the throttle as an httpx transport.

All behaviour lives here, so any httpx-based client (an OpenAPI-generated
one, say) gets it by being handed this transport.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import typing
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, TypeAlias, Unpack

import anyio
import httpx
import tenacity

from ._errors import ConfigurationError, DeadlineExceededError, RetryAfterTooLongError
from ._hooks import (
    ROUTE_EXTENSION,
    Dispatcher,
    Paused,
    QuotaObserved,
    RequestCompleted,
    RequestSent,
    Throttled,
    check_hooks,
)
from ._oauth import AUTH_EXTENSION
from ._options import (
    COST_EXTENSION,
    KEY_EXTENSION,
    ThrottleOptions,
    build_throttle,
    check_dialects,
    check_key,
    check_retry,
    lists_throttle_options,
    new_budget,
    request_cost,
    resolve_options,
)
from ._retry import (
    IDEMPOTENT_METHODS,
    RetryBudget,
    RetryDecision,
    RetryEvent,
    RetryPolicy,
    decide,
    replayable,
)
from ._signals import (
    HeaderScan,
    RateLimitSignal,
    ServerClocks,
    builtin_only,
    parse_signal,
    quiet,
    scan_headers,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Hashable
    from types import TracebackType

    from ._signals import Dialect
    from ._throttle import Permit, Throttle, ThrottleCore, ThrottleStatistics
    from ._types import KeyFunc

__all__ = ["ClientState", "RateLimitedTransport", "origin_key"]

logger = logging.getLogger("ratelimited_client")

# Error bodies up to this size are read for rate-limit signals (Discord, OpenAI ...).
_MAX_SIGNAL_BODY = 64 * 1024
# One attempt's answer: the response and what it said of rate limits (``None``: nothing).
Answer: TypeAlias = "tuple[httpx.Response, RateLimitSignal | None]"
# The pauses of an answer that began none (shared: only ever replaced, never changed).
_NO_PAUSES: list[tuple[float, str]] = []


def _wants_body(response: httpx.Response) -> bool:
    """A small JSON error response: its body may name a wait (Discord, OpenAI ...).

    Only for status >= 400, a JSON content type and a declared length up to
    64 KiB (a success body is read inside the attempt too, see ``_small_body``,
    but never parsed).
    """
    if response.status_code < 400 or "json" not in response.headers.get("content-type", ""):
        return False
    length = response.headers.get("content-length", "")
    return length.isdigit() and 0 < int(length) <= _MAX_SIGNAL_BODY


def _small_body(scan: HeaderScan) -> bool:
    """A body of declared length up to 64 KiB: read inside the attempt, so a connection
    dropped in the middle of it fails the attempt (and is retried like any network
    error) instead of failing the caller's read after the call has returned."""
    return scan.length is not None and scan.length <= _MAX_SIGNAL_BODY


async def _read_json(response: httpx.Response) -> object:
    await response.aread()
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def _current_loop() -> object:
    """The running event loop: the asyncio loop, or trio's run (its root task)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        import trio  # only ever reached under trio

        return trio.lowlevel.current_root_task()


def _route(request: httpx.Request) -> str | None:
    route = request.extensions.get(ROUTE_EXTENSION)
    return route if isinstance(route, str) else None


def origin_key(request: httpx.Request) -> str:
    """The default bucket key: the request's origin, ``"scheme://host:port"``."""
    url = request.url
    port = url.port
    if port is None:
        port = 443 if url.scheme == "https" else 80
    return f"{url.scheme}://{url.host}:{port}"


class _PermitStream(httpx.AsyncByteStream):
    """Private. The response body; closing it gives back the concurrency slot."""

    def __init__(self, stream: httpx.AsyncByteStream, permit: Permit) -> None:
        self._stream = stream
        self._permit = permit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._permit.release()


@dataclass(frozen=True, slots=True)
class ClientState:
    """Private. What every transport of one client shares: one quota, one budget, the hooks."""

    throttle: ThrottleCore
    key: KeyFunc
    dialects: tuple[Dialect, ...]
    retry: RetryPolicy | None
    budget: RetryBudget | None
    hooks: Dispatcher
    server_clocks: ServerClocks = field(default_factory=ServerClocks)
    # Only built-in dialects: a silent answer (``quiet``) needs no parsing.
    builtin_dialects: bool = True

    @classmethod
    def build(cls, options: ThrottleOptions, *, sync: bool = False) -> ClientState:
        """Validate every throttle option (naming the bad one) and build the state."""
        retry = options["retry"]
        throttle = build_throttle(
            rate=options["rate"],
            max_concurrency=options["max_concurrency"],
            max_queued=options["max_queued"],
            latency_proof=options["latency_proof"],
            learn=options["learn"],
            slow_start=options["slow_start"],
            max_wait=check_retry(retry),
            clock=options["clock"],
            sync=sync,
            bucket_rates=options["bucket_rates"],
            backend=options["backend"],
        )
        chosen = check_dialects(options["dialects"])
        return cls(
            throttle=throttle,
            key=check_key(options["key"]) or origin_key,
            dialects=chosen,
            builtin_dialects=builtin_only(chosen),
            retry=retry,
            budget=new_budget(retry),
            hooks=Dispatcher(check_hooks(options["metrics"])),
        )

    def statistics(self) -> ThrottleStatistics:
        stats = self.throttle.statistics()
        if self.budget is None:
            return stats
        return dataclasses.replace(
            stats, retry_budget_left=self.budget.left(self.throttle.clock.now())
        )


class _TransportCore:
    """Private. What the async and the sync transport share: options, keys, signals."""

    _shared: ClientState
    _throttle: ThrottleCore
    _key: KeyFunc
    _dialects: tuple[Dialect, ...]
    _retry: RetryPolicy | None
    _budget: RetryBudget | None
    _hooks: Dispatcher

    def _init_state(self, shared: ClientState) -> None:
        self._shared = shared
        self._throttle = shared.throttle
        self._key = shared.key
        self._dialects = shared.dialects
        self._retry = shared.retry
        self._budget = shared.budget
        self._hooks = shared.hooks

    def statistics(self) -> ThrottleStatistics:
        """A snapshot of the throttle: in flight, queued, per-bucket usage, budget left."""
        return self._shared.statistics()

    def _key_and_origin(self, request: httpx.Request) -> tuple[Hashable, str]:
        """The request's bucket key and its origin (the same string by default)."""
        origin = origin_key(request)
        if self._key is origin_key and KEY_EXTENSION not in request.extensions:
            return origin, origin
        override = request.extensions.get(KEY_EXTENSION)
        return (override if override is not None else self._key(request)), origin

    def _quiet(self, response: httpx.Response, body: object, scan: HeaderScan) -> bool:
        """The answer says nothing the dialects read (most successes): no signal to parse."""
        return self._shared.builtin_dialects and quiet(response.status_code, body, scan)

    def _read_signal(
        self,
        response: httpx.Response,
        body: object,
        received_at: float,
        wall_now: float,
        origin: str,
    ) -> RateLimitSignal:
        status = response.status_code
        try:
            return parse_signal(
                status,
                response.headers,
                body=body,
                received_at=received_at,
                wall_now=wall_now,
                max_wait=self._throttle.max_wait,
                dialects=self._dialects,
                server_clock=self._shared.server_clocks.get(origin),
            )
        except Exception:  # the parser promises not to raise; a request never breaks on it
            logger.debug("rate-limit headers could not be read", exc_info=True)
            return RateLimitSignal(
                status=response.status_code,
                received_at=received_at,
                quotas=(),
                retry=None,
                throttled=False,
                dialects=(),
                cached=False,
            )


class _Named:
    """Private. The bucket and route names of a request, for events, only when asked."""

    __slots__ = ()

    key: Hashable
    request: httpx.Request

    @property
    def bucket(self) -> str:
        return str(self.key)

    @property
    def route(self) -> str | None:
        return _route(self.request)


class _Try(_Named):
    """Private. One attempt's bookkeeping and events, the same for async and sync.

    The events (and the bucket and route names they carry) are built only if a hook
    or DEBUG logging hears them (``heard``); otherwise an attempt costs little more
    than its key and cost.
    """

    __slots__ = (
        "asked",
        "attempt",
        "core",
        "cost",
        "heard",
        "key",
        "origin",
        "pauses",
        "received_at",
        "request",
        "sent",
        "wall_now",
    )

    def __init__(
        self,
        core: _TransportCore,
        request: httpx.Request,
        attempt: int = 1,
        key: Hashable | None = None,
        origin: str | None = None,
    ) -> None:
        self.core = core
        self.request = request
        self.attempt = attempt
        extensions = request.extensions
        self.cost = request_cost(extensions) if COST_EXTENSION in extensions else 1.0
        # A call with retries works the key out once, for all its attempts.
        if key is None or origin is None:
            key, origin = core._key_and_origin(request)
        self.key = key
        self.origin = origin
        self.received_at = self.wall_now = 0.0
        self.pauses: list[tuple[float, str]] = _NO_PAUSES
        heard = self.heard = core._hooks.per_request()
        if heard:
            self.asked = self.sent = core._throttle.clock.now()

    def admitted(self, permit: Permit) -> None:
        waited = permit.sent_at - self.asked
        throttle = self.core._throttle
        self.core._hooks.emit(
            "on_throttled", Throttled(self.bucket, self.route, waited, throttle.queued)
        )

    def sending(self) -> None:
        request = self.request
        self.core._hooks.emit(
            "on_request_sent",
            RequestSent(request.method, request.url.path, self.bucket, self.route, self.attempt),
        )
        self.sent = self.core._throttle.clock.now()

    def failed(self, exc: Exception) -> None:
        if self.heard:
            duration = self.core._throttle.clock.now() - self.sent
            self._completed(None, duration, type(exc).__name__, throttled=False)

    def answered(
        self, response: httpx.Response, body: object, permit: Permit, scan: HeaderScan
    ) -> RateLimitSignal | None:
        """Read the answer's signal, feed it to the bucket, report it. (Settles first.)
        ``None`` for an answer that says nothing of rate limits."""
        core = self.core
        if core._quiet(response, body, scan):
            permit.observe_quiet(response.status_code, self.received_at, cached=scan.cached)
            if self.heard:
                self._completed(
                    response.status_code, self.received_at - self.sent, None, throttled=False
                )
            return None
        signal = core._read_signal(response, body, self.received_at, self.wall_now, self.origin)
        pauses = self.pauses = permit.observe(signal, self.origin)
        if self.heard:
            self._completed(
                response.status_code,
                self.received_at - self.sent,
                None,
                throttled=signal.throttled,
                ignored_wait=signal.ignored_wait,
            )
            for quota in signal.quotas:
                reset_in = None if quota.reset_at is None else quota.reset_at - self.received_at
                core._hooks.emit(
                    "on_quota",
                    QuotaObserved(
                        self.bucket,
                        quota.name,
                        quota.dialect,
                        quota.limit,
                        quota.remaining,
                        reset_in,
                    ),
                )
        for delay, source in pauses:
            core._hooks.emit("on_paused", Paused(self.bucket, delay, source))
        return signal

    def _completed(
        self,
        status: int | None,
        duration: float,
        error: str | None,
        *,
        throttled: bool,
        ignored_wait: bool = False,
    ) -> None:
        request = self.request
        self.core._hooks.emit(
            "on_request_completed",
            RequestCompleted(
                request.method,
                request.url.path,
                self.bucket,
                self.route,
                self.attempt,
                status,
                duration,
                error,
                throttled,
                ignored_wait,
            ),
        )


class RateLimitedTransport(_TransportCore, httpx.AsyncBaseTransport):
    """An httpx transport that sends through a throttle: never over the quota.

    Wraps another transport (by default ``httpx.AsyncHTTPTransport()``). Every
    request waits for its bucket's quota and, with ``max_concurrency``, for a
    concurrency slot, in arrival order; then it is sent at once.

    Usage::

        transport = RateLimitedTransport(rate=Rate.parse("50/minute"), max_concurrency=10)
        async with httpx.AsyncClient(transport=transport, base_url=API) as client:
            await client.get("/documents")

    Limits are **per transport instance, in this process**: two transports (or
    two processes) with ``rate="50/minute"`` may together send 100 a minute.

    Args:
        transport: the transport that really sends; closed with this one.
        rate: a :class:`Rate` (or text like ``"50/minute"``), a
            :class:`TokenBucket` / :class:`SlidingWindow`, a list of them that
            must all hold at once, or ``None`` for no local limit.
        bucket_rates: buckets with a quota of their own, by key, e.g.
            ``{"writes": "10/minute"}`` (with a ``key`` that returns ``"writes"``);
            every other bucket uses ``rate``.
        max_concurrency: most requests in flight at once (from admission until
            the response is closed); ``None`` for no cap.
        max_queued: most requests allowed to wait; one more fails at once with
            :class:`QueueFullError`. ``None`` for no bound.
        key: maps a request to its quota bucket; default one bucket per origin
            (scheme, host, port). A request's ``extensions["ratelimit_key"]``
            overrides it.
        latency_proof: count each slot as used from sending until the response
            has arrived, and only then start its period, so the server never
            sees more than the quota however the network delays requests.
            Costs one round trip per period of throughput.
        retry: the :class:`RetryPolicy`; ``None`` never retries. The default
            retries 408/429/502/503/504 and network errors up to 4 attempts
            with full-jitter backoff, within a 20 % retry budget.
        learn: with no ``rate``, learn the quota from the server's signals: one
            probe first, then a slow start, then the limit the headers (or the
            429s) reveal. ``False`` sends without any local limit.
        slow_start: with a ``rate`` that allows a burst, reach the burst by
            doubling the requests in flight per round trip (1, 2, 4, ...; for at
            most a second), so a server that takes no burst rejects a couple of
            requests, not the whole burst; its 429s then set the burst it takes
            (a WARNING, ``BucketStatistics.corrected``). ``False`` sends the
            configured burst at once.
        dialects: the rate-limit header parsers to read responses with;
            default every built-in one (``DEFAULT_DIALECTS``). Add your own
            with ``dialects=[*DEFAULT_DIALECTS, my_dialect]``.
        metrics: a :class:`Hooks` object (e.g. :class:`PrometheusMetrics`) or
            several, told of every decision: sends, waits, pauses, retries,
            quotas, token refreshes. Logging needs none (``ratelimited_client`` logger).
        backend: where the limits are decided: in this process (``None``, the
            default) or in Redis (:class:`RedisBackend`), one quota shared by
            every process and host using it.
        clock: where time comes from; for tests (see ``ratelimited_client.testing``).

    Per request, ``extensions={"ratelimit_cost": n}`` charges ``n`` units
    instead of 1.

    Raises:
        ConfigurationError: (a ``ValueError``) at construction, naming the bad option.

    .. versionadded:: 0.1
    """

    @lists_throttle_options
    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        **options: Unpack[ThrottleOptions],
    ) -> None:
        if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
            raise ConfigurationError(
                f"transport must be an httpx.AsyncBaseTransport, got {transport!r}"
            )
        shared = ClientState.build(resolve_options(options, "RateLimitedTransport"))
        self._init(transport or httpx.AsyncHTTPTransport(), shared)
        shared.hooks.attach(self)

    def _init(self, transport: httpx.AsyncBaseTransport, shared: ClientState) -> None:
        self._transport = transport
        self._init_state(shared)
        self._gate = typing.cast("Throttle", shared.throttle)
        self._loop: object = None  # the event loop of the last request

    def _moved_to(self, loop: object) -> None:
        """A request from another event loop than the last one (a second ``asyncio.run``,
        a per-test loop, trio after asyncio). The throttle does not care; an httpx
        connection pool still holding the old loop's connections does, and would fail
        later with "Event loop is closed": say so now, naming the cause."""
        previous, self._loop = self._loop, loop
        pool = getattr(self._transport, "_pool", None)
        connections = getattr(pool, "connections", ())
        if previous is not None and connections:
            self._loop = previous
            raise RuntimeError(
                "this RateLimitedClient/RateLimitedTransport was used in another event loop "
                f"and its connection pool still holds {len(connections)} connection(s) of "
                "that loop; httpx connections cannot move between event loops. Create the "
                "client inside the running loop (for example `async with "
                "RateLimitedClient(...)` inside each `asyncio.run`), or keep no idle "
                "connections (`limits=httpx.Limits(max_keepalive_connections=0)`)"
            )

    @classmethod
    def _sharing(
        cls, transport: httpx.AsyncBaseTransport, shared: ClientState
    ) -> RateLimitedTransport:
        """Private. A transport over ``transport`` sharing one client's state."""
        self = cls.__new__(cls)
        self._init(transport, shared)
        return self

    @property
    def transport(self) -> httpx.AsyncBaseTransport:
        """The wrapped transport that really sends."""
        return self._transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        loop = _current_loop()
        if loop is not self._loop:
            self._moved_to(loop)
        policy = self._retry
        if policy is None:
            response, _ = await self._attempt(request, None)
            return response
        call = _Call(self, policy, request)
        if call.deadline is None:
            call._begin()
            return await call._run()  # one coroutine frame less on every resume
        return await call.run()

    async def _attempt(
        self,
        request: httpx.Request,
        deadline: float | None,
        attempt: int = 1,
        key: Hashable | None = None,
        origin: str | None = None,
    ) -> Answer:
        """One try: through the throttle, to the wire, and the answer read back."""
        step = _Try(self, request, attempt, key, origin)
        throttle = self._gate
        clock = throttle.clock
        permit = await throttle.acquire(step.key, step.cost, origin=step.origin, deadline=deadline)
        if step.heard:
            step.admitted(permit)
        try:
            auth = request.extensions.get(AUTH_EXTENSION)
            if auth is not None:
                auth.attach_hooks(self._hooks)
                await auth.before_send(request)
            if step.heard:
                step.sending()
            try:
                response = await self._transport.handle_async_request(request)
            except Exception as exc:
                step.failed(exc)
                raise
            step.received_at = clock.now()
            step.wall_now = time.time()  # read against Date-less epoch resets
            scan = scan_headers(response.headers)
            body = None
            wants = _wants_body(response)
            if wants or _small_body(scan):
                if wants:
                    # The answer may pause the bucket: nobody leaves until it is read.
                    permit.hold()
                try:
                    body = await _read_json(response) if wants else await response.aread()
                except Exception as exc:
                    await response.aclose()
                    step.failed(exc)
                    raise
                if not wants:
                    body = None
            permit.settle()
        except BaseException:
            permit.release()
            raise
        signal = step.answered(response, body, permit, scan)
        if throttle.backend is not None:
            try:
                await throttle.after_answer(permit, step.pauses)
            except BaseException:
                # Cancelled (or worse) while telling the backend: the slot and the
                # connection go back, whatever becomes of the call.
                permit.release()
                with anyio.CancelScope(shield=True):
                    await response.aclose()
                raise
        if response.is_closed or not isinstance(response.stream, httpx.AsyncByteStream):
            # Already read (an in-memory or small rejected body) or sync-only: nothing to hold.
            permit.release()
        else:
            response.stream = _PermitStream(response.stream, permit)
        return response, signal

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def __aenter__(self) -> RateLimitedTransport:
        await self._transport.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self._transport.__aexit__(exc_type, exc_value, traceback)

    def __repr__(self) -> str:
        return f"<RateLimitedTransport {self._throttle!r} over {type(self._transport).__name__}>"


_UNDECIDED: Final = RetryDecision(retry=False, reason="")


class _CallCore(_Named):
    """Private. One call with retries: tenacity strategies shared by async and sync."""

    # Slots: a call lives as long as its request waits, and 100,000 may wait at once.
    __slots__ = (
        "attempts",
        "budget",
        "can_replay",
        "clock",
        "deadline",
        "decision",
        "hooks",
        "key",
        "origin",
        "policy",
        "previous_backoff",
        "request",
        "started",
        "transport",
    )

    def __init__(
        self, transport: _TransportCore, policy: RetryPolicy, request: httpx.Request
    ) -> None:
        self.transport = transport
        self.policy = policy
        self.request = request
        self.clock = transport._throttle.clock
        self.budget = transport._budget
        self.started = self.clock.now()
        self.deadline = None if policy.deadline is None else self.started + policy.deadline
        self.decision = _UNDECIDED
        self.hooks = transport._hooks
        self.key, self.origin = transport._key_and_origin(request)
        self.attempts = 0
        self.can_replay = replayable(request)
        self.previous_backoff = policy.backoff
        if (
            policy.auto_idempotency_key
            and request.method not in IDEMPOTENT_METHODS
            and policy.idempotency_header not in request.headers
        ):
            request.headers[policy.idempotency_header] = uuid.uuid4().hex

    def _deadline_passed(self) -> DeadlineExceededError:
        event = RetryEvent(
            attempt=self.attempts,
            reason="deadline",
            wait=0.0,
            method=self.request.method,
            status=None,
            bucket=self.bucket,
            route=self.route,
        )
        self.hooks.emit("on_give_up", event)
        _emit(self.policy.on_give_up, event)
        return DeadlineExceededError(deadline=self.policy.deadline or 0.0, reason="it passed")

    def _begin(self) -> None:
        if self.budget is not None:
            self.budget.record_request(self.started)

    def _retryable(
        self,
        response: httpx.Response | None,
        signal: RateLimitSignal | None,
        error: BaseException | None,
    ) -> bool:
        """Whether the first attempt's outcome calls for a retry. Most do not, and then
        the call ends without building tenacity's machinery at all."""
        if (
            response is not None
            and response.status_code not in self.policy.statuses
            and (signal is None or signal.retry is None)
        ):
            return False  # what ``decide`` says of it, without building its reason
        self.decision = decide(
            self.policy, self.request, response, error, signal, can_replay=self.can_replay
        )
        return self.decision.retry

    def _strategies(self) -> dict[str, typing.Any]:
        return {
            "stop": self._stop,
            "wait": self._wait,
            "retry": self._retry,
            "retry_error_callback": self._give_up,
            "reraise": True,
        }

    def _checked(self, response: httpx.Response, signal: RateLimitSignal | None) -> Answer:
        if signal is None:
            return response, signal
        retry = signal.retry
        if signal.throttled and retry is not None and retry.over_cap:
            raise RetryAfterTooLongError(
                retry_after=retry.requested or 0.0, limit=self.policy.max_retry_after
            )
        return response, signal

    # -- tenacity strategies --------------------------------------------------------

    def _outcome(
        self, state: tenacity.RetryCallState
    ) -> tuple[httpx.Response | None, RateLimitSignal | None, BaseException | None]:
        outcome = state.outcome
        assert outcome is not None  # noqa: S101 - strategies run after an attempt
        if outcome.failed:
            return None, None, outcome.exception()
        response, signal = outcome.result()
        return response, signal, None

    def _retry(self, state: tenacity.RetryCallState) -> bool:
        response, signal, error = self._outcome(state)
        self.decision = decide(
            self.policy, self.request, response, error, signal, can_replay=self.can_replay
        )
        return self.decision.retry

    def _wait(self, state: tenacity.RetryCallState) -> float:
        _, signal, _ = self._outcome(state)
        backoff = self.policy.backoff_for(state.attempt_number, self.previous_backoff)
        self.previous_backoff = backoff
        server = signal.retry.delay if signal is not None and signal.retry is not None else None
        return max(backoff, server or 0.0)

    def _stop(self, state: tenacity.RetryCallState) -> bool:
        if state.attempt_number >= self.policy.attempts:
            self.decision = RetryDecision(retry=False, reason="attempts exhausted")
            return True
        now = self.clock.now()
        if self.deadline is not None and now + state.upcoming_sleep > self.deadline:
            self.decision = RetryDecision(retry=False, reason="deadline")
            return True
        if self.budget is not None and not self.budget.try_spend(now):
            self.decision = RetryDecision(retry=False, reason="retry budget exhausted")
            response, _, _ = self._outcome(state)
            self.hooks.emit("on_budget_exhausted", self._event(state, response, 0.0))
            return True
        return False

    def _retrying(self, state: tenacity.RetryCallState) -> tuple[httpx.Response | None, RetryEvent]:
        """Before a retry's wait: its event, reported (the caller closes the response)."""
        response, _, _ = self._outcome(state)
        event = self._event(state, response, state.upcoming_sleep)
        self.hooks.emit("on_retry", event)
        _emit(self.policy.on_retry, event)
        return response, event

    def _event(
        self, state: tenacity.RetryCallState, response: httpx.Response | None, wait: float
    ) -> RetryEvent:
        return RetryEvent(
            attempt=state.attempt_number,
            reason=self.decision.reason,
            wait=wait,
            method=self.request.method,
            status=None if response is None else response.status_code,
            bucket=self.bucket,
            route=self.route,
        )

    def _give_up(self, state: tenacity.RetryCallState) -> Answer:
        response, signal, error = self._outcome(state)
        if state.attempt_number > 1 or self.decision.reason in (
            "retry budget exhausted",
            "deadline",
        ):
            event = self._event(state, response, 0.0)
            self.hooks.emit("on_give_up", event)
            _emit(self.policy.on_give_up, event)
        if error is not None:
            raise error
        assert response is not None  # noqa: S101
        return response, signal


class _Call(_CallCore):
    """Private. The async call: ``tenacity.AsyncRetrying`` over the transport's attempts."""

    __slots__ = ()

    transport: RateLimitedTransport

    async def run(self) -> httpx.Response:
        self._begin()
        if self.deadline is None:
            return await self._run()
        with self.clock.cancel_scope(self.deadline) as scope:
            return await self._run()
        assert scope.cancelled_caught  # noqa: S101 - only a passed deadline gets here
        raise self._deadline_passed()

    async def _run(self) -> httpx.Response:
        # The first attempt inline (no ``_attempt`` frame): every I/O step of the
        # wrapped transport resumes through each coroutine frame above it.
        first: Answer | Exception
        self.attempts += 1
        try:
            answer = await self.transport._attempt(
                self.request, self.deadline, self.attempts, self.key, self.origin
            )
        except Exception as error:
            if not self._retryable(None, None, error):
                raise
            first = error
        else:
            try:
                first = self._checked(*answer)
            except RetryAfterTooLongError:
                await answer[0].aclose()
                raise
            if not self._retryable(first[0], first[1], None):
                return first[0]
        # A retry is due: tenacity takes over, starting from the first outcome.
        pending = [first]

        async def attempt() -> Answer:
            if pending:
                outcome = pending.pop()
                if isinstance(outcome, Exception):
                    raise outcome
                return outcome
            return await self._attempt()

        retrying = tenacity.AsyncRetrying(
            sleep=self._sleep, before_sleep=self._before_sleep, **self._strategies()
        )
        response: httpx.Response
        response, _ = await retrying(attempt)
        return response

    async def _attempt(self) -> Answer:
        self.attempts += 1
        response, signal = await self.transport._attempt(
            self.request, self.deadline, self.attempts, self.key, self.origin
        )
        try:
            return self._checked(response, signal)
        except RetryAfterTooLongError:
            await response.aclose()
            raise

    async def _sleep(self, seconds: float) -> None:
        await self.clock.sleep_until(self.clock.now() + seconds)

    async def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        response, _ = self._retrying(state)
        if response is not None:
            await response.aclose()  # a retried response is closed, its slots given back


def _emit(hook: Callable[[RetryEvent], object] | None, event: RetryEvent) -> None:
    """Call a retry hook; a hook that raises never breaks a request."""
    if hook is None:
        return
    try:
        hook(event)
    except Exception:
        logger.warning("retry hook %r raised", hook, exc_info=True)
