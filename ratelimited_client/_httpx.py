"""The httpx adapters: the call flows under ``httpx``'s classes.

``RateLimitedTransport`` / ``SyncRateLimitedTransport`` (``httpx.AsyncBaseTransport``
/ ``httpx.BaseTransport``), ``RateLimitedClient`` / ``SyncRateLimitedClient``
(``httpx.AsyncClient`` / ``httpx.Client``) and the OAuth flows as ``httpx.Auth``.
Every behaviour is in ``_call.py`` (what a call does) and ``_adapter.py`` (the
drivers); this module names httpx's classes and documents the public ones.
The twin for ``httpx2`` is ``ratelimited_client.httpx2``.
"""

from __future__ import annotations

import typing
from typing import Unpack

import httpx

from ._adapter import (
    AsyncPermitStreamBody,
    AsyncTransportBase,
    ClientWiring,
    ForwardingClient,
    SyncPermitStreamBody,
    SyncTransportBase,
)
from ._http import HttpLibrary
from ._oauth import ClientCredentialsGrant, RefreshTokenGrant
from ._options import ThrottleOptions, lists_throttle_options

if typing.TYPE_CHECKING:
    import ssl

    from httpx._client import EventHook
    from httpx._types import (
        AuthTypes,
        CertTypes,
        CookieTypes,
        HeaderTypes,
        ProxyTypes,
        QueryParamTypes,
        TimeoutTypes,
    )

__all__ = [
    "OAuth2ClientCredentials",
    "OAuth2RefreshToken",
    "RateLimitedClient",
    "RateLimitedTransport",
    "SyncRateLimitedClient",
    "SyncRateLimitedTransport",
]


class _PermitStream(AsyncPermitStreamBody, httpx.AsyncByteStream):
    """Private. The response body; closing it gives back the concurrency slot."""


class _SyncPermitStream(SyncPermitStreamBody, httpx.SyncByteStream):
    """Private. The response body; closing it gives back the concurrency slot."""


HTTPX = HttpLibrary.of(httpx, _PermitStream, _SyncPermitStream)

# httpx's own defaults, repeated so the signature reads like httpx.AsyncClient's.
_DEFAULT_TIMEOUT = httpx.Timeout(5.0)
_DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class OAuth2ClientCredentials(ClientCredentialsGrant, httpx.Auth):
    """The client-credentials grant (RFC 6749 §4.4) as an ``httpx.Auth``.

    Usage::

        auth = OAuth2ClientCredentials(
            "https://auth.example.com/oauth/token", client_id="app", client_secret=SECRET,
            scope="documents:read",
        )
        async with RateLimitedClient(base_url=API, auth=auth, rate="50/minute") as client:
            ...

    Args:
        token_url: the token endpoint.
        client_id: the client's id.
        client_secret: the client's secret (never shown, logged or raised).
        scope: the scope to ask for, if any.
        audience: the ``audience`` parameter some providers need.
        client_auth: ``"basic"`` (HTTP Basic, RFC 6749 §2.3.1, the default) or
            ``"body"`` (id and secret in the form body).
        refresh_margin: refresh this many seconds before the token expires
            (at most half the token's lifetime, for short-lived tokens).
        timeout: the token request's own timeout in seconds.
        token_client: the ``httpx.AsyncClient`` (async flow) or ``httpx.Client``
            (sync flow) for token requests (default: a short-lived one of its
            own, outside the API's throttle).
        clock: where time comes from (tests).

    .. versionadded:: 0.1
    """

    _library = HTTPX


class OAuth2RefreshToken(RefreshTokenGrant, httpx.Auth):
    """The refresh-token grant (RFC 6749 §6) as an ``httpx.Auth``.

    Starts from an access and refresh token pair, refreshes with the refresh
    token (once, however many requests need it), keeps the rotated refresh
    token, and calls ``on_token`` with every new token so it can be persisted.

    Args:
        token_url: the token endpoint.
        refresh_token: the refresh token to start from.
        access_token: the current access token, if any.
        expires_in: seconds the current access token has left, if known.
        client_id: the client's id, if the provider wants it.
        client_secret: the client's secret, if the provider wants one.
        client_auth: ``"basic"`` or ``"body"``, as for client credentials.
        on_token: called with each new :class:`OAuth2Token`.
        refresh_margin: refresh this many seconds before the token expires
            (at most half the token's lifetime, for short-lived tokens).
        timeout: the token request's own timeout in seconds.
        token_client: the ``httpx.AsyncClient`` for token requests.
        clock: where time comes from (tests).

    .. versionadded:: 0.1
    """

    _library = HTTPX


