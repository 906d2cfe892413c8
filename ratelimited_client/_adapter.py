"""Private. The two drivers of the call flows, and what every adapter shares.

An adapter puts the flows of ``_call.py`` under one HTTP library's classes:
``_httpx.py`` for httpx, ``httpx2.py`` for httpx2, each with an async and a
sync transport and client. Everything they do alike is here, written once
against the library's API (httpx and httpx2 share it): the driver that runs a
flow (one coroutine, for both sides), each side's effects (awaited, or
blocking), binding a response to its permit, the loop guard, and the clients'
wiring of every transport to one throttle. An adapter module only names its
library's base classes and documents its classes.
"""

from __future__ import annotations

import asyncio
import datetime
import time
import typing
from typing import TYPE_CHECKING, Any, ClassVar, Self

import anyio

from ._blocking import DONE, Ready, run_blocking
from ._call import (
    ASKS_MORE,
    READ_SIGNAL,
    Admit,
    Authorize,
    Call,
    ClientState,
    Close,
    Publish,
    ReadBody,
    Send,
    Sleep,
    after_first,
    attempt_flow,
    begin_call,
    concluded,
    json_or_none,
    quick_admit,
    to_read,
)
from ._call_options import CALL_EXTENSION, CallOptions, CallOptionsView
from ._errors import ConfigurationError, DeadlineExceededError
from ._http import origin_key
from ._oauth import OAuth2Base
from ._options import (
    THROTTLE_DEFAULTS,
    ThrottleOptions,
    lists_throttle_options,
    resolve_options,
)
from ._sdk import ClientDefaults
from ._signals import scan_headers
from ._throttle import Permit, TimeLeftExceededError

if TYPE_CHECKING:
    from collections.abc import (
        AsyncIterator,
        Awaitable,
        Callable,
        Coroutine,
        Hashable,
        Iterator,
    )
    from types import TracebackType

    from ._call import Answer, CallStart, Flow
    from ._http import HttpLibrary
    from ._throttle import SyncThrottle, Throttle, ThrottleStatistics

__all__ = [
    "AsyncPermitStreamBody",
    "AsyncTransportBase",
    "ClientWiring",
    "ForwardingClient",
    "SyncPermitStreamBody",
    "SyncTransportBase",
]


def _current_loop() -> object:
    """The running event loop: the asyncio loop, or trio's run (its root task)."""
    loop = asyncio._get_running_loop()  # asyncio's C fast path: None outside a loop
    if loop is not None:
        return loop
    import trio  # only ever reached under trio

    return trio.lowlevel.current_root_task()


def _cap_timeouts(request: Any, seconds: float) -> None:
    """No single wait of this attempt may outlast the call's deadline."""
    timeout = request.extensions.get("timeout")
    if not isinstance(timeout, dict):
        return
    seconds = max(seconds, 0.001)
    request.extensions["timeout"] = {
        name: seconds if value is None else min(value, seconds) for name, value in timeout.items()
    }


def _read_here(response: Any, permit: Permit, now: float) -> None:
    """A response whose body was read in full here: its ``elapsed`` set, as a plain
    client sets it when the body is read (from the admission to the end of the read,
    on the throttle's clock). The client's own timer would never stop: the body is
    in memory already, so the client's read closes nothing."""
    took = now - permit.sent_at
    # Positional, with no ``max``: half the cost of ``timedelta(seconds=max(0.0, took))``.
    response.elapsed = datetime.timedelta(0, took if took > 0.0 else 0.0)


class AsyncPermitStreamBody:
    """The body of a response stream whose closing gives back the concurrency slot.
    Each adapter mixes it into its library's ``AsyncByteStream``."""

    def __init__(self, stream: Any, permit: Permit) -> None:
        self._stream = stream
        self._permit = permit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        tap = self._permit.tap
        if tap is None:
            async for chunk in self._stream:
                yield chunk
            return
        async for chunk in self._stream:
            tap.feed(chunk)
            yield chunk
        self._permit.settle_units(tap.usage())  # the stream's end: its usage is known

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._permit.release()


