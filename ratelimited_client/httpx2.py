"""The httpx2 adapters: the same four classes and OAuth flows, under ``httpx2``'s classes.

``httpx2`` is the maintained continuation of httpx (``import httpx2``), the
stack of the ``openai`` 3.x and ``anthropic`` 2.x SDKs. Its classes are not
httpx's, so an SDK that requires an ``httpx2.AsyncClient`` refuses
:class:`ratelimited_client.RateLimitedClient`; give it the class of this
module instead::

    from ratelimited_client.httpx2 import RateLimitedClient

    client = anthropic.AsyncAnthropic(http_client=RateLimitedClient(rate="50/minute"))

Same options, same guarantees, same code as the httpx classes (the call flows
and their drivers are shared; this module only names httpx2's classes). Both
stacks may be used in one process at once, each client with its own quota;
nothing patches imports. Needs the extra: ``pip install
'ratelimited_client[httpx2]'``.

.. versionadded:: 0.2
"""

from __future__ import annotations

from typing import Unpack

try:
    import httpx2
except ImportError as missing:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "ratelimited_client.httpx2 needs the httpx2 package: "
        "pip install 'ratelimited_client[httpx2]'"
    ) from missing

from ._adapter import (
    AsyncPermitStreamBody,
    AsyncTransportBase,
    ForwardingClient,
    SyncPermitStreamBody,
    SyncTransportBase,
)
from ._http import HttpLibrary
from ._oauth import ClientCredentialsGrant, RefreshTokenGrant
from ._options import ThrottleOptions, lists_throttle_options

__all__ = [
    "OAuth2ClientCredentials",
    "OAuth2RefreshToken",
    "RateLimitedClient",
    "RateLimitedTransport",
    "SyncRateLimitedClient",
    "SyncRateLimitedTransport",
]


class _PermitStream(AsyncPermitStreamBody, httpx2.AsyncByteStream):
    """Private. The response body; closing it gives back the concurrency slot."""


class _SyncPermitStream(SyncPermitStreamBody, httpx2.SyncByteStream):
    """Private. The response body; closing it gives back the concurrency slot."""


HTTPX2 = HttpLibrary.of(httpx2, _PermitStream, _SyncPermitStream)


class OAuth2ClientCredentials(ClientCredentialsGrant, httpx2.Auth):
    """The client-credentials grant as an ``httpx2.Auth``; the arguments and the
    behaviour of :class:`ratelimited_client.OAuth2ClientCredentials` (token
    requests go through an ``httpx2`` client: ``token_client`` is one)."""

    _library = HTTPX2


class OAuth2RefreshToken(RefreshTokenGrant, httpx2.Auth):
    """The refresh-token grant as an ``httpx2.Auth``; the arguments and the
    behaviour of :class:`ratelimited_client.OAuth2RefreshToken`."""

    _library = HTTPX2


class RateLimitedTransport(AsyncTransportBase, httpx2.AsyncBaseTransport):
    """An ``httpx2.AsyncBaseTransport`` that sends through a throttle: never over the
    quota. Wraps another (default ``httpx2.AsyncHTTPTransport()``); the options
    of :class:`ratelimited_client.RateLimitedTransport`.

    .. versionadded:: 0.2
    """

    _library = HTTPX2

    @lists_throttle_options
    def __init__(
        self,
        transport: httpx2.AsyncBaseTransport | None = None,
        **options: Unpack[ThrottleOptions],
    ) -> None:
        self._setup(transport, options)


class SyncRateLimitedTransport(SyncTransportBase, httpx2.BaseTransport):
    """The blocking twin: an ``httpx2.BaseTransport`` (default over
    ``httpx2.HTTPTransport()``); the options of
    :class:`ratelimited_client.SyncRateLimitedTransport`. Thread-safe.

    .. versionadded:: 0.2
    """

    _library = HTTPX2

    @lists_throttle_options
    def __init__(
        self,
        transport: httpx2.BaseTransport | None = None,
        **options: Unpack[ThrottleOptions],
    ) -> None:
        self._setup(transport, options)


class RateLimitedClient(ForwardingClient, httpx2.AsyncClient):
    """An ``httpx2.AsyncClient`` that never sends over the quota.

    Takes every ``httpx2.AsyncClient`` argument (as keywords) plus the throttle
    options; all its transports (the default one, ``mounts``, proxies) share one
    throttle. What the OpenAI and Anthropic SDKs accept as ``http_client``.

    Usage::

        async with RateLimitedClient(base_url=API, rate="50/minute") as client:
            await client.get("/documents")

    .. versionadded:: 0.2
    """

    _throttled_transport = RateLimitedTransport


class SyncRateLimitedClient(ForwardingClient, httpx2.Client):
    """An ``httpx2.Client`` that never sends over the quota: the blocking twin of
    :class:`RateLimitedClient` (what ``openai.OpenAI`` / ``anthropic.Anthropic``
    accept). Thread-safe, and cooperative under gevent.

    .. versionadded:: 0.2
    """

    _throttled_transport = SyncRateLimitedTransport
