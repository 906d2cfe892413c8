"""OAuth 2.0 auth flows against an in-memory token endpoint: one refresh, one replay, no leaks."""

from __future__ import annotations

import base64
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import anyio
import httpx
import pytest

from ratelimited_client import (
    ConfigurationError,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
    OAuth2Token,
    RateLimitedClient,
    SyncRateLimitedClient,
    TokenRefreshError,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from ratelimited_client.testing import FakeClock

pytestmark = pytest.mark.anyio

SECRET = "s3cr3t-client-secret-value"


class TokenEndpoint:
    """Issues tok-1, tok-2, ... (and rotating refresh tokens rt-N); can hang or fail."""

    def __init__(self, *, expires_in: float = 3600.0) -> None:
        self.expires_in = expires_in
        self.issued = 0
        self.forms: list[dict[str, str]] = []
        self.auth_headers: list[str | None] = []
        self.gate: anyio.Event | None = None
        self.fail: int | None = None
        self.refused = False
        self.valid_refresh = "rt-0"
        self.reused_refresh: list[str] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.gate is not None:
            self._record(request)
            await self.gate.wait()
            return self._answer(request, recorded=True)
        return self._answer(request)

    def sync(self, request: httpx.Request) -> httpx.Response:
        """The same endpoint for a sync ``httpx.Client``."""
        return self._answer(request)

    def _record(self, request: httpx.Request) -> dict[str, str]:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        self.forms.append(form)
        self.auth_headers.append(request.headers.get("authorization"))
        return form

    def _answer(self, request: httpx.Request, *, recorded: bool = False) -> httpx.Response:
        form = self.forms[-1] if recorded else self._record(request)
        if self.refused:
            raise httpx.ConnectError("refused", request=request)
        if self.fail is not None:
            body = {"error": "server_error", "error_description": "down", "echo": form}
            return httpx.Response(self.fail, json=body)
        refresh = form.get("refresh_token")
        if form.get("grant_type") == "refresh_token" and refresh != self.valid_refresh:
            self.reused_refresh.append(refresh or "")
            return httpx.Response(400, json={"error": "invalid_grant"})
        self.issued += 1
        self.valid_refresh = f"rt-{self.issued}"
        return httpx.Response(
            200,
            json={
                "access_token": f"tok-{self.issued}",
                "token_type": "bearer",
                "expires_in": self.expires_in,
                "refresh_token": self.valid_refresh,
            },
        )


class Api:
    """A protected API: 200 for the current token, 401 otherwise; records what it saw."""

    def __init__(self, endpoint: TokenEndpoint) -> None:
        self.endpoint = endpoint
        self.seen: list[str | None] = []
        self.revoked: set[str] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        header = request.headers.get("authorization")
        self.seen.append(header)
        token = (header or "").removeprefix("Bearer ")
        if token.startswith("tok-") and token not in self.revoked:
            return httpx.Response(200, json={"ok": True})
        return httpx.Response(401, json={"error": "invalid_token"})


def setup(
    auth_factory: Any = None, **endpoint_options: Any
) -> tuple[TokenEndpoint, Api, httpx.AsyncClient, Any]:
    endpoint = TokenEndpoint(**endpoint_options)
    token_client = httpx.AsyncClient(transport=httpx.MockTransport(endpoint))
    auth = (auth_factory or credentials)(token_client)
    api = Api(endpoint)
    client = RateLimitedClient(
        base_url="http://api.test",
        transport=httpx.MockTransport(api),
        auth=auth,
        retry=None,
        learn=False,
    )
    return endpoint, api, client, auth


def credentials_sync(token_client: httpx.Client) -> OAuth2ClientCredentials:
    return OAuth2ClientCredentials(
        "https://auth.test/oauth/token",
        client_id="app",
        client_secret=SECRET,
        token_client=token_client,
    )


def credentials(token_client: httpx.AsyncClient, **options: Any) -> OAuth2ClientCredentials:
    return OAuth2ClientCredentials(
        "https://auth.test/oauth/token",
        client_id="app",
        client_secret=SECRET,
        scope="docs:read",
        token_client=token_client,
        **options,
    )


async def test_many_requests_without_a_token_make_one_token_request() -> None:
    """100 concurrent requests find no token: exactly one token request, all authorised."""
    endpoint, api, client, auth = setup()
    endpoint.gate = anyio.Event()
    statuses: list[int] = []

    async def one() -> None:
        statuses.append((await client.get("/docs")).status_code)

    async with client, anyio.create_task_group() as tg:
        for _ in range(100):
            tg.start_soon(one)
        await anyio.wait_all_tasks_blocked()
        endpoint.gate.set()
    assert endpoint.issued == 1
    assert auth.refreshes == 1
    assert statuses == [200] * 100
    assert set(api.seen) == {"Bearer tok-1"}


async def test_client_credentials_form_and_basic_auth() -> None:
    """RFC 6749 §4.4 with HTTP Basic by default; client_auth='body' puts them in the form."""
    endpoint, _, client, _ = setup()
    async with client:
        await client.get("/docs")
    assert endpoint.forms[0] == {"grant_type": "client_credentials", "scope": "docs:read"}
    expected = "Basic " + base64.b64encode(f"app:{SECRET}".encode()).decode()
    assert endpoint.auth_headers[0] == expected

    endpoint, _, client, _ = setup(lambda tc: credentials(tc, client_auth="body", audience="api"))
    async with client:
        await client.get("/docs")
    assert endpoint.forms[0]["client_secret"] == SECRET
    assert endpoint.forms[0]["audience"] == "api"
    assert endpoint.auth_headers[0] is None


async def test_proactive_refresh_before_expiry(fake_clock: FakeClock) -> None:
    """expires_in 60 with a 30 s margin: the token is renewed from t = 30 on, once."""
    _, api, client, _ = setup(
        lambda tc: credentials(tc, refresh_margin=30, clock=fake_clock), expires_in=60.0
    )
    async with client:
        await client.get("/a")
        await fake_clock.advance(29.0)
        await client.get("/b")
        await fake_clock.advance(2.0)
        await client.get("/c")
        await client.get("/d")
    assert api.seen == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2", "Bearer tok-2"]


async def test_a_margin_longer_than_the_token_life_refreshes_at_half_life(
    fake_clock: FakeClock,
) -> None:
    """2 s tokens with the default 30 s margin: renewed after 1 s, not on every request."""
    _, api, client, _ = setup(lambda tc: credentials(tc, clock=fake_clock), expires_in=2.0)
    async with client:
        for _ in range(4):
            await client.get("/a")
            await fake_clock.advance(0.2)  # t = 0 .. 0.8: still tok-1
        await fake_clock.advance(0.3)  # t = 1.1: past half its life
        await client.get("/b")
        await client.get("/c")
    assert api.seen == ["Bearer tok-1"] * 4 + ["Bearer tok-2"] * 2


async def test_a_401_refreshes_once_and_replays_once() -> None:
    """The token is revoked: one refresh, one replay; if that 401s too, the caller sees it."""
    endpoint, api, client, _ = setup()
    async with client:
        await client.get("/a")
        api.revoked.add("tok-1")
        assert (await client.get("/b")).status_code == 200
        assert api.seen[-2:] == ["Bearer tok-1", "Bearer tok-2"]
        api.revoked.update({"tok-2", "tok-3"})
        response = await client.get("/c")
    assert response.status_code == 401
    assert endpoint.issued == 3  # one refresh for /b, one for /c: never a loop


async def test_concurrent_401s_with_the_same_token_refresh_once() -> None:
    """Fifty requests all see their token revoked: one refresh serves every replay."""
    endpoint, api, client, _ = setup()
    async with client:
        await client.get("/warm")
        api.revoked.add("tok-1")
        endpoint.gate = anyio.Event()
        statuses: list[int] = []

        async def one() -> None:
            statuses.append((await client.get("/x")).status_code)

        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(one)
            await anyio.wait_all_tasks_blocked()
            endpoint.gate.set()
    assert statuses == [200] * 50
    assert endpoint.issued == 2


@pytest.mark.parametrize("failure", ["500", "refused"])
async def test_a_failed_refresh_fails_every_waiter_then_recovers(failure: str) -> None:
    """Token endpoint 500 or refused: each waiting request gets TokenRefreshError at once;
    the next request tries again and succeeds."""
    endpoint, _, client, auth = setup()
    if failure == "500":
        endpoint.fail = 500
    else:
        endpoint.refused = True
    errors: list[TokenRefreshError] = []

    async def one() -> None:
        try:
            await client.get("/x")
        except TokenRefreshError as exc:
            errors.append(exc)

    endpoint.gate = anyio.Event()
    async with client:
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(one)
            await anyio.wait_all_tasks_blocked()
            endpoint.gate.set()
        endpoint.gate = None
        assert len(errors) == 20
        assert auth.refreshes == 1
        if failure == "500":
            assert errors[0].status == 500
            assert errors[0].detail == "server_error: down"
        else:
            assert errors[0].status is None
            assert "ConnectError" in str(errors[0])
        endpoint.fail = None
        endpoint.refused = False
        assert (await client.get("/again")).status_code == 200


async def test_refresh_token_rotation_never_reuses_a_spent_token(fake_clock: FakeClock) -> None:
    """Concurrent requests around expiry: each refresh uses the newest refresh token once;
    on_token sees every new token."""
    saved: list[OAuth2Token] = []

    def factory(tc: httpx.AsyncClient) -> OAuth2RefreshToken:
        return OAuth2RefreshToken(
            "https://auth.test/oauth/token",
            refresh_token="rt-0",
            access_token="tok-0",
            expires_in=0,
            client_id="app",
            on_token=saved.append,
            token_client=tc,
            refresh_margin=1.0,
            clock=fake_clock,
        )

    endpoint, api, client, _ = setup(factory, expires_in=10.0)
    async with client:
        for _ in range(5):
            async with anyio.create_task_group() as tg:
                for i in range(30):
                    tg.start_soon(client.get, f"/{i}")
            await fake_clock.advance(10.0)
    assert endpoint.reused_refresh == []
    assert [f["refresh_token"] for f in endpoint.forms] == ["rt-0", "rt-1", "rt-2", "rt-3", "rt-4"]
    assert [t.access_token for t in saved] == ["tok-1", "tok-2", "tok-3", "tok-4", "tok-5"]
    assert set(api.seen) == {f"Bearer tok-{n}" for n in range(1, 6)}


async def test_secrets_never_leak_into_reprs_errors_or_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """repr/str of the auth and its token, exception text and log records hold no secret."""
    caplog.set_level(logging.DEBUG)
    endpoint, _, client, auth = setup()
    async with client:
        await client.get("/a")
        token = auth.token
        endpoint.fail = 401
        auth._token = None
        with pytest.raises(TokenRefreshError) as info:
            await client.get("/b")
    texts = [repr(auth), str(auth), repr(token), str(info.value), repr(info.value)]
    texts += [record.getMessage() for record in caplog.records]
    texts += [str(record.args) for record in caplog.records]
    for text in texts:
        assert SECRET not in text
        assert "tok-1" not in text
        assert "rt-1" not in text


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"token_url": "ftp://x"}, "token_url"),
        ({"client_secret": ""}, "client_secret"),
        ({"client_auth": "jwt"}, "client_auth"),
        ({"refresh_margin": -1}, "refresh_margin"),
        ({"timeout": float("nan")}, "timeout"),
    ],
)
def test_bad_configuration_names_the_option(options: dict[str, Any], name: str) -> None:
    """Invalid settings fail at construction, naming the option (never echoing a secret)."""
    arguments: dict[str, Any] = {
        "token_url": "https://auth.test/token",
        "client_id": "app",
        "client_secret": SECRET,
        **options,
    }
    url = arguments.pop("token_url")
    with pytest.raises(ConfigurationError, match=name) as info:
        OAuth2ClientCredentials(url, **arguments)
    assert SECRET not in str(info.value)