class SyncPermitStreamBody:
    """The blocking twin of :class:`AsyncPermitStreamBody` (``SyncByteStream``)."""

    def __init__(self, stream: Any, permit: Permit) -> None:
        self._stream = stream
        self._permit = permit

    def __iter__(self) -> Iterator[bytes]:
        tap = self._permit.tap
        if tap is None:
            yield from self._stream
            return
        for chunk in self._stream:
            tap.feed(chunk)
            yield chunk
        self._permit.settle_units(tap.usage())  # the stream's end: its usage is known

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._permit.release()


class _TransportBase:
    """What both transports of every library keep (the wrapped transport, the state),
    and the one driver of the call flows.

    The driver is written once, as a coroutine: it hands each effect to the side's
    ``_admit`` / ``_send`` / ... (awaiting them on the async side; on the blocking
    side they are coroutines that never suspend, and ``run_blocking`` runs the
    driver to its end in one step)."""

    #: The HTTP library this adapter is for.
    _library: ClassVar[HttpLibrary]
    _sync: ClassVar[bool]

    _transport: Any
    _shared: ClientState
    _retry_statuses: frozenset[int]
    _quick: bool
    _stream_type: type
    _permit_stream: Callable[[Any, Permit], object]

    def _setup(self, transport: object, options: ThrottleOptions) -> None:
        """Validate the options (naming the bad one) and adopt the wrapped transport."""
        library = self._library
        wraps = library.sync_transport if self._sync else library.async_transport
        if transport is not None and not isinstance(transport, wraps):
            raise ConfigurationError(
                f"transport must be an {library.name}.{wraps.__name__}, got {transport!r}"
            )
        shared = ClientState.build(resolve_options(options, type(self).__name__), sync=self._sync)
        if transport is None:
            transport = library.sync_http() if self._sync else library.async_http()
        self._adopt(transport, shared)
        shared.hooks.attach(self)

    def _adopt(self, transport: Any, shared: ClientState) -> None:
        self._transport = transport
        self._shared = shared
        # Whether a first attempt may run without its flow (``quick_admit``): never
        # with a shared backend (its answers are published).
        self._quick = shared.throttle.backend is None
        # The statuses a retry may follow (the client's policy is frozen).
        self._retry_statuses = frozenset(() if shared.retry is None else shared.retry.statuses)

    @classmethod
    def _sharing(cls, transport: Any, shared: ClientState) -> Self:
        """Private. A transport over ``transport`` sharing one client's state."""
        self = cls.__new__(cls)
        self._adopt(transport, shared)
        return self

    @property
    def transport(self) -> Any:
        """The wrapped transport that really sends."""
        return self._transport

    def statistics(self) -> ThrottleStatistics:
        """A snapshot of the throttle: in flight, queued, per-bucket usage, budget left."""
        return self._shared.statistics()

    def __repr__(self) -> str:
        inner = type(self._transport).__name__
        return f"<{type(self).__name__} {self._shared.throttle!r} over {inner}>"

    def _plain_start(self, request: Any) -> tuple[Permit, CallStart | None, str] | bool:
        """The plainest request's first attempt (most of them), if it may start so:
        its permit, its call's start (``None``: no retries) and its origin, the bucket
        key. ``begin_call`` and ``quick_admit``, inline: it asks nothing of its own
        (no extension in ``ASKS_MORE``, not metered, nobody hears its events) of a
        client whose options let it (``ClientState.plain_starts``), keyed by its
        origin, of cost 1, and admitted at once. Else ``_flow`` decides, told whether
        the fast path refused the request already (``True``: it did; ``False``: not
        asked)."""
        shared = self._shared
        if not (
            shared.plain_starts
            and ASKS_MORE.isdisjoint(request.extensions)
            and (shared.meter is None or request.method != "POST")
            and not shared.hooks.per_request()
        ):
            return False
        throttle = shared.throttle
        started = throttle.now()
        origin = origin_key(request)
        permit = throttle.admit_now(origin, 1.0, origin)
        if permit is None:
            return True
        if shared.retry is None:
            return permit, None, origin
        if shared.budget is not None:
            shared.budget.record_request(started)
        # ``replayable``, inline: asked before the first send.
        can_replay = isinstance(request.stream, self._library.bytes_stream)
        return permit, (started, origin, origin, can_replay), origin

    def _flow(
        self, request: Any, refused: bool = False
    ) -> tuple[Flow | Permit, CallStart | None, Call | None, Hashable, str | None]:
        """The first attempt of a request that ``_plain_start`` did not start: its flow,
        or its permit when the driver runs it without one (``quick_admit``:
        ``_drive_quick``; not asked again if the fast path ``refused`` it); with
        retries, the call's start (``after_first`` then decides what follows the
        attempt), and its ``Call`` if it has a deadline (built before the first
        attempt, for the driver to bound it by); last, the bucket key and origin
        (``None``: not worked out yet)."""
        shared = self._shared
        if shared.operations is not None:
            shared.operations.apply(request)  # the operation's bucket, cost, priority ...
        policy = shared.retry
        options = request.extensions.get(CALL_EXTENSION)
        if options is not None:
            policy = options.policy(policy)
        if policy is None:
            if not self._quick:
                return attempt_flow(shared, self._bind, request, None), None, None, None, None
            key, origin = shared.key_and_origin(request)
            permit = None if refused else quick_admit(shared, request, key, origin)
            if permit is not None:
                return permit, None, None, key, origin
            flow = attempt_flow(shared, self._bind, request, None, 1, key, origin)
            return flow, None, None, key, origin
        start = begin_call(shared, self._library, policy, request)
        _, key, origin, _ = start
        call = None
        if policy is not shared.retry or policy.deadline is not None:
            # A call's own policy (``CallOptions``) travels in its ``Call``.
            call = Call(shared, self._library, policy, request, start)
        elif self._quick and not refused:
            permit = quick_admit(shared, request, key, origin)
            if permit is not None:
                return permit, start, None, key, origin
        flow = attempt_flow(
            shared, self._bind, request, None if call is None else call.deadline, 1, key, origin
        )
        return flow, start, call, key, origin

    async def _drive(
        self,
        flow: Flow,
        request: Any = None,
        start: CallStart | None = None,
        call: Call | None = None,
    ) -> Any:
        """Perform the flow's effects until it returns its answer; what fails is thrown
        back in (a cancellation too: the flow cleans up and re-raises). The response.

        ``start``: the flow is the first attempt of a call with retries (of ``request``;
        ``call``, its ``Call`` if already built): ``after_first`` says whether the call
        ends with the attempt's outcome, or goes on in a flow of its own."""
        value: Any = None
        try:
            effect = flow.send(None)
            while True:
                try:
                    if isinstance(effect, Send):
                        value = await self._send(effect.request, effect.deadline)
                    elif isinstance(effect, ReadBody):
                        value = await self._read(effect.response)
                    elif isinstance(effect, Admit):
                        value = await self._admit(effect)
                    elif isinstance(effect, Close):
                        value = await self._close(effect.response)
                    elif isinstance(effect, Authorize):
                        value = await self._authorize(effect)
                    elif isinstance(effect, Sleep):
                        value = await self._sleep(effect)
                    else:
                        value = await self._publish(effect)
                except BaseException as error:  # noqa: BLE001 - the flow re-raises it
                    effect = flow.throw(error)
                else:
                    effect = flow.send(value)
        except StopIteration as done:
            response, signal = done.value
            if start is None:
                return response
            statuses = self._retry_statuses if call is None else call.policy.statuses
            if signal is None and response.status_code not in statuses:
                # Most answers: nothing to retry (``after_first``'s first question).
                return response
            then = self._after_first(request, start, call, done.value)
            if then is None:
                return response
        except Exception as error:
            if start is None:
                raise
            then = self._after_first(request, start, call, error)
            if then is None:
                raise
        return await self._drive(then)

    async def _drive_quick(
        self, permit: Permit, request: Any, start: CallStart | None, key: Hashable, origin: str
    ) -> Any:
        """``_drive`` for a first attempt admitted by ``_plain_start`` or ``quick_admit``
        (no ``Call``): the rest of ``attempt_flow`` with no effect built and no
        generator stepped, the same steps in the same order (nothing is heard, there is
        no OAuth, no unit, no shared backend: the effects left are the send, and the
        body's read and close)."""
        shared = self._shared
        try:
            try:
                response = await self._send(request, None)
                received_at = shared.throttle.now()
                scan = scan_headers(response.headers)
                read = to_read(permit, response, scan, False)
                content = None
                if read:
                    # ``body_in_memory``, inline: an in-memory transport's, read already
                    content = getattr(response, "_content", None)
                    if content is None:
                        try:
                            content = await self._read(response)
                        except Exception:
                            await self._close(response)
                            raise
                body = json_or_none(content) if read == READ_SIGNAL else None
            except BaseException:
                permit.release()
                raise
            status = response.status_code
            if status < 400 and not scan.may_signal and shared.builtin_dialects:
                # ``concluded``'s most common case, inline: a quiet answer (a success
                # whose body is never parsed, with no field a dialect reads).
                signal = None
                if response.is_closed:
                    # And ``_bind``'s: read already, nothing to hold. Observed and
                    # released in one call.
                    _read_here(response, permit, shared.throttle.now())
                    permit.quiet_done(status, received_at, cached=scan.cached)
                else:
                    permit.observe_quiet(status, received_at, cached=scan.cached)
                    self._bind(response, permit)
            else:
                signal, _ = concluded(
                    shared,
                    request,
                    permit,
                    response,
                    scan,
                    body,
                    received_at,
                    None,
                    1,
                    key,
                    origin,
                    permit.cost,
                )
                self._bind(response, permit)
        except Exception as error:
            if start is None:
                raise
            then = self._after_first(request, start, None, error)
            if then is None:
                raise
            return await self._drive(then)
        if start is None or (signal is None and status not in self._retry_statuses):
            return response  # most answers: nothing to retry
        then = self._after_first(request, start, None, (response, signal))
        if then is None:
            return response
        return await self._drive(then)

    def _after_first(
        self, request: Any, start: CallStart, call: Call | None, outcome: Answer | Exception
    ) -> Flow | None:
        shared = self._shared
        policy = shared.retry if call is None else call.policy
        assert policy is not None  # noqa: S101 - only calls with retries get here
        return after_first(shared, self._library, policy, request, self._bind, start, outcome, call)

    def _bind(self, response: Any, permit: Permit) -> None:
        if response.is_closed:
            # Read here (a small body): nothing to hold.
            _read_here(response, permit, self._shared.throttle.now())
            permit.release()
        elif not isinstance(response.stream, self._stream_type):
            # In memory already, or of the other side: nothing to hold.
            permit.release()
        else:
            response.stream = self._permit_stream(response.stream, permit)

    # -- the side's effects (each overridden by the async and the blocking side) -------
    # Each returns an awaitable: the async side the library's own coroutine (no frame
    # of ours in between, on every request and for every request that waits), the
    # blocking side the value, already there (``Ready``).

    def _admit(self, effect: Admit) -> Awaitable[Permit]:
        raise NotImplementedError

    def _send(self, request: Any, deadline: float | None) -> Awaitable[Any]:
        raise NotImplementedError

    def _read(self, response: Any) -> Awaitable[bytes]:
        raise NotImplementedError

    def _close(self, response: Any) -> Awaitable[object]:
        raise NotImplementedError

    def _authorize(self, effect: Authorize) -> Awaitable[object]:
        raise NotImplementedError

    def _sleep(self, effect: Sleep) -> Awaitable[object]:
        raise NotImplementedError

    def _publish(self, effect: Publish) -> Awaitable[object]:
        raise NotImplementedError


