"""OAuth 2.0 over real sockets: the mock's token endpoint, tokens that expire, an IdP that fails."""

from __future__ import annotations

import logging
import socket
import time
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from ratelimited_client import (
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
    Rate,
    RateLimitedClient,
    TokenRefreshError,
)

if TYPE_CHECKING:
    from ratelimited_client.testing import MockAPIServer
    from ratelimited_client.testing.pytest_plugin import MockAPIServerFactory

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SECRET = "integration-client-secret-42"
OAUTH = {"oauth": True, "client_id": "app", "client_secret": SECRET, "limit": 100_000}


def credentials(server: MockAPIServer, **options: Any) -> OAuth2ClientCredentials:
    return OAuth2ClientCredentials(
        f"{server.url}/oauth/token", client_id="app", client_secret=SECRET, **options
    )


async def fire(client: RateLimitedClient, count: int) -> list[int | str]:
    outcomes: list[int | str] = []

    async def one(i: int) -> None:
        try:
            outcomes.append((await client.get(f"/docs/{i}")).status_code)
        except TokenRefreshError as exc:
            outcomes.append(type(exc).__name__)

    async with anyio.create_task_group() as tg:
        for i in range(count):
            tg.start_soon(one, i)
    return outcomes


async def test_500_requests_on_an_expired_token_make_one_token_request(
    mock_api_server: MockAPIServerFactory,
) -> None:
    """The token has expired: 500 concurrent requests, exactly one token request."""
    server = mock_api_server(**OAUTH, token_ttl=2.0)
    auth = credentials(server, refresh_margin=0.0)
    async with RateLimitedClient(base_url=server.url, auth=auth, max_concurrency=100) as client:
        assert (await client.get("/warm")).status_code == 200
        await anyio.sleep(2.1)  # expired now
        outcomes = await fire(client, 500)
    assert outcomes == [200] * 500
    assert server.stats().tokens_issued == 2  # the first, and exactly one refresh
    assert server.stats().unauthorized == 0


async def test_tokens_expiring_every_2s_during_a_10s_run(
    mock_api_server: MockAPIServerFactory,
) -> None:
    """50 requests/s for 10 s, tokens living 2 s: one token request per expiry, no 401."""
    server = mock_api_server(**OAUTH, token_ttl=2.0)
    auth = credentials(server, refresh_margin=0.1)
    statuses: list[int] = []
    started = time.monotonic()
    async with RateLimitedClient(base_url=server.url, auth=auth, rate=Rate(50, 1.0)) as client:
        todo = iter(range(500))

        async def worker() -> None:
            for i in todo:
                statuses.append((await client.get(f"/docs/{i}")).status_code)

        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(worker)
    elapsed = time.monotonic() - started
    expiries = elapsed / (2.0 - 0.1)
    assert statuses == [200] * 500
    stats = server.stats()
    assert stats.unauthorized == 0
    assert abs(stats.tokens_issued - (1 + int(expiries))) <= 1, (stats.tokens_issued, elapsed)


async def test_rotating_refresh_tokens_are_never_used_twice(
    mock_api_server: MockAPIServerFactory,
) -> None:
    """Refresh-token grant under concurrency: every refresh token is spent exactly once."""
    ttl = 0.5
    server = mock_api_server(**OAUTH, token_ttl=ttl)
    seed = server.app.tokens.grant_refresh_token()
    auth = OAuth2RefreshToken(f"{server.url}/oauth/token", refresh_token=seed, refresh_margin=0.0)
    took: list[float] = []
    async with RateLimitedClient(base_url=server.url, auth=auth) as client:
        for _ in range(4):
            started = time.monotonic()
            assert await fire(client, 100) == [200] * 100
            took.append(time.monotonic() - started)
            await anyio.sleep(ttl + 0.1)
    stats = server.stats()
    assert stats.refresh_token_reuse == 0
    # One token per batch (each starts after the last token expired); a batch slowed
    # past the token's life by a busy machine needs one more per expiry inside it.
    most = sum(1 + int(duration / ttl) for duration in took)
    assert 4 <= stats.tokens_issued <= most, (stats.tokens_issued, took)
    if max(took) < ttl:
        assert stats.tokens_issued == 4


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("failure", ["500", "timeout", "refused"])
async def test_identity_provider_down_fails_waiters_promptly_then_recovers(
    mock_api_server: MockAPIServerFactory, failure: str, caplog: pytest.LogCaptureFixture
) -> None:
    """500, a timeout or a refused connection: every waiting request gets TokenRefreshError
    within the token timeout; the next request after recovery succeeds. No secret is
    logged or raised."""
    caplog.set_level(logging.DEBUG)
    server = mock_api_server(**OAUTH)
    auth = credentials(server, timeout=0.5)
    if failure == "refused":
        auth.token_url = f"http://127.0.0.1:{closed_port()}/oauth/token"
    else:
        server.app.tokens.failure = failure  # type: ignore[assignment]
    async with RateLimitedClient(base_url=server.url, auth=auth) as client:
        started = time.monotonic()
        outcomes = await fire(client, 50)
        elapsed = time.monotonic() - started
        assert outcomes == ["TokenRefreshError"] * 50
        # Promptly: the waiters share the one failed refresh (0.5 s timeout), not 50
        # refreshes in turn (25 s); loose enough for a busy machine.
        assert elapsed < 5.0
        assert auth.refreshes == 1
        server.app.tokens.failure = None
        auth.token_url = f"{server.url}/oauth/token"
        assert (await client.get("/after")).status_code == 200
    texts = [record.getMessage() for record in caplog.records] + [repr(auth), str(auth)]
    assert all(SECRET not in text and "mock-access" not in text for text in texts)
