"""The synchronous twins: ``SyncRateLimitedTransport`` and ``SyncRateLimitedClient``.

Same options, same guarantees, same code: the limiter algorithms, the server
feedback, the header parsing, the retry strategies and the events all come
from the shared cores (``ThrottleCore``, ``_TransportCore``, ``_CallCore``);
only waiting differs. The sync throttle waits on a ``threading.Condition``, so
it is thread-safe, and cooperative under gevent once gevent has patched the
standard library (Locust runs there): blocking is then a greenlet switch.
"""

from __future__ import annotations

import json
import time
import typing
from typing import TYPE_CHECKING, Any, Unpack

import httpx
import tenacity

from ._errors import ConfigurationError, RetryAfterTooLongError
from ._oauth import AUTH_EXTENSION, _OAuth2Base
from ._options import (
    THROTTLE_DEFAULTS,
    ThrottleOptions,
    lists_throttle_options,
    resolve_options,
)
from ._sdk import ClientDefaults
from ._signals import scan_headers
from ._transport import (
    ClientState,
    _CallCore,
    _small_body,
    _TransportCore,
    _Try,
    _wants_body,
)

if TYPE_CHECKING:
    from collections.abc import Hashable, Iterator
    from types import TracebackType

    from ._throttle import Permit, SyncThrottle, ThrottleStatistics
    from ._transport import Answer

__all__ = ["SyncRateLimitedClient", "SyncRateLimitedTransport"]


class _SyncPermitStream(httpx.SyncByteStream):
    """Private. The response body; closing it gives back the concurrency slot."""

    def __init__(self, stream: httpx.SyncByteStream, permit: Permit) -> None:
        self._stream = stream
        self._permit = permit

    def __iter__(self) -> Iterator[bytes]:
        yield from self._stream

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._permit.release()


def _cap_timeouts(request: httpx.Request, seconds: float) -> None:
    """No single wait of this attempt may outlast the call's deadline."""
    timeout = request.extensions.get("timeout")
    if not isinstance(timeout, dict):
        return
    seconds = max(seconds, 0.001)
    request.extensions["timeout"] = {
        name: seconds if value is None else min(value, seconds) for name, value in timeout.items()
    }


class SyncRateLimitedTransport(_TransportCore, httpx.BaseTransport):
    """The synchronous twin of :class:`RateLimitedTransport`: an ``httpx.BaseTransport``.

    Takes the same options (``clock`` only as the real monotonic clock: threads
    wait on real time) and keeps the
    same guarantees. Thread-safe: any number of threads may send through one
    transport and share its quota. Under gevent (``gevent.monkey.patch_all()``)
    waiting yields to other greenlets.

    Usage::

        transport = SyncRateLimitedTransport(rate="50/minute")
        with httpx.Client(transport=transport, base_url=API) as client:
            client.get("/documents")

    A call's ``deadline`` (``RetryPolicy(deadline=...)``) cannot interrupt a
    blocking send as the async path does; instead each attempt's httpx
    timeouts are capped to the time left, and no retry starts after it.

    .. versionadded:: 0.1
    """

    @lists_throttle_options
    def __init__(
        self,
        transport: httpx.BaseTransport | None = None,
        **options: Unpack[ThrottleOptions],
    ) -> None:
        if transport is not None and not isinstance(transport, httpx.BaseTransport):
            raise ConfigurationError(f"transport must be an httpx.BaseTransport, got {transport!r}")
        shared = ClientState.build(resolve_options(options, "SyncRateLimitedTransport"), sync=True)
        self._transport = transport or httpx.HTTPTransport()
        self._init_state(shared)
        shared.hooks.attach(self)

    @classmethod
    def _sharing(
        cls, transport: httpx.BaseTransport, shared: ClientState
    ) -> SyncRateLimitedTransport:
        """Private. A transport over ``transport`` sharing one client's state."""
        self = cls.__new__(cls)
        self._transport = transport
        self._init_state(shared)
        return self

    @property
    def transport(self) -> httpx.BaseTransport:
        """The wrapped transport that really sends."""
        return self._transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        policy = self._retry
        if policy is None:
            response, _ = self._attempt(request, None)
            return response
        return _SyncCall(self, policy, request).run()

    def _attempt(
        self,
        request: httpx.Request,
        deadline: float | None,
        attempt: int = 1,
        key: Hashable | None = None,
        origin: str | None = None,
    ) -> Answer:
        """One try: through the throttle, to the wire, and the answer read back."""
        step = _Try(self, request, attempt, key, origin)
        throttle = typing.cast("SyncThrottle", self._throttle)
        clock = throttle.clock
        permit = throttle.acquire_sync(step.key, step.cost, origin=step.origin, deadline=deadline)
        if step.heard:
            step.admitted(permit)
        try:
            auth = request.extensions.get(AUTH_EXTENSION)
            if auth is not None:
                auth.attach_hooks(self._hooks)
                auth.before_send_sync(request)
            if deadline is not None:
                _cap_timeouts(request, deadline - throttle.clock.now())
            if step.heard:
                step.sending()
            try:
                response = self._transport.handle_request(request)
            except Exception as exc:
                step.failed(exc)
                raise
            step.received_at = clock.now()
            step.wall_now = time.time()  # read against Date-less epoch resets
            scan = scan_headers(response.headers)
            body: object = None
            wants = _wants_body(response)
            if wants or _small_body(scan):
                if wants:
                    permit.hold()  # the answer may pause the bucket: nobody leaves until read
                try:
                    response.read()
                except Exception as exc:
                    response.close()
                    step.failed(exc)
                    raise
                if wants:
                    try:
                        body = json.loads(response.content)
                    except ValueError:
                        body = None
            permit.settle()
        except BaseException:
            permit.release()
            raise
        signal = step.answered(response, body, permit, scan)
        if throttle.backend is not None:
            try:
                throttle.after_answer_sync(permit, step.pauses)
            except BaseException:
                permit.release()  # the slot and the connection go back, whatever happens
                response.close()
                raise
        if response.is_closed or not isinstance(response.stream, httpx.SyncByteStream):
            permit.release()
        else:
            response.stream = _SyncPermitStream(response.stream, permit)
        return response, signal

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> SyncRateLimitedTransport:
        self._transport.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        self._transport.__exit__(exc_type, exc_value, traceback)

    def __repr__(self) -> str:
        inner = type(self._transport).__name__
        return f"<SyncRateLimitedTransport {self._throttle!r} over {inner}>"


