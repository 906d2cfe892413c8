"""``RateLimitedClient``: an ``httpx.AsyncClient`` whose transports are throttled.

The client only wires options into :class:`RateLimitedTransport`; every
behaviour lives in the transport.
"""

from __future__ import annotations

import typing
from typing import Unpack

import httpx

from ._oauth import _OAuth2Base
from ._options import ThrottleOptions, lists_throttle_options
from ._sdk import ClientDefaults
from ._transport import RateLimitedTransport

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

    from ._throttle import ThrottleCore, ThrottleStatistics

__all__ = ["RateLimitedClient"]

# httpx's own defaults, repeated so the signature reads like httpx.AsyncClient's.
_DEFAULT_TIMEOUT = httpx.Timeout(5.0)
_DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class RateLimitedClient(ClientDefaults, httpx.AsyncClient):
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
        self._shared = shared
        self._throttle: ThrottleCore = shared.throttle
        # httpx keeps the default transport and the mounted ones (explicit mounts
        # and proxies from the environment) in these two attributes; wrapping
        # them all with one throttle keeps a single quota per client.
        self._transport = RateLimitedTransport._sharing(self._transport, shared)
        self._mounts = {
            pattern: (None if inner is None else RateLimitedTransport._sharing(inner, shared))
            for pattern, inner in self._mounts.items()
        }
        if isinstance(auth, _OAuth2Base):
            auth.attach_hooks(shared.hooks)  # token refreshes reach this client's hooks
        shared.hooks.attach(self)

    def statistics(self) -> ThrottleStatistics:
        """A snapshot of the client's throttle: in flight, queued, per-bucket usage, budget left."""
        return self._shared.statistics()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._throttle!r}>"
