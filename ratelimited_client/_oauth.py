"""OAuth 2.0 for every stack: client credentials and refresh tokens, refreshed once.

However many requests find the token missing or about to expire, one token
request is made (single-flight) and all of them use its answer; a failed
refresh fails exactly those waiters with ``TokenRefreshError`` and the next
request tries again. A 401 from the API triggers one refresh (unless another
request already got a newer token) and one replay; a second 401 is returned.

Tokens are fetched with the auth object's own small client of the same HTTP
library (its own timeout), so the token endpoint does not spend the API's
quota. Secrets and tokens never appear in ``repr``, ``str``, logs or exceptions.

The flows here are written once; each adapter module makes them an ``Auth`` of
its library (``httpx.Auth``, ``httpx2.Auth``) by mixing in the library's class
and naming its ``HttpLibrary``, whose clients post the token requests.
"""

from __future__ import annotations

import base64
import math
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import quote

import anyio

from ._blocking import run_blocking
from ._errors import ConfigurationError, TokenRefreshError
from ._hooks import Dispatcher, TokenEvent

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Generator

    from ._clock import Clock
    from ._http import HttpLibrary

__all__ = [
    "AUTH_EXTENSION",
    "ClientCredentialsGrant",
    "OAuth2Base",
    "OAuth2Token",
    "RefreshTokenGrant",
]

_DETAIL_LIMIT = 200
#: ``request.extensions`` key under which an OAuth auth object asks the transport
#: to refresh the request's token right before it is sent.
AUTH_EXTENSION = "ratelimited_client.auth"


@dataclass(frozen=True, slots=True)
class OAuth2Token:
    """A token as the endpoint issued it. Secrets are hidden from ``repr``.

    Attributes:
        access_token: the bearer token.
        expires_at: when it expires, on the monotonic clock (``math.inf``: never said).
        refresh_token: the refresh token, if one was issued.
        token_type: usually ``"Bearer"``.
        scope: the granted scope, if stated.
    """

    access_token: str = field(repr=False)
    expires_at: float = math.inf
    refresh_token: str | None = field(default=None, repr=False)
    token_type: str = "Bearer"  # noqa: S105 - a scheme name, not a secret
    scope: str | None = None