class AsyncTransportBase(_TransportBase):
    """The async transport of any library: the flows under the driver, awaited."""

    _sync = False
    _throttle: Throttle
    _loop: object
    _pooled: bool

    def _adopt(self, transport: Any, shared: ClientState) -> None:
        super()._adopt(transport, shared)
        self._throttle = typing.cast("Throttle", shared.throttle)
        self._loop = None  # the event loop of the last request
        # Only a connection pool ties the wrapped transport to a loop (``_moved_to``);
        # over one without (an in-memory transport, an ASGI app) nothing is checked.
        self._pooled = getattr(transport, "_pool", None) is not None
        self._stream_type = self._library.async_stream
        self._permit_stream = self._library.async_permit_stream

    def _moved_to(self, loop: object) -> None:
        """A request from another event loop than the last one (a second ``asyncio.run``,
        a per-test loop, trio after asyncio). The throttle does not care; a connection
        pool still holding the old loop's connections does, and would fail later with
        "Event loop is closed": say so now, naming the cause."""
        previous, self._loop = self._loop, loop
        pool = getattr(self._transport, "_pool", None)
        connections = getattr(pool, "connections", ())
        if previous is not None and connections:
            self._loop = previous
            name = self._library.name
            raise RuntimeError(
                "this RateLimitedClient/RateLimitedTransport was used in another event loop "
                f"and its connection pool still holds {len(connections)} connection(s) of "
                f"that loop; {name} connections cannot move between event loops. Create the "
                "client inside the running loop (for example `async with "
                "RateLimitedClient(...)` inside each `asyncio.run`), or keep no idle "
                f"connections (`limits={name}.Limits(max_keepalive_connections=0)`)"
            )

    def handle_async_request(self, request: Any) -> Coroutine[Any, Any, Any]:
        # Not a coroutine itself: it hands the driver's to the caller, one frame less
        # on every resume and for every request that waits.
        if self._pooled:
            loop = asyncio._get_running_loop() or _current_loop()  # the former: asyncio's, inline
            if loop is not self._loop:
                self._moved_to(loop)
        plain = self._plain_start(request)
        if isinstance(plain, tuple):
            permit, start, home = plain  # its origin, also its bucket key
            return self._drive_quick(permit, request, start, home, home)
        flow, start, call, key, origin = self._flow(request, plain)
        if call is None:
            if isinstance(flow, Permit):
                assert origin is not None  # noqa: S101 - worked out for the quick path
                return self._drive_quick(flow, request, start, key, origin)
            return self._drive(flow, request, start)
        if call.deadline is None:
            return self._drive(flow, request, start, call)  # type: ignore[arg-type]
        return self._drive_within_deadline(flow, request, start, call)  # type: ignore[arg-type]

    async def _drive_within_deadline(
        self, flow: Flow, request: Any, start: CallStart | None, call: Call
    ) -> Any:
        assert call.deadline is not None  # noqa: S101 - only called with one
        try:
            with call.clock.cancel_scope(call.deadline) as scope:
                return await self._drive(flow, request, start, call)
        except DeadlineExceededError as known:
            raise _as_configured(known, call) from None
        assert scope.cancelled_caught  # noqa: S101 - only a passed deadline gets here
        raise call.deadline_passed()

    def _admit(self, effect: Admit) -> Awaitable[Permit]:
        acquired = self._throttle.acquire(effect.key, effect.cost, **effect.terms())
        if effect.queue_wait is None:
            return acquired
        return self._admit_within(acquired, effect)

    async def _admit_within(self, acquired: Awaitable[Permit], effect: Admit) -> Permit:
        """A call's own bound on its wait in the queue (``CallOptions.queue_wait``):
        past it, the request leaves the queue with nothing taken."""
        assert effect.deadline is not None  # noqa: S101 - set with queue_wait
        try:
            with self._throttle.clock.cancel_scope(effect.deadline):
                return await acquired
        except DeadlineExceededError as known:  # the throttle knew it at once
            raise _queue_wait_passed(effect) from known
        raise _queue_wait_passed(effect)

    def _send(self, request: Any, deadline: float | None) -> Awaitable[Any]:
        return self._transport.handle_async_request(request)  # type: ignore[no-any-return]

    def _read(self, response: Any) -> Awaitable[bytes]:
        return response.aread()  # type: ignore[no-any-return]

    def _close(self, response: Any) -> Awaitable[object]:
        return response.aclose()  # type: ignore[no-any-return]

    def _authorize(self, effect: Authorize) -> Awaitable[object]:
        return effect.auth.before_send(effect.request)  # type: ignore[no-any-return]

    def _sleep(self, effect: Sleep) -> Awaitable[object]:
        return self._throttle.clock.sleep_until(effect.until)

    def _publish(self, effect: Publish) -> Awaitable[object]:
        return self._publish_to_backend(effect)

    async def _publish_to_backend(self, effect: Publish) -> None:
        try:
            await self._throttle.after_answer(effect.permit, effect.pauses)
        except BaseException:
            # Cancelled (or worse) while telling the backend: the slot and the
            # connection go back, whatever becomes of the call.
            effect.permit.release()
            with anyio.CancelScope(shield=True):
                await effect.response.aclose()
            raise

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def __aenter__(self) -> Self:
        await self._transport.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self._transport.__aexit__(exc_type, exc_value, traceback)


