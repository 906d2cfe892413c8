"""Private. What one call and one attempt do, written once for every HTTP stack.

A request's path (through the throttle, OAuth, the wire, the answer read
back, the signal observed, the permit settled and released, a retry decided,
a wait) is a generator that *yields effects* and receives their results: the
way ``httpx.Auth.auth_flow`` is one generator with a sync and an async driver.
The drivers (``_adapter.py``) are the only code that awaits or blocks; the
flows here import no HTTP library, no event loop and no thread primitive, and
read requests and responses through the protocols of ``_http.py``.

Rules the flows keep:

* a handler of ``BaseException`` (a cancellation) only does pure clean-up
  (``permit.release()``) and re-raises; it never yields, so no I/O starts
  under cancellation;
* an effect that fails is thrown back into the flow at its ``yield``, so the
  flow's ``try`` blocks see it as if the call had been made inline;
* retries are tenacity's: its controller (``Retrying.iter``) decides, the
  flow performs what it decides (an attempt, or a wait), as tenacity's own
  ``Retrying.__call__`` does.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import typing
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import tenacity

from ._call_options import CALL_EXTENSION
from ._errors import DeadlineExceededError, RetryAfterTooLongError
from ._hooks import (
    Dispatcher,
    Paused,
    QuotaObserved,
    RequestCompleted,
    RequestSent,
    Throttled,
    check_hooks,
)
from ._http import body_in_memory, origin_key, route_of
from ._metering import UNITS_EXTENSION, ModelTokens, UsageTap, check_meter, request_units
from ._oauth import AUTH_EXTENSION
from ._operations import check_operations
from ._options import (
    COST_EXTENSION,
    KEY_EXTENSION,
    ThrottleOptions,
    build_throttle,
    check_dialects,
    check_key,
    check_retry,
    new_budget,
    request_cost,
)
from ._priority import TENANT_EXTENSION, request_priority
from ._retry import IDEMPOTENT_METHODS, RetryBudget, RetryDecision, RetryEvent, RetryPolicy, decide
from ._signals import (
    HeaderScan,
    RateLimitSignal,
    ServerClocks,
    builtin_only,
    parse_signal,
    scan_headers,
)
from ._test_mode import applied as test_mode_applied

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Hashable, Mapping

    from ._clock import Clock
    from ._http import HttpLibrary, RequestView, ResponseView
    from ._metering import UnitMeter
    from ._operations import OperationPolicy
    from ._signals import Dialect
    from ._throttle import Permit, ThrottleCore, ThrottleStatistics

__all__ = [
    "READ_SIGNAL",
    "Admit",
    "Attempt",
    "Authorize",
    "Call",
    "ClientState",
    "Close",
    "Publish",
    "ReadBody",
    "Send",
    "Sleep",
    "after_first",
    "attempt_flow",
    "begin_call",
    "concluded",
    "json_or_none",
    "quick_admit",
    "to_read",
]

logger = logging.getLogger("ratelimited_client")

# Error bodies up to this size are read for rate-limit signals (Discord, OpenAI ...).
MAX_SIGNAL_BODY: Final = 64 * 1024
# The pauses of an answer that began none (shared: only ever replaced, never changed).
_NO_PAUSES: list[tuple[float, str]] = []


# -- effects: what a flow asks its driver to do ---------------------------------------


class Admit:
    """Wait for the bucket's quota and a concurrency slot. -> the ``Permit``.

    ``queue_wait``: the call's own bound on this wait (``CallOptions``); the driver
    then gives up at ``deadline`` however the wait goes, the request leaving the
    queue with nothing taken."""

    __slots__ = ("cost", "deadline", "key", "origin", "priority", "queue_wait", "tenant", "units")

    def __init__(
        self,
        key: Hashable,
        cost: float,
        origin: str,
        deadline: float | None,
        queue_wait: float | None = None,
        units: Mapping[str, float] | None = None,
        priority: int = 0,
        tenant: Hashable | None = None,
    ) -> None:
        self.key = key
        self.cost = cost
        self.origin = origin
        self.deadline = deadline
        self.queue_wait = queue_wait
        self.units = units  # other quotas' units (tokens), reserved on admission
        self.priority = priority  # its place in the bucket's queue: higher sooner
        self.tenant = tenant  # whose share of the bucket it takes

    def terms(self) -> dict[str, Any]:
        """What the throttle's ``acquire`` (or ``acquire_sync``) takes beside the key
        and the cost."""
        return {
            "origin": self.origin,
            "deadline": self.deadline,
            "units": self.units,
            "priority": self.priority,
            "tenant": self.tenant,
        }


class Authorize:
    """Let an OAuth flow put a fresh token on the request (it may refresh). -> None."""

    __slots__ = ("auth", "request")

    def __init__(self, auth: Any, request: RequestView) -> None:
        self.auth = auth
        self.request = request


class Send:
    """Send through the wrapped transport. -> the response (headers read, body not).
    ``deadline``: the call's, which a blocking driver caps each timeout to."""

    __slots__ = ("deadline", "request")

    def __init__(self, request: RequestView, deadline: float | None) -> None:
        self.request = request
        self.deadline = deadline