class _Flight:
    """Private. One token request in progress, awaited by everyone who needs it."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.error: TokenRefreshError | None = None


class OAuth2Base:
    """Private. The token cache, single-flight refresh and one replay on 401."""

    requires_response_body = False
    _grant_type = "unknown"
    #: The HTTP library whose clients post the token requests (set by each adapter).
    _library: ClassVar[HttpLibrary]

    def __init__(
        self,
        token_url: str,
        *,
        client_auth: str,
        refresh_margin: float,
        timeout: float,
        token_client: Any,
        clock: Clock | None,
    ) -> None:
        if client_auth not in ("basic", "body"):
            raise ConfigurationError(f"client_auth must be 'basic' or 'body', got {client_auth!r}")
        self.client_auth = client_auth
        url: object = token_url
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"token_url must be an http(s) URL, got {token_url!r}")
        numbers: tuple[tuple[str, object], ...] = (
            ("refresh_margin", refresh_margin),
            ("timeout", timeout),
        )
        for name, value in numbers:
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise ConfigurationError(f"{name} must be a number >= 0, got {value!r}")
        self.token_url = token_url
        self.refresh_margin = float(refresh_margin)
        self.timeout = float(timeout)
        self._client = token_client
        self._clock_now: Callable[[], float] = clock.now if clock is not None else time.monotonic
        self._token: OAuth2Token | None = None
        self._flight: _Flight | None = None
        self.refreshes = 0  # token requests made, for statistics and tests
        self._hooks: list[Dispatcher] = []
        self._due_at = math.inf
        self._sync_lock = threading.Lock()
        self._sync_generation = 0
        self._sync_error: TokenRefreshError | None = None

    def _store(self, token: OAuth2Token) -> None:
        """Keep ``token``; it is due ``refresh_margin`` before it expires, but never
        earlier than half its remaining life (a 2 s token with a 30 s margin is not
        refreshed on every request)."""
        life = max(0.0, token.expires_at - self._clock_now())
        self._token = token
        self._due_at = token.expires_at - min(self.refresh_margin, life / 2)

    def attach_hooks(self, hooks: Dispatcher) -> None:
        """Private. Report token requests to a client's hooks (each client once)."""
        if not any(existing is hooks for existing in self._hooks):
            self._hooks.append(hooks)

    def _report(self, event: TokenEvent) -> None:
        for hooks in self._hooks:
            hooks.emit("on_token", event)

    # -- what subclasses say ------------------------------------------------------

    def _grant(self) -> tuple[dict[str, str], dict[str, str]]:  # pragma: no cover - abstract
        """The form fields and headers of the next token request."""
        raise NotImplementedError

    def _received(self, token: OAuth2Token) -> None:
        """A new token arrived (rotation, callbacks)."""

    # -- the flow -----------------------------------------------------------------

    def sync_auth_flow(self, request: Any) -> Generator[Any, Any, None]:
        token = self._current_sync()
        request.headers["Authorization"] = f"{token.token_type} {token.access_token}"
        request.extensions[AUTH_EXTENSION] = self
        response = yield request
        if response.status_code != 401:
            return
        # Drained, not closed: httpx reads the 401 once the flow has moved on, and an
        # unread, closed stream (a chunked 401) fails there. Reading it frees the
        # connection and the throttle's slot before the refresh all the same.
        response.read()
        token = self._current_sync(stale=token)
        request.headers["Authorization"] = f"{token.token_type} {token.access_token}"
        yield request  # one replay; a second 401 goes to the caller

    async def async_auth_flow(self, request: Any) -> AsyncGenerator[Any, Any]:
        token = await self._current()
        request.headers["Authorization"] = f"{token.token_type} {token.access_token}"
        # A RateLimitedTransport calls ``before_send`` once the request has its slot:
        # the token may have expired while the request waited in the throttle.
        request.extensions[AUTH_EXTENSION] = self
        response = yield request
        if response.status_code != 401:
            return
        await response.aread()  # drained, not closed (see ``sync_auth_flow``)
        token = await self._current(stale=token)
        request.headers["Authorization"] = f"{token.token_type} {token.access_token}"
        yield request  # one replay; a second 401 goes to the caller

    async def before_send(self, request: Any) -> None:
        """Re-attach the token if it became due while the request was queued.

        Only a token this flow set is renewed: httpx drops ``Authorization`` from a
        redirect to another origin but keeps the request's extensions, and the
        bearer token must never follow a redirect to another host."""
        if "Authorization" not in request.headers:
            return
        token = await self._current()
        header = f"{token.token_type} {token.access_token}"
        if request.headers.get("Authorization") != header:
            request.headers["Authorization"] = header

    def _due(self, token: OAuth2Token | None, stale: OAuth2Token | None) -> bool:
        return token is None or token is stale or self._clock_now() >= self._due_at

    def before_send_sync(self, request: Any) -> None:
        """Re-attach the token if it became due while the request was queued (threads);
        never to a request that lost its ``Authorization`` (see ``before_send``)."""
        if "Authorization" not in request.headers:
            return
        token = self._current_sync()
        header = f"{token.token_type} {token.access_token}"
        if request.headers.get("Authorization") != header:
            request.headers["Authorization"] = header

    def _current_sync(self, stale: OAuth2Token | None = None) -> OAuth2Token:
        """The thread-safe twin of ``_current``: one token request at a time; threads
        that waited for one that failed fail with its error (the next call tries again)."""
        generation = self._sync_generation
        with self._sync_lock:
            token = self._token
            if not self._due(token, stale):
                assert token is not None  # noqa: S101
                return token
            if self._sync_generation != generation and self._sync_error is not None:
                raise self._sync_error
            self._sync_generation += 1
            try:
                token = run_blocking(self._request_token(sync=True))
            except TokenRefreshError as error:
                self._sync_error = error
                raise
            self._sync_error = None
            return token

    def _report_success(self, token: OAuth2Token, started: float) -> None:
        now = self._clock_now()
        expires_in = token.expires_at - now if math.isfinite(token.expires_at) else None
        self._report(TokenEvent(self._grant_type, True, now - started, expires_in))

    async def _current(self, stale: OAuth2Token | None = None) -> OAuth2Token:
        """A usable token: the cached one, or the answer of the one refresh in flight."""
        while True:
            token = self._token
            if not self._due(token, stale):
                assert token is not None  # noqa: S101
                return token
            flight = self._flight
            if flight is None:
                return await self._refresh()
            await flight.done.wait()
            if flight.error is not None:
                raise flight.error
            stale = None  # a fresh token was stored: take it (unless it is already due)

    async def _refresh(self) -> OAuth2Token:
        flight = self._flight = _Flight()
        try:
            return await self._request_token(sync=False)
        except TokenRefreshError as error:
            flight.error = error
            raise
        except BaseException:
            # Cancelled mid-refresh: waiters must not hang; the next one tries again.
            flight.error = TokenRefreshError("the token request was cancelled")
            raise
        finally:
            self._flight = None
            flight.done.set()

    async def _request_token(self, *, sync: bool) -> OAuth2Token:
        """One token request: posted, parsed, stored and reported. Written once for
        both flows: with ``sync`` every step blocks and nothing is awaited that could
        suspend, so ``run_blocking`` runs it on the caller's thread."""
        started = self._clock_now()
        try:
            data, headers = self._grant()
            self.refreshes += 1
            response = await self._post(data, headers, sync=sync)
            token = self._parse(response, self._clock_now())
        except TokenRefreshError as error:
            elapsed = self._clock_now() - started
            self._report(TokenEvent(self._grant_type, False, elapsed, None, error.status))
            raise
        self._store(token)
        self._received(token)
        self._report_success(token, started)
        return token

    async def _post(self, data: dict[str, str], headers: dict[str, str], *, sync: bool) -> Any:
        """Post the token request with the ``token_client`` (of the flow's kind), or a
        short-lived client of our own with the request's timeout."""
        library = self._library
        kind = library.sync_client if sync else library.async_client
        client: Any = self._client
        try:
            if isinstance(client, kind):
                sent = client.post(self.token_url, data=data, headers=headers, timeout=self.timeout)
                return sent if sync else await sent
            own = kind(timeout=self.timeout)
            try:
                sent = own.post(self.token_url, data=data, headers=headers)
                return sent if sync else await sent
            finally:
                if sync:
                    own.close()
                else:
                    await own.aclose()
        except library.http_error as exc:
            raise TokenRefreshError(
                f"the token endpoint could not be reached: {type(exc).__name__}"
            ) from None

    def _parse(self, response: Any, received: float) -> OAuth2Token:
        try:
            payload: Any = response.json()
        except ValueError:
            payload = None
        if response.status_code != 200 or not isinstance(payload, dict):
            detail = _safe_detail(payload)
            raise TokenRefreshError(
                f"the token endpoint answered {response.status_code}"
                + (f": {detail}" if detail else ""),
                status=response.status_code,
                detail=detail,
            )
        access = payload.get("access_token")
        if not isinstance(access, str) or not access:
            raise TokenRefreshError(
                "the token endpoint answered without an access_token", status=200
            )
        expires_in = payload.get("expires_in")
        expires_at = math.inf
        if (
            isinstance(expires_in, int | float)
            and not isinstance(expires_in, bool)
            and math.isfinite(expires_in)
            and expires_in >= 0
        ):
            expires_at = received + float(expires_in)
        refresh = payload.get("refresh_token")
        scope = payload.get("scope")
        token_type = payload.get("token_type")
        return OAuth2Token(
            access_token=access,
            expires_at=expires_at,
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            token_type="Bearer"
            if not isinstance(token_type, str) or token_type.lower() == "bearer"
            else token_type,
            scope=scope if isinstance(scope, str) else None,
        )

    @property
    def token(self) -> OAuth2Token | None:
        """The cached token (its secrets hidden from repr), if any."""
        return self._token

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.token_url} refreshes={self.refreshes}>"

    __str__ = __repr__