def _as_configured(error: DeadlineExceededError, call: Call) -> DeadlineExceededError:
    """A deadline error from inside the call (the throttle's, which knows only the time
    left) told as the call's: its deadline as configured, the same reason."""
    configured = call.policy.deadline
    if configured is None or not isinstance(error, TimeLeftExceededError):
        return error
    return DeadlineExceededError(deadline=configured, reason=error.reason)


def _queue_wait_passed(effect: Admit) -> DeadlineExceededError:
    """A call's own bound on its wait for a slot (``CallOptions.queue_wait``) passed."""
    assert effect.queue_wait is not None  # noqa: S101 - only asked then
    return DeadlineExceededError(
        deadline=effect.queue_wait,
        reason=f"no slot within queue_wait={effect.queue_wait:g} s (or the call's deadline); "
        "left the queue, nothing taken",
    )


class SyncTransportBase(_TransportBase):
    """The blocking transport of any library: the same driver, its effects blocking.

    A call's deadline cannot interrupt a blocking send as the async side does;
    instead each attempt's timeouts are capped to the time left (``Send``), and
    no retry starts after it."""

    _sync = True
    _throttle: SyncThrottle

    def _adopt(self, transport: Any, shared: ClientState) -> None:
        super()._adopt(transport, shared)
        self._throttle = typing.cast("SyncThrottle", shared.throttle)
        self._stream_type = self._library.sync_stream
        self._permit_stream = self._library.sync_permit_stream

    def handle_request(self, request: Any) -> Any:
        plain = self._plain_start(request)
        if isinstance(plain, tuple):
            permit, start, home = plain  # its origin, also its bucket key
            return run_blocking(self._drive_quick(permit, request, start, home, home))
        flow, start, call, key, origin = self._flow(request, plain)
        if call is None:
            if isinstance(flow, Permit):
                assert origin is not None  # noqa: S101 - worked out for the quick path
                return run_blocking(self._drive_quick(flow, request, start, key, origin))
            return run_blocking(self._drive(flow, request, start))
        if call.deadline is None:
            return run_blocking(self._drive(flow, request, start, call))  # type: ignore[arg-type]
        try:
            return run_blocking(self._drive(flow, request, start, call))  # type: ignore[arg-type]
        except DeadlineExceededError as known:
            raise _as_configured(known, call) from None

    def _admit(self, effect: Admit) -> Awaitable[Permit]:
        try:
            permit = self._throttle.acquire_sync(effect.key, effect.cost, **effect.terms())
        except DeadlineExceededError as passed:
            if effect.queue_wait is None:
                raise
            raise _queue_wait_passed(effect) from passed
        return Ready(permit)

    def _send(self, request: Any, deadline: float | None) -> Awaitable[Any]:
        if deadline is not None:
            _cap_timeouts(request, deadline - self._throttle.clock.now())
        return Ready(self._transport.handle_request(request))

    def _read(self, response: Any) -> Awaitable[bytes]:
        content: bytes = response.read()
        return Ready(content)

    def _close(self, response: Any) -> Awaitable[object]:
        response.close()
        return DONE

    def _authorize(self, effect: Authorize) -> Awaitable[object]:
        effect.auth.before_send_sync(effect.request)
        return DONE

    def _sleep(self, effect: Sleep) -> Awaitable[object]:
        time.sleep(max(0.0, effect.until - self._throttle.clock.now()))
        return DONE

    def _publish(self, effect: Publish) -> Awaitable[object]:
        try:
            self._throttle.after_answer_sync(effect.permit, effect.pauses)
        except BaseException:
            effect.permit.release()  # the slot and the connection go back, whatever happens
            effect.response.close()
            raise
        return DONE

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Self:
        self._transport.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        self._transport.__exit__(exc_type, exc_value, traceback)