class RateLimitedTransport(AsyncTransportBase, httpx.AsyncBaseTransport):
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
        unit_rates: quotas in other units than requests, per bucket, one rate
            each, e.g. ``{"tokens": "60000/minute"}`` (a model API's tokens per
            minute; ``"input_tokens"`` and ``"output_tokens"`` for Anthropic's
            separate limits). All must hold, with ``rate``, for a request to go.
            Without it, token limits are learned from the OpenAI and Anthropic
            headers (``x-ratelimit-limit-tokens``, ``anthropic-ratelimit-*``).
        meter: what a request costs in those units: an estimate reserved before
            it goes, settled to the usage its answer reports. Default
            :class:`ModelTokens`: OpenAI and Anthropic model calls (prompt
            characters / 4 + ``max_tokens``), settled from ``usage``. ``None``:
            only what requests state in ``extensions["ratelimit_units"]``.
        promote_after: the longest, in seconds, a queued request waits behind
            requests of higher priority before it goes first (the oldest first);
            ``None`` for strict priorities. Priorities are set per request
            (``extensions=priority(n)``, ``CallOptions(priority=n)``); the default
            is 0, and requests of one priority keep their order.
        priority_reserve: a :class:`PriorityReserve`: a share of the configured
            rate that only requests at or above a priority may use.
        tenant: maps a request to its tenant (a customer, an API key): under
            contention each tenant gets its weighted share of the bucket, alone the
            whole of it. A request's ``extensions["ratelimit_tenant"]`` overrides it.
        tenant_weights: each tenant's weight (1 for a tenant not named).
        tenant_rates: a tenant's own cap inside each bucket's quota, e.g.
            ``{"trial": "5/second"}``.
        operations: an :class:`OperationPolicy` (``OperationPolicy.from_openapi``):
            each request's operation gives its bucket, cost, priority, route label
            and retry safety, where the request does not say itself.

    Per request, ``extensions={"ratelimit_cost": n}`` charges ``n`` units
    instead of 1, ``extensions={"ratelimit_units": {"tokens": n}}`` reserves
    ``n`` tokens instead of the meter's estimate, and
    ``extensions={"ratelimit_priority": n}`` queues it before lower priorities.

    Raises:
        ConfigurationError: (a ``ValueError``) at construction, naming the bad option.

    .. versionadded:: 0.1
    """

    _library = HTTPX

    @lists_throttle_options
    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        **options: Unpack[ThrottleOptions],
    ) -> None:
        self._setup(transport, options)


class SyncRateLimitedTransport(SyncTransportBase, httpx.BaseTransport):
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

    _library = HTTPX

    @lists_throttle_options
    def __init__(
        self,
        transport: httpx.BaseTransport | None = None,
        **options: Unpack[ThrottleOptions],
    ) -> None:
        self._setup(transport, options)


class RateLimitedClient(ClientWiring, httpx.AsyncClient):
    """An ``httpx.AsyncClient`` that never sends over the quota.

    Takes every ``httpx.AsyncClient`` argument, plus the throttle options of
    :class:`RateLimitedTransport`. The transport it builds (or the one you
    pass, and every one in ``mounts``) is wrapped so that all of them share
    one throttle: one quota per client, whichever transport sends.

    Usage::

        async with RateLimitedClient(
            base_url="https://api.example.com", rate="50/minute", max_concurrency=10
        ) as client:
            response = await client.get("/documents")

    Designed for subclassing by SDK authors: set class-level defaults
    (``default_rate`` and friends) and add typed methods.

    Limits are **per client, in this process**.

    .. versionadded:: 0.1
    """

    _throttled_transport = RateLimitedTransport

    @lists_throttle_options
    def __init__(
        self,
        *,
        auth: AuthTypes | None = None,
        params: QueryParamTypes | None = None,
        headers: HeaderTypes | None = None,
        cookies: CookieTypes | None = None,
        verify: ssl.SSLContext | str | bool = True,
        cert: CertTypes | None = None,
        http1: bool = True,
        http2: bool = False,
        proxy: ProxyTypes | None = None,
        mounts: typing.Mapping[str, httpx.AsyncBaseTransport | None] | None = None,
        timeout: TimeoutTypes = _DEFAULT_TIMEOUT,
        follow_redirects: bool = False,
        limits: httpx.Limits = _DEFAULT_LIMITS,
        max_redirects: int = 20,
        event_hooks: typing.Mapping[str, list[EventHook]] | None = None,
        base_url: httpx.URL | str = "",
        transport: httpx.AsyncBaseTransport | None = None,
        trust_env: bool = True,
        default_encoding: str | typing.Callable[[bytes], str] = "utf-8",
        **options: Unpack[ThrottleOptions],
    ) -> None:
        # Validate our options before httpx builds connection pools.
        shared = self._build_state(options, "RateLimitedClient", sync=False)
        super().__init__(
            auth=auth,
            params=params,
            headers=headers,
            cookies=cookies,
            verify=verify,
            cert=cert,
            http1=http1,
            http2=http2,
            proxy=proxy,
            mounts=mounts,
            timeout=timeout,
            follow_redirects=follow_redirects,
            limits=limits,
            max_redirects=max_redirects,
            event_hooks=event_hooks,
            base_url=self._choose_base_url(base_url),
            transport=transport,
            trust_env=trust_env,
            default_encoding=default_encoding,
        )
        self._wire(shared, auth)


class SyncRateLimitedClient(ForwardingClient, httpx.Client):
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

    _throttled_transport = SyncRateLimitedTransport
