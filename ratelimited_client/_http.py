"""Private. What the stack-free core sees of an HTTP library, and how it tells one apart.

The core (``_call.py``) never imports an HTTP library. It reads requests and
responses through the small protocols below, which ``httpx`` 0.28 and its
continuation ``httpx2`` both satisfy (the same API in two packages, with
classes that are not each other's), and it asks an :class:`HttpLibrary` the
few questions that need the library's own classes: is this error a network
error, was the request surely never sent, can this body be sent again, is this
a response stream of the right kind. Each adapter module builds one
``HttpLibrary`` from the package it wraps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ._hooks import ROUTE_EXTENSION

if TYPE_CHECKING:
    from collections.abc import Callable, MutableMapping
    from types import ModuleType

    from ._throttle import Permit

__all__ = [
    "HttpLibrary",
    "RequestView",
    "ResponseView",
    "body_in_memory",
    "origin_key",
    "route_of",
]


class URLView(Protocol):
    """The parts of a URL the core reads (``httpx.URL``, ``httpx2.URL``)."""

    @property
    def scheme(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int | None: ...
    @property
    def path(self) -> str: ...


class RequestView(Protocol):
    """A request as the core reads it (``httpx.Request``, ``httpx2.Request``)."""

    @property
    def method(self) -> str: ...
    @property
    def url(self) -> URLView: ...
    @property
    def headers(self) -> MutableMapping[str, str]: ...
    @property
    def extensions(self) -> MutableMapping[str, Any]: ...
    @property
    def stream(self) -> object: ...
    @property
    def content(self) -> bytes: ...


class ResponseView(Protocol):
    """A response as the core reads it (``httpx.Response``, ``httpx2.Response``).

    The headers are handed to the signal parser as they are (both libraries'
    ``Headers`` have the same methods); the body is read by the driver, never
    by the core."""

    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Any: ...
    @property
    def content(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class HttpLibrary:
    """Private. The questions about one HTTP library that need its own classes.

    Attributes:
        name: the package, ``"httpx"`` or ``"httpx2"`` (for messages).
        network_error: the base class of errors on the way to the server
            (retried per :class:`RetryPolicy`); ``TransportError`` in both.
        never_sent: errors after which the server surely never saw the request
            (a refused or timed-out connect): retried whatever the method.
        mistakes: network errors that sending again cannot change (a URL with no
            or an unknown scheme, a request the library itself refuses to write,
            a proxy that refuses the tunnel): never retried, raised at once as
            the plain client would.
        bytes_stream: the request stream of a body given as bytes, the only
            one that can be sent twice.
        async_stream / sync_stream: the response stream base classes; a
            response whose stream is one of them is released when it closes.
        async_permit_stream / sync_permit_stream: wrap a response stream so that
            closing it releases the permit (subclasses of the classes above).
        async_client / sync_client / http_error: the clients OAuth posts token
            requests with, and the base class of their errors.
        async_transport / sync_transport: the transport base classes a wrapped
            transport must be of; async_http / sync_http: the default ones.
    """

    name: str
    network_error: type[Exception]
    never_sent: tuple[type[Exception], ...]
    mistakes: tuple[type[Exception], ...]
    bytes_stream: type
    async_stream: type
    sync_stream: type
    async_permit_stream: Callable[[Any, Permit], object]
    sync_permit_stream: Callable[[Any, Permit], object]
    async_client: type[Any]
    sync_client: type[Any]
    http_error: type[Exception]
    async_transport: type[Any]
    sync_transport: type[Any]
    async_http: type[Any]
    sync_http: type[Any]

    @classmethod
    def of(
        cls,
        module: ModuleType,
        async_permit_stream: Callable[[Any, Permit], object],
        sync_permit_stream: Callable[[Any, Permit], object],
    ) -> HttpLibrary:
        """Read the classes from the package (``httpx`` and ``httpx2`` name them alike)."""
        return cls(
            name=module.__name__,
            network_error=module.TransportError,
            never_sent=(module.ConnectError, module.ConnectTimeout),
            mistakes=(module.UnsupportedProtocol, module.LocalProtocolError, module.ProxyError),
            bytes_stream=module.ByteStream,
            async_stream=module.AsyncByteStream,
            sync_stream=module.SyncByteStream,
            async_permit_stream=async_permit_stream,
            sync_permit_stream=sync_permit_stream,
            async_client=module.AsyncClient,
            sync_client=module.Client,
            http_error=module.HTTPError,
            async_transport=module.AsyncBaseTransport,
            sync_transport=module.BaseTransport,
            async_http=module.AsyncHTTPTransport,
            sync_http=module.HTTPTransport,
        )

    def replayable(self, request: RequestView) -> bool:
        """Can the body be sent again? Only bytes can (``content=``, ``json=``,
        ``data=``): an iterator, sync or async, is spent by its first sending, and a
        multipart upload reads its files to the end. (Ask before the first send.)"""
        return isinstance(request.stream, self.bytes_stream)

    def classify(self, error: BaseException) -> str | None:
        """``"never-sent"``, ``"network"`` (maybe sent) or ``None`` (not a network error
        that can pass: one of ``mistakes``, or not a network error at all)."""
        if isinstance(error, self.never_sent):
            return "never-sent"
        if isinstance(error, self.network_error) and not isinstance(error, self.mistakes):
            return "network"
        return None


def origin_key(request: RequestView) -> str:
    """The default bucket key: the request's origin, ``"scheme://host:port"``."""
    url = request.url
    # httpx and httpx2 keep the parsed URL as plain fields: read them there (the
    # properties decode on every read). An internationalised host is left to the
    # property, which gives its Unicode form.
    parsed = getattr(url, "_uri_reference", None)
    if parsed is not None and not parsed.host.startswith("xn--"):
        scheme, host, port = parsed.scheme, parsed.host, parsed.port
    else:
        scheme, host, port = url.scheme, url.host, url.port
    if port is None:
        port = 443 if scheme == "https" else 80
    return f"{scheme}://{host}:{port}"


def body_in_memory(response: ResponseView) -> bytes | None:
    """The body if it is in memory already (a response of an in-memory transport, or
    one read before), else ``None``: what ``read()`` / ``aread()`` would return at
    once, without reading. httpx and httpx2 keep it in ``_content``, the field both
    methods look for."""
    content: bytes | None = getattr(response, "_content", None)
    return content


def route_of(request: RequestView) -> str | None:
    """The route template a caller put in ``extensions`` (for metrics labels)."""
    route = request.extensions.get(ROUTE_EXTENSION)
    return route if isinstance(route, str) else None