def test_sync_flow_refreshes_once_for_many_threads_and_replays_a_401() -> None:
    """The sync flow: 16 threads find no token, one token request; a revoked token gets
    one refresh and one replay."""
    endpoint = TokenEndpoint()
    token_client = httpx.Client(transport=httpx.MockTransport(endpoint.sync))
    auth = credentials_sync(token_client)
    api = Api(endpoint)
    client = SyncRateLimitedClient(
        base_url="http://api.test",
        transport=httpx.MockTransport(api),
        auth=auth,
        retry=None,
        learn=False,
    )
    with client, ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda _: client.get("/docs").status_code, range(64)))
        assert statuses == [200] * 64
        assert endpoint.issued == 1
        api.revoked.add("tok-1")
        assert client.get("/docs").status_code == 200
    assert endpoint.issued == 2
    assert api.seen[-2:] == ["Bearer tok-1", "Bearer tok-2"]


def test_sync_flow_failure_reaches_the_waiters_then_recovers() -> None:
    endpoint = TokenEndpoint()
    endpoint.fail = 503
    token_client = httpx.Client(transport=httpx.MockTransport(endpoint.sync))
    auth = credentials_sync(token_client)
    api = Api(endpoint)
    with SyncRateLimitedClient(
        base_url="http://api.test", transport=httpx.MockTransport(api), auth=auth, retry=None
    ) as client:
        with pytest.raises(TokenRefreshError) as caught:
            client.get("/docs")
        assert caught.value.status == 503
        assert SECRET not in str(caught.value)
        endpoint.fail = None
        assert client.get("/docs").status_code == 200