def _safe_detail(payload: object) -> str:
    """Only RFC 6749's error fields, shortened: never anything that could hold a secret."""
    if not isinstance(payload, dict):
        return ""
    parts = [
        str(payload[key])[:_DETAIL_LIMIT]
        for key in ("error", "error_description")
        if isinstance(payload.get(key), str)
    ]
    return ": ".join(parts)


def _basic(client_id: str, client_secret: str) -> str:
    pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


class ClientCredentialsGrant(OAuth2Base):
    """Private. The client-credentials grant (RFC 6749 §4.4): its form and its checks.

    Documented (and made an ``Auth``) by each adapter:
    ``ratelimited_client.OAuth2ClientCredentials`` for httpx,
    ``ratelimited_client.httpx2.OAuth2ClientCredentials`` for httpx2.
    """

    _grant_type = "client_credentials"

    def __init__(
        self,
        token_url: str,
        *,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        audience: str | None = None,
        client_auth: Literal["basic", "body"] = "basic",
        refresh_margin: float = 30.0,
        timeout: float = 10.0,
        token_client: Any = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(
            token_url,
            client_auth=client_auth,
            refresh_margin=refresh_margin,
            timeout=timeout,
            token_client=token_client,
            clock=clock,
        )
        credentials: tuple[tuple[str, object], ...] = (
            ("client_id", client_id),
            ("client_secret", client_secret),
        )
        for name, value in credentials:
            if not isinstance(value, str) or not value:
                raise ConfigurationError(f"{name} must be a non-empty string")
        self.client_id = client_id
        self.__secret = client_secret
        self.scope = scope
        self.audience = audience

    def _grant(self) -> tuple[dict[str, str], dict[str, str]]:
        data = {"grant_type": "client_credentials"}
        if self.scope:
            data["scope"] = self.scope
        if self.audience:
            data["audience"] = self.audience
        headers: dict[str, str] = {}
        if self.client_auth == "basic":
            headers["Authorization"] = _basic(self.client_id, self.__secret)
        else:
            data["client_id"] = self.client_id
            data["client_secret"] = self.__secret
        return data, headers


class RefreshTokenGrant(OAuth2Base):
    """Private. The refresh-token grant (RFC 6749 §6): its form, rotation and ``on_token``.

    Documented (and made an ``Auth``) by each adapter:
    ``ratelimited_client.OAuth2RefreshToken`` for httpx,
    ``ratelimited_client.httpx2.OAuth2RefreshToken`` for httpx2.
    """

    _grant_type = "refresh_token"

    def __init__(
        self,
        token_url: str,
        *,
        refresh_token: str,
        access_token: str | None = None,
        expires_in: float | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        client_auth: Literal["basic", "body"] = "basic",
        on_token: Callable[[OAuth2Token], object] | None = None,
        refresh_margin: float = 30.0,
        timeout: float = 10.0,
        token_client: Any = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(
            token_url,
            client_auth=client_auth,
            refresh_margin=refresh_margin,
            timeout=timeout,
            token_client=token_client,
            clock=clock,
        )
        refresh: object = refresh_token
        if not isinstance(refresh, str) or not refresh:
            raise ConfigurationError("refresh_token must be a non-empty string")
        self.client_id = client_id
        self.__secret = client_secret
        self.__refresh_token = refresh_token
        self.on_token = on_token
        if access_token:
            expires_at = math.inf if expires_in is None else self._clock_now() + expires_in
            self._store(
                OAuth2Token(
                    access_token=access_token, expires_at=expires_at, refresh_token=refresh_token
                )
            )

    def _grant(self) -> tuple[dict[str, str], dict[str, str]]:
        data = {"grant_type": "refresh_token", "refresh_token": self.__refresh_token}
        headers: dict[str, str] = {}
        if self.client_id and self.__secret and self.client_auth == "basic":
            headers["Authorization"] = _basic(self.client_id, self.__secret)
        elif self.client_id:
            data["client_id"] = self.client_id
            if self.__secret:
                data["client_secret"] = self.__secret
        return data, headers

    def _received(self, token: OAuth2Token) -> None:
        if token.refresh_token:
            self.__refresh_token = token.refresh_token  # rotation: the old one is spent
        if self.on_token is not None:
            self.on_token(token)