class ReadBody:
    """Read the whole body. -> the bytes."""

    __slots__ = ("response",)

    def __init__(self, response: Any) -> None:
        self.response = response


class Close:
    """Close the response (its permit, if bound, is released). -> None."""

    __slots__ = ("response",)

    def __init__(self, response: Any) -> None:
        self.response = response


class Publish:
    """Tell the shared backend what the answer used and said. -> None. If this fails
    or is cancelled, the driver releases the permit and closes the response."""

    __slots__ = ("pauses", "permit", "response")

    def __init__(self, permit: Permit, pauses: list[tuple[float, str]], response: Any) -> None:
        self.permit = permit
        self.pauses = pauses
        self.response = response


class Sleep:
    """Wait until ``until`` on the throttle's clock. -> None."""

    __slots__ = ("until",)

    def __init__(self, until: float) -> None:
        self.until = until


Effect: TypeAlias = "Admit | Authorize | Send | ReadBody | Close | Publish | Sleep"
# One attempt's answer: the response and what it said of rate limits (``None``: nothing).
Answer: TypeAlias = "tuple[Any, RateLimitSignal | None]"
# A flow: yields effects, is sent their results, returns its value.
Flow: TypeAlias = "Generator[Effect, Any, Any]"
# Binds a response to its permit (wraps the stream, or releases at once): per stack and side.
Bind: TypeAlias = "Callable[[Any, Permit], None]"


# -- what every transport of one client shares ----------------------------------------