async def test_a_401_with_an_unread_body_is_replayed() -> None:
    """A 401 streamed without a length (chunked): the flow drains it rather than
    closing it unread (httpx reads the 401 after the flow has moved on, and a closed,
    unread stream raised ``StreamClosed``)."""
    endpoint = TokenEndpoint()
    token_client = httpx.AsyncClient(transport=httpx.MockTransport(endpoint))
    seen: list[str] = []

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"error": '
        yield b'"invalid_token"}'

    def api(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        if len(seen) == 1:
            return httpx.Response(401, content=chunks())
        return httpx.Response(200, json={"ok": True})

    client = RateLimitedClient(
        base_url="http://api.test",
        transport=httpx.MockTransport(api),
        auth=credentials(token_client),
        retry=None,
    )
    async with client:
        response = await client.get("/a")
    assert response.status_code == 200
    assert seen == ["Bearer tok-1", "Bearer tok-2"]
    assert [r.status_code for r in response.history] == [401]


def test_a_401_with_an_unread_body_is_replayed_by_the_sync_flow() -> None:
    endpoint = TokenEndpoint()
    token_client = httpx.Client(transport=httpx.MockTransport(endpoint.sync))
    seen: list[str] = []

    def chunks() -> Iterator[bytes]:
        yield b'{"error": "invalid_token"}'

    def api(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(401, content=chunks()) if len(seen) == 1 else httpx.Response(200)

    with SyncRateLimitedClient(
        base_url="http://api.test",
        transport=httpx.MockTransport(api),
        auth=credentials_sync(token_client),
        retry=None,
    ) as client:
        response = client.get("/a")
    assert response.status_code == 200
    assert seen == ["Bearer tok-1", "Bearer tok-2"]