class ClientWiring(ClientDefaults):
    """What every client shares: all its transports (the default one, ``mounts``,
    proxies from the environment) wrapped over one throttle."""

    #: The adapter transport this client wraps its library's transports with.
    _throttled_transport: ClassVar[type[AsyncTransportBase] | type[SyncTransportBase]]

    _shared: ClientState

    def _wire(self, shared: ClientState, auth: object) -> None:
        """After the library's ``__init__``: wrap every transport it built."""
        self._shared = shared
        wrap = self._throttled_transport._sharing
        # The library keeps the default transport and the mounted ones (explicit
        # mounts and proxies from the environment) in these two attributes;
        # wrapping them all with one throttle keeps a single quota per client.
        client: Any = self
        client._transport = wrap(client._transport, shared)
        client._mounts = {
            pattern: (None if inner is None else wrap(inner, shared))
            for pattern, inner in client._mounts.items()
        }
        if isinstance(auth, OAuth2Base):
            auth.attach_hooks(shared.hooks)  # token refreshes reach this client's hooks
        shared.hooks.attach(self)

    def statistics(self) -> ThrottleStatistics:
        """A snapshot of the client's throttle: in flight, queued, per-bucket usage, budget left."""
        return self._shared.statistics()

    def with_options(
        self,
        *,
        attempts: int | None = None,
        deadline: float | None = None,
        queue_wait: float | None = None,
        priority: int | None = None,
    ) -> CallOptionsView:
        """This client with its own settings on every call made through the view: the
        call's attempts (``1``: no retry), its deadline in seconds, the longest an
        attempt may wait for a slot, its priority in the queue (see ``CallOptions``).
        The same client underneath: connections, quota, retry budget and hooks are
        shared. One call alone: ``extensions=call_options(...)``."""
        options = CallOptions(
            attempts=attempts, deadline=deadline, queue_wait=queue_wait, priority=priority
        )
        return CallOptionsView(self, options)

    def __repr__(self) -> str:
        base_url = str(getattr(self, "base_url", ""))
        where = f" base_url={base_url!r}" if base_url else ""
        return f"<{type(self).__name__}{where} {self._shared.throttle!r}>"


class ForwardingClient(ClientWiring):
    """A client that takes its library's arguments as keywords (``**httpx_options``)
    beside the throttle options, and hands the former to the library."""

    @lists_throttle_options
    def __init__(self, **httpx_options: Any) -> None:
        options = {
            name: httpx_options.pop(name) for name in THROTTLE_DEFAULTS & httpx_options.keys()
        }
        sync = self._throttled_transport._sync
        shared = self._build_state(
            typing.cast("ThrottleOptions", options), type(self).__name__, sync=sync
        )
        httpx_options["base_url"] = self._choose_base_url(httpx_options.get("base_url", ""))
        super().__init__(**httpx_options)
        self._wire(shared, httpx_options.get("auth"))