@dataclass(frozen=True, slots=True)
class ClientState:
    """Private. What every transport of one client shares: one quota, one budget, the hooks."""

    throttle: ThrottleCore
    key: Callable[[Any], Hashable]
    dialects: tuple[Dialect, ...]
    retry: RetryPolicy | None
    budget: RetryBudget | None
    hooks: Dispatcher
    server_clocks: ServerClocks = field(default_factory=ServerClocks)
    # Only built-in dialects: a silent answer (``quiet``) needs no parsing.
    builtin_dialects: bool = True
    # The key is the origin (no ``key=`` given): one string serves as both.
    keyed_by_origin: bool = True
    # What requests cost in other units (tokens); ``None``: only what they state.
    meter: UnitMeter | None = None
    # Each operation's bucket, cost, priority and retry safety (from OpenAPI).
    operations: OperationPolicy | None = None
    # Maps a request to its tenant (its fair share of the bucket); ``None``: none.
    tenant: Callable[[Any], Hashable] | None = None
    # The meter is asked about every request (a meter of the user's), not only about
    # POSTs (the default ``ModelTokens`` prices the model calls only): from ``meter``.
    meter_all_methods: bool = field(init=False)

    # Whether a request that asks nothing of its own (no extension in ``ASKS_MORE``,
    # not metered, nobody hearing its events) may start its first attempt the plainest
    # way (``_plain_start`` of the transports): no shared backend, no operations, keyed
    # by origin, and a retry policy with no deadline and no idempotency key to set.
    plain_starts: bool = field(init=False)

    def __post_init__(self) -> None:
        meter = self.meter
        every = meter is not None and type(meter) is not ModelTokens
        object.__setattr__(self, "meter_all_methods", every)  # frozen: set once, here
        retry = self.retry
        plain = (
            self.throttle.backend is None
            and self.operations is None
            and self.keyed_by_origin
            and not every
            and (retry is None or (retry.deadline is None and not retry.auto_idempotency_key))
        )
        object.__setattr__(self, "plain_starts", plain)

    @classmethod
    def build(cls, options: ThrottleOptions, *, sync: bool = False) -> ClientState:
        """Validate every throttle option (naming the bad one) and build the state.
        Under ``testing.virtual_time()`` an async client takes its clock, seeded
        randomness and a recorder from it."""
        rng = None
        if not sync:
            options, rng = test_mode_applied(options)
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
            unit_rates=options["unit_rates"],
            promote_after=options["promote_after"],
            priority_reserve=options["priority_reserve"],
            tenant_weights=options["tenant_weights"],
            tenant_rates=options["tenant_rates"],
        )
        if rng is not None:
            throttle.rng = rng
        chosen = check_dialects(options["dialects"])
        key = check_key(options["key"])
        hooks = Dispatcher(check_hooks(options["metrics"]))
        throttle.on_units_settled = hooks.units_settled
        return cls(
            throttle=throttle,
            key=key or origin_key,
            dialects=chosen,
            builtin_dialects=builtin_only(chosen),
            keyed_by_origin=key is None,
            retry=retry,
            budget=new_budget(retry),
            hooks=hooks,
            meter=check_meter(options["meter"]),
            operations=check_operations(options["operations"]),
            tenant=check_key(options["tenant"], "tenant"),
        )

    def statistics(self) -> ThrottleStatistics:
        stats = self.throttle.statistics()
        if self.budget is None:
            return stats
        return dataclasses.replace(
            stats, retry_budget_left=self.budget.left(self.throttle.clock.now())
        )

    def key_and_origin(self, request: RequestView) -> tuple[Hashable, str]:
        """The request's bucket key and its origin (the same string by default)."""
        origin = origin_key(request)
        extensions = request.extensions
        if self.keyed_by_origin and KEY_EXTENSION not in extensions:
            return origin, origin
        override = extensions.get(KEY_EXTENSION)
        return (override if override is not None else self.key(request)), origin

    def read_signal(
        self, response: ResponseView, body: object, attempt: Attempt
    ) -> RateLimitSignal:
        """What the answer says of rate limits (the flow has ruled out a quiet one)."""
        status = response.status_code
        headers = response.headers
        try:
            return parse_signal(
                status,
                headers,
                body=body,
                received_at=attempt.received_at,
                wall_now=attempt.wall_now,
                max_wait=self.throttle.max_wait,
                dialects=self.dialects,
                server_clock=self.server_clocks.get(attempt.origin),
            )
        except Exception:  # the parser promises not to raise; a request never breaks on it
            logger.debug("rate-limit headers could not be read", exc_info=True)
            return RateLimitSignal(
                status=status,
                received_at=attempt.received_at,
                quotas=(),
                retry=None,
                throttled=False,
                dialects=(),
                cached=False,
            )


def wants_body(status: int, headers: Any, scan: HeaderScan) -> bool:
    """A small JSON error response: its body may name a wait (Discord, OpenAI ...).

    Only for status >= 400, a JSON content type and a declared length up to
    64 KiB (a success body of up to 64 KiB with a declared length is read inside
    the attempt too, so that a connection dropped in the middle of it fails the
    attempt, retried like any network error, rather than the caller's read after
    the call has returned; but it is never parsed).
    """
    if status < 400 or scan.length is None or not 0 < scan.length <= MAX_SIGNAL_BODY:
        return False
    return "json" in headers.get("content-type", "")


def call_tenant(state: ClientState, request: RequestView) -> Hashable | None:
    """A request's tenant: its ``ratelimit_tenant`` extension, else the client's
    ``tenant`` function's answer, else ``None``."""
    tenant = request.extensions.get(TENANT_EXTENSION)
    if tenant is None and state.tenant is not None:
        tenant = state.tenant(request)
    return tenant


