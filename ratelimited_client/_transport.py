"""``RateLimitedTransport``: the throttle as an httpx transport.

All behaviour lives here, so any httpx-based client (an OpenAPI-generated
one, say) gets it by being handed this transport.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from ._errors import ConfigurationError
from ._options import KEY_EXTENSION, build_throttle, check_key, request_cost

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Hashable
    from types import TracebackType

    from ._clock import Clock
    from ._throttle import Permit, Throttle, ThrottleStatistics
    from ._types import KeyFunc, RateTypes

__all__ = ["RateLimitedTransport", "origin_key"]


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


class RateLimitedTransport(httpx.AsyncBaseTransport):
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
        clock: where time comes from; for tests (see ``ratelimited_client.testing``).

    Per request, ``extensions={"ratelimit_cost": n}`` charges ``n`` units
    instead of 1.

    Raises:
        ConfigurationError: (a ``ValueError``) at construction, naming the bad option.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        rate: RateTypes | None = None,
        max_concurrency: int | None = None,
        max_queued: int | None = None,
        key: KeyFunc | None = None,
        latency_proof: bool = False,
        clock: Clock | None = None,
    ) -> None:
        if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
            raise ConfigurationError(
                f"transport must be an httpx.AsyncBaseTransport, got {transport!r}"
            )
        throttle = build_throttle(
            rate=rate,
            max_concurrency=max_concurrency,
            max_queued=max_queued,
            latency_proof=latency_proof,
            clock=clock,
        )
        self._init(transport or httpx.AsyncHTTPTransport(), throttle, check_key(key))

    def _init(
        self, transport: httpx.AsyncBaseTransport, throttle: Throttle, key: KeyFunc | None
    ) -> None:
        self._transport = transport
        self._throttle = throttle
        self._key: KeyFunc = key or origin_key

    @classmethod
    def _sharing(
        cls, transport: httpx.AsyncBaseTransport, throttle: Throttle, key: KeyFunc | None
    ) -> RateLimitedTransport:
        """Private. A transport over ``transport`` that shares an existing throttle."""
        self = cls.__new__(cls)
        self._init(transport, throttle, key)
        return self

    @property
    def transport(self) -> httpx.AsyncBaseTransport:
        """The wrapped transport that really sends."""
        return self._transport

    def statistics(self) -> ThrottleStatistics:
        """A snapshot of the throttle: in flight, queued, per-bucket usage."""
        return self._throttle.statistics()

    def _bucket_key(self, request: httpx.Request) -> Hashable:
        override = request.extensions.get(KEY_EXTENSION)
        return override if override is not None else self._key(request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        cost = request_cost(request.extensions)
        permit = await self._throttle.acquire(self._bucket_key(request), cost)
        try:
            response = await self._transport.handle_async_request(request)
        except BaseException:
            permit.release()
            raise
        permit.settle()
        if response.is_closed or not isinstance(response.stream, httpx.AsyncByteStream):
            # Already read (an in-memory body) or sync-only: nothing left to hold.
            permit.release()
        else:
            response.stream = _PermitStream(response.stream, permit)
        return response

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