class _SyncCall(_CallCore):
    """Private. The sync call: ``tenacity.Retrying`` over the transport's attempts."""

    __slots__ = ()

    transport: SyncRateLimitedTransport

    def run(self) -> httpx.Response:
        self._begin()
        first: Answer | Exception
        try:
            first = self._attempt()
        except Exception as error:
            if not self._retryable(None, None, error):
                raise
            first = error
        else:
            if not self._retryable(first[0], first[1], None):
                return first[0]
        # A retry is due: tenacity takes over, starting from the first outcome.
        pending = [first]

        def attempt() -> Answer:
            if pending:
                outcome = pending.pop()
                if isinstance(outcome, Exception):
                    raise outcome
                return outcome
            return self._attempt()

        retrying = tenacity.Retrying(
            sleep=time.sleep, before_sleep=self._before_sleep, **self._strategies()
        )
        response: httpx.Response
        response, _ = retrying(attempt)
        return response

    def _attempt(self) -> Answer:
        if self.deadline is not None and self.attempts and self.clock.now() >= self.deadline:
            raise self._deadline_passed()
        self.attempts += 1
        response, signal = self.transport._attempt(
            self.request, self.deadline, self.attempts, self.key, self.origin
        )
        try:
            return self._checked(response, signal)
        except RetryAfterTooLongError:
            response.close()
            raise

    def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        response, _ = self._retrying(state)
        if response is not None:
            response.close()  # a retried response is closed, its slots given back


class SyncRateLimitedClient(ClientDefaults, httpx.Client):
    """The synchronous twin of :class:`RateLimitedClient`: an ``httpx.Client``.

    Takes every ``httpx.Client`` argument (as keywords) plus the throttle
    options of :class:`SyncRateLimitedTransport`; all its transports (the
    default one, ``mounts``, proxies) share one throttle. Thread-safe, and
    cooperative under gevent.

    Usage::

        with SyncRateLimitedClient(base_url=API, rate="50/minute") as client:
            client.get("/documents")

    Limits are **per client, in this process**.

    .. versionadded:: 0.1
    """

    @lists_throttle_options
    def __init__(self, **httpx_options: Any) -> None:
        options = {
            name: httpx_options.pop(name) for name in THROTTLE_DEFAULTS & httpx_options.keys()
        }
        shared = self._build_state(
            typing.cast("ThrottleOptions", options), "SyncRateLimitedClient", sync=True
        )
        httpx_options["base_url"] = self._choose_base_url(httpx_options.get("base_url", ""))
        super().__init__(**httpx_options)
        self._shared = shared
        self._transport = SyncRateLimitedTransport._sharing(self._transport, shared)
        self._mounts = {
            pattern: (None if inner is None else SyncRateLimitedTransport._sharing(inner, shared))
            for pattern, inner in self._mounts.items()
        }
        auth = httpx_options.get("auth")
        if isinstance(auth, _OAuth2Base):
            auth.attach_hooks(shared.hooks)
        shared.hooks.attach(self)

    def statistics(self) -> ThrottleStatistics:
        """A snapshot of the client's throttle: in flight, queued, per-bucket usage, budget left."""
        return self._shared.statistics()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._shared.throttle!r}>"