def call_priority(extensions: Mapping[str, Any]) -> int:
    """A request's priority: its call's options' (``CallOptions.priority``), else its
    ``ratelimit_priority`` extension, else 0."""
    options = extensions.get(CALL_EXTENSION)
    if options is not None and options.priority is not None:
        return int(options.priority)
    return request_priority(extensions)


def _json_success(response: ResponseView) -> bool:
    return 200 <= response.status_code < 300 and "json" in response.headers.get("content-type", "")


def _settle_units(
    meter: UnitMeter | None,
    permit: Permit,
    response: ResponseView,
    content: bytes | None,
    usage_body: bool,
) -> None:
    """Settle a metered request's reservations by its answer (its headers read, its
    body too if it was): a success to the usage it reports (a JSON body now, a
    stream at its end, through a ``UsageTap``), the estimate kept where it reports
    none; a refusal (a 4xx, 429 included: nothing was processed) to nothing; a 5xx
    or anything else keeps the estimate (the server may have done the work)."""
    status = response.status_code
    if 400 <= status < 500:
        permit.settle_units(None, refused=True)
        return
    if meter is None or not 200 <= status < 300:
        permit.settle_units(None)
        return
    if usage_body:
        parsed = json_or_none(content or b"")
        permit.settle_units(meter.usage([parsed]) if parsed is not None else None)
        return
    if "text/event-stream" not in response.headers.get("content-type", ""):
        permit.settle_units(None)
        return
    tap = UsageTap(meter)
    if content is None:
        permit.tap = tap  # the stream's reader settles at its end
        return
    tap.feed(content)  # a short stream, read already
    permit.settle_units(tap.usage())


def json_or_none(content: bytes | None) -> object:
    """The JSON a body holds, or ``None`` (no body, or not JSON)."""
    if content is None:
        return None
    try:
        return json.loads(content)
    except ValueError:
        return None


# -- one attempt ----------------------------------------------------------------------


class _Named:
    """Private. The bucket and route names of a request, for events, only when asked."""

    __slots__ = ()

    key: Hashable
    request: RequestView

    @property
    def bucket(self) -> str:
        return str(self.key)

    @property
    def route(self) -> str | None:
        return route_of(self.request)


class Attempt(_Named):
    """Private. One attempt's bookkeeping and events.

    The events (and the bucket and route names they carry) are built only if a hook
    or DEBUG logging hears them (``heard``); otherwise an attempt costs little more
    than its key and cost.
    """

    __slots__ = (
        "asked",
        "attempt",
        "cost",
        "heard",
        "key",
        "origin",
        "pauses",
        "received_at",
        "request",
        "scan",
        "sent",
        "state",
        "wall_now",
    )

    scan: HeaderScan

    def __init__(
        self,
        state: ClientState,
        request: RequestView,
        attempt: int,
        key: Hashable,
        origin: str,
        cost: float,
        *,
        heard: bool = True,
    ) -> None:
        self.state = state
        self.request = request
        self.attempt = attempt
        self.cost = cost
        self.key = key
        self.origin = origin
        self.received_at = self.wall_now = 0.0
        self.pauses: list[tuple[float, str]] = _NO_PAUSES
        self.heard = heard
        if heard:
            self.asked = self.sent = state.throttle.clock.now()

    def admitted(self, permit: Permit, asked: Admit | None) -> None:
        """Admitted: through the queue as ``asked`` (its priority and tenant worked out
        already), or on the fast path (``None``: they are worked out here)."""
        waited = permit.sent_at - self.asked
        throttle = self.state.throttle
        if asked is None:
            rank = call_priority(self.request.extensions)
            tenant = call_tenant(self.state, self.request)
        else:
            rank, tenant = asked.priority, asked.tenant
        self.state.hooks.emit(
            "on_throttled",
            Throttled(
                self.bucket,
                self.route,
                waited,
                throttle.queued,
                rank,
                None if tenant is None else str(tenant),
            ),
        )

    def sending(self) -> None:
        request = self.request
        self.state.hooks.emit(
            "on_request_sent",
            RequestSent(request.method, request.url.path, self.bucket, self.route, self.attempt),
        )
        self.sent = self.state.throttle.clock.now()

    def completed(self, status: int, received_at: float) -> None:
        """A quiet answer (nothing of rate limits in it), reported."""
        self._completed(status, received_at - self.sent, None, throttled=False)

    def failed(self, exc: Exception) -> None:
        if self.heard:
            duration = self.state.throttle.clock.now() - self.sent
            self._completed(None, duration, type(exc).__name__, throttled=False)

    def answered(
        self, response: ResponseView, body: object, permit: Permit
    ) -> RateLimitSignal | None:
        """Read the answer's signal, feed it to the bucket, report it. (Settles first;
        a quiet answer never gets here: the flow observes it without a signal.)"""
        state = self.state
        signal = state.read_signal(response, body, self)
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
                state.hooks.emit(
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
            state.hooks.emit("on_paused", Paused(self.bucket, delay, source))
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
        self.state.hooks.emit(
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


def attempt_flow(
    state: ClientState,
    bind: Bind,
    request: RequestView,
    deadline: float | None,
    attempt: int = 1,
    key: Hashable | None = None,
    origin: str | None = None,
) -> Generator[Effect, Any, Answer]:
    """One try: through the throttle, to the wire, and the answer read back.

    Its bookkeeping is local; an ``Attempt`` is built only where events are heard
    (a hook, DEBUG logging) or the answer has a signal to read."""
    extensions = request.extensions
    cost = request_cost(extensions) if COST_EXTENSION in extensions else 1.0
    # A call with retries works the key out once, for all its attempts.
    if key is None or origin is None:
        key, origin = state.key_and_origin(request)
    step = (
        Attempt(state, request, attempt, key, origin, cost) if state.hooks.per_request() else None
    )
    throttle = state.throttle
    # Other quotas' units (a model call's tokens): stated, or the meter's estimate (of
    # a POST, or of any request: ``meter_all_methods``).
    units = (
        request_units(request, state.meter)
        if state.meter_all_methods
        or (request.method == "POST" and state.meter is not None)
        or UNITS_EXTENSION in extensions
        else None
    )
    permit = None if units else throttle.admit_now(key, cost, origin)
    asked = None
    if permit is None:  # it may have to wait: the driver's throttle queues it
        options = extensions.get(CALL_EXTENSION) if extensions else None
        rank = call_priority(extensions)
        tenant = call_tenant(state, request)
        if options is None or options.queue_wait is None:
            asked = Admit(key, cost, origin, deadline, None, units or None, rank, tenant)
        else:
            until = throttle.now() + options.queue_wait
            until = until if deadline is None else min(deadline, until)
            asked = Admit(key, cost, origin, until, options.queue_wait, units or None, rank, tenant)
        permit = yield asked
    if step is not None:
        step.admitted(permit, asked)
    try:
        auth = extensions.get(AUTH_EXTENSION)
        if auth is not None:
            auth.attach_hooks(state.hooks)
            yield Authorize(auth, request)
        if step is not None:
            step.sending()
        try:
            response = yield Send(request, deadline)
        except Exception as exc:
            if step is not None:
                step.failed(exc)
            raise
        received_at = throttle.now()
        scan = scan_headers(response.headers)
        reserved = permit.units
        # A metered success in JSON is read whatever its length: its usage settles.
        usage_body = bool(reserved) and _json_success(response)
        read = to_read(permit, response, scan, usage_body)
        content = None
        if read:
            content = body_in_memory(response)  # an in-memory transport's: nothing to read
            if content is None:
                try:
                    content = yield ReadBody(response)
                except Exception as exc:
                    yield Close(response)
                    if step is not None:
                        step.failed(exc)
                    raise
        body = json_or_none(content) if read == READ_SIGNAL else None
        if reserved:
            _settle_units(state.meter, permit, response, content, usage_body)
    except BaseException:
        permit.release()
        raise
    signal, pauses = concluded(
        state, request, permit, response, scan, body, received_at, step, attempt, key, origin, cost
    )
    if throttle.backend is not None:
        yield Publish(permit, pauses, response)
    bind(response, permit)
    return response, signal


# What ``to_read`` says of an answer's body: not read now (``None``), read now, or read
# now and parsed (an error's small JSON body may name a wait).
READ: Final = 1
READ_SIGNAL: Final = 2


def to_read(
    permit: Permit, response: ResponseView, scan: HeaderScan, usage_body: bool
) -> int | None:
    """Whether the attempt reads the answer's body before it ends: ``None`` (no),
    ``READ``, or ``READ_SIGNAL`` (and parses it: the permit then holds the bucket
    until the answer is observed, as the body may pause it).

    A declared length up to 64 KiB is read (``wants_body``); a metered success in JSON
    (``usage_body``) whatever its length."""
    length = scan.length
    if not usage_body and (length is None or length > MAX_SIGNAL_BODY):
        return None
    status = response.status_code
    # Only an error's body may name a wait (``wants_body`` asks the rest).
    if status >= 400 and wants_body(status, response.headers, scan):
        # The answer may pause the bucket: nobody leaves until it is read.
        permit.hold()
        return READ_SIGNAL
    return READ


def concluded(
    state: ClientState,
    request: RequestView,
    permit: Permit,
    response: ResponseView,
    scan: HeaderScan,
    body: object,
    received_at: float,
    step: Attempt | None,
    attempt: int,
    key: Hashable,
    origin: str,
    cost: float,
) -> tuple[RateLimitSignal | None, list[tuple[float, str]]]:
    """An attempt's answer observed (its body read if it was to be): the permit
    settled and fed what it said; what it said of rate limits (``None``: nothing)
    and the pauses it began."""
    status = response.status_code
    # ``quiet(status, body, scan)``, inline:
    if status < 400 and body is None and not scan.may_signal and state.builtin_dialects:
        # Most answers: a success that says nothing of rate limits: nothing to parse.
        # (Observing it settles the permit: its slots are dated.)
        permit.observe_quiet(status, received_at, cached=scan.cached)
        if step is not None:
            step.completed(status, received_at)
        return None, _NO_PAUSES
    permit.settle()  # the slots dated now, not after the parsing
    if step is None:
        step = Attempt(state, request, attempt, key, origin, cost, heard=False)
    step.received_at = received_at
    step.wall_now = time.time()  # read against Date-less epoch resets
    step.scan = scan
    signal = step.answered(response, body, permit)
    return signal, step.pauses


# The request extensions that ask more of a first attempt than the plainest start
# gives (``ClientState.plain_starts``): the call's own options, OAuth, other units, a
# cost, a bucket key.
ASKS_MORE: Final = frozenset(
    {CALL_EXTENSION, AUTH_EXTENSION, UNITS_EXTENSION, COST_EXTENSION, KEY_EXTENSION}
)


def quick_admit(
    state: ClientState, request: RequestView, key: Hashable, origin: str
) -> Permit | None:
    """The start of an attempt its driver may run without a flow (``attempt_flow``
    would yield nothing before ``Send``): the permit if the throttle's fast path
    admits it at once and nothing else is due before sending (no event is heard, no
    OAuth, no other units); else ``None``, and the driver runs ``attempt_flow``.
    Only for a client with no shared backend (the driver asks)."""
    extensions = request.extensions
    if (
        AUTH_EXTENSION in extensions
        or UNITS_EXTENSION in extensions
        or state.meter_all_methods
        or (request.method == "POST" and state.meter is not None)
        or state.hooks.per_request()
    ):
        return None  # ``attempt_flow`` then: it reserves units, or yields before sending
    cost = request_cost(extensions) if COST_EXTENSION in extensions else 1.0
    return state.throttle.admit_now(key, cost, origin)


# -- one call, with retries -----------------------------------------------------------


_UNDECIDED: Final = RetryDecision(retry=False, reason="")


# What a call works out before its first attempt: when it started, its bucket key and
# origin, and whether its body can be sent again.
CallStart: TypeAlias = "tuple[float, Hashable, str, bool]"


def begin_call(
    state: ClientState, library: HttpLibrary, policy: RetryPolicy, request: RequestView
) -> CallStart:
    """Before a call's first attempt: its start, key and origin, and whether its body can
    be sent again (asked before the first send: reading a streamed body into memory
    makes it look replayable); its idempotency key set if the policy sets one, and the
    retry budget told of one more request."""
    started = state.throttle.now()
    origin = origin_key(request)
    if state.keyed_by_origin and KEY_EXTENSION not in request.extensions:
        key: Hashable = origin  # the common case of ``key_and_origin``, inline
    else:
        key, origin = state.key_and_origin(request)
    can_replay = isinstance(request.stream, library.bytes_stream)  # ``replayable``, inline
    if (
        policy.auto_idempotency_key
        and request.method not in IDEMPOTENT_METHODS
        and policy.idempotency_header not in request.headers
    ):
        request.headers[policy.idempotency_header] = uuid.uuid4().hex
    if state.budget is not None:
        state.budget.record_request(started)
    return started, key, origin, can_replay


def _decision(
    policy: RetryPolicy,
    library: HttpLibrary,
    request: RequestView,
    can_replay: bool,
    response: ResponseView | None,
    signal: RateLimitSignal | None,
    error: BaseException | None,
) -> RetryDecision:
    return decide(
        policy,
        request,
        None if response is None else response.status_code,
        error,
        signal,
        can_replay=can_replay,
        error_kind=None if error is None else library.classify(error),
    )


def _first_decision(
    policy: RetryPolicy,
    library: HttpLibrary,
    request: RequestView,
    can_replay: bool,
    response: ResponseView | None,
    signal: RateLimitSignal | None,
    error: BaseException | None,
) -> RetryDecision | None:
    """Whether the first attempt's outcome calls for a retry; ``None``: a response that
    does not, known without building the decision's reason (most of them). Until one
    does, the call builds neither a ``Call`` nor tenacity's machinery."""
    if (
        response is not None
        and response.status_code not in policy.statuses
        and (signal is None or signal.retry is None)
    ):
        return None  # what ``decide`` says of it, without building its reason
    return _decision(policy, library, request, can_replay, response, signal, error)


def _too_long(signal: RateLimitSignal | None) -> bool:
    """A throttle whose server-requested wait is over the policy's cap."""
    retry = None if signal is None else signal.retry
    return retry is not None and retry.over_cap and signal is not None and signal.throttled


def _refuse(policy: RetryPolicy, response: Any, signal: RateLimitSignal) -> Flow:
    """The end of a call told to wait longer than allowed: the response closed, the
    call refused."""
    yield Close(response)
    assert signal.retry is not None  # noqa: S101 - see ``_too_long``
    raise RetryAfterTooLongError(
        retry_after=signal.retry.requested or 0.0, limit=policy.max_retry_after
    )


def after_first(
    state: ClientState,
    library: HttpLibrary,
    policy: RetryPolicy,
    request: RequestView,
    bind: Bind,
    start: CallStart,
    outcome: Answer | Exception,
    call: Call | None = None,
) -> Flow | None:
    """What follows a call's first attempt (its answer, or the error it failed with):
    ``None`` when the call ends with it, the answer returned or the error raised; else
    the rest of the call, as a flow returning the last answer. Most calls end with
    their first attempt, and build neither a ``Call`` nor tenacity's machinery.
    ``call``: one built before the first attempt (a call with a deadline)."""
    can_replay = start[3]
    if isinstance(outcome, Exception):
        decision = _first_decision(policy, library, request, can_replay, None, None, outcome)
    else:
        response, signal = outcome
        if _too_long(signal):
            assert signal is not None  # noqa: S101 - see ``_too_long``
            return _refuse(policy, response, signal)
        decision = _first_decision(policy, library, request, can_replay, response, signal, None)
    if decision is None or not decision.retry:
        return None
    if call is None:
        call = Call(state, library, policy, request, start)
    call.decision = decision
    return call.retries(bind, outcome)


class Call(_Named):
    """Private. One call with retries once a retry is due (or from the start, for a call
    with a deadline): its retries, and what tenacity's strategies and the call's events
    need."""

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
        "library",
        "origin",
        "policy",
        "previous_backoff",
        "request",
        "start",
        "started",
        "state",
    )

    clock: Clock

    def __init__(
        self,
        state: ClientState,
        library: HttpLibrary,
        policy: RetryPolicy,
        request: RequestView,
        start: CallStart,
    ) -> None:
        self.state = state
        self.library = library
        self.policy = policy
        self.request = request
        self.start = start
        self.started, self.key, self.origin, self.can_replay = start
        self.clock = state.throttle.clock
        self.budget = state.budget
        self.deadline = None if policy.deadline is None else self.started + policy.deadline
        self.decision = _UNDECIDED
        self.hooks = state.hooks
        self.attempts = 1
        self.previous_backoff = policy.backoff

    def retries(self, bind: Bind, outcome: Answer | Exception) -> Flow:
        """The call from its first outcome that calls for a retry on: tenacity's
        controller decides, the flow performs what it decides (a wait, an attempt), as
        tenacity's own ``Retrying.__call__`` does; the last answer."""
        retrying = tenacity.Retrying(
            stop=self._stop,
            wait=self._wait,
            retry=self._retry,
            retry_error_callback=self._give_up,
            reraise=True,
        )
        retrying.begin()
        retry_state = tenacity.RetryCallState(retrying, fn=None, args=(), kwargs={})
        while True:
            if isinstance(outcome, Exception):
                retry_state.set_exception((type(outcome), outcome, outcome.__traceback__))
            else:
                retry_state.set_result(outcome)
            do = retrying.iter(retry_state)
            if not isinstance(do, tenacity.DoSleep):
                # Given up: the last answer (had it been an error, it was raised).
                return typing.cast("Answer", do)
            retried = self._retrying(retry_state)
            if retried is not None:
                yield Close(retried)  # a retried response is closed, its slots given back
            retry_state.prepare_for_next_attempt()
            yield Sleep(self.clock.now() + do)
            if self.deadline is not None and self.clock.now() >= self.deadline:
                raise self.deadline_passed()
            self.attempts += 1
            try:
                response, signal = yield from attempt_flow(
                    self.state,
                    bind,
                    self.request,
                    self.deadline,
                    self.attempts,
                    self.key,
                    self.origin,
                )
            except Exception as error:  # noqa: BLE001 - tenacity decides, re-raises
                outcome = error
            else:
                if _too_long(signal):
                    assert signal is not None  # noqa: S101 - see ``_too_long``
                    return (yield from _refuse(self.policy, response, signal))
                outcome = (response, signal)

    def deadline_passed(self) -> DeadlineExceededError:
        """The error of a call whose deadline passed (its give-up reported)."""
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

    def _decide(
        self,
        response: ResponseView | None,
        signal: RateLimitSignal | None,
        error: BaseException | None,
    ) -> RetryDecision:
        return _decision(
            self.policy, self.library, self.request, self.can_replay, response, signal, error
        )

    # -- tenacity strategies --------------------------------------------------------

    def _outcome(
        self, state: tenacity.RetryCallState
    ) -> tuple[Any, RateLimitSignal | None, BaseException | None]:
        outcome = state.outcome
        assert outcome is not None  # noqa: S101 - strategies run after an attempt
        if outcome.failed:
            return None, None, outcome.exception()
        response, signal = outcome.result()
        return response, signal, None

    def _retry(self, state: tenacity.RetryCallState) -> bool:
        self.decision = self._decide(*self._outcome(state))
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

    def _retrying(self, state: tenacity.RetryCallState) -> Any:
        """Before a retry's wait: its event, reported; the response to close, if any."""
        response, _, _ = self._outcome(state)
        event = self._event(state, response, state.upcoming_sleep)
        self.hooks.emit("on_retry", event)
        _emit(self.policy.on_retry, event)
        return response

    def _event(
        self, state: tenacity.RetryCallState, response: ResponseView | None, wait: float
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


def _emit(hook: Callable[[RetryEvent], object] | None, event: RetryEvent) -> None:
    """Call a retry hook; a hook that raises never breaks a request."""
    if hook is None:
        return
    try:
        hook(event)
    except Exception:
        logger.warning("retry hook %r raised", hook, exc_info=True)
