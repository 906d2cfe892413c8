"""One test per claim of SECURITY.md that no other test already holds.

(The claims' other tests: secrets in logs, errors, reprs and metrics —
``test_oauth.py::test_secrets_never_leak_into_reprs_errors_or_logs`` and
``integration/test_oauth_live.py``; label cardinality —
``test_hooks.py``; untrusted header values — ``test_signal_fuzz.py`` and
``test_fuzz.py``.)
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio
import httpx
import pytest

from ratelimited_client import (
    OAuth2ClientCredentials,
    RateLimitedClient,
    RetryAfterTooLongError,
    RetryPolicy,
    SyncRateLimitedClient,
)
from ratelimited_client.testing import MockAPIConfig

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.anyio

SECRET = "client-secret-never-shown"


def token_endpoint(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200, json={"access_token": "tok-secret-1", "token_type": "bearer", "expires_in": 3600}
    )


def credentials(token_client: httpx.AsyncClient | httpx.Client) -> OAuth2ClientCredentials:
    return OAuth2ClientCredentials(
        "https://auth.test/token", client_id="app", client_secret=SECRET, token_client=token_client
    )


def redirecting(seen: dict[str, str | None]) -> Callable[[httpx.Request], httpx.Response]:
    """api.test redirects /away to evil.test and /here to api.test/landed."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen[f"{request.url.host}{request.url.path}"] = request.headers.get("authorization")
        if request.url.path == "/away":
            return httpx.Response(302, headers={"location": "http://evil.test/collect"})
        if request.url.path == "/here":
            return httpx.Response(302, headers={"location": "/landed"})
        return httpx.Response(200, json={"ok": True})

    return handle


async def test_the_bearer_token_never_follows_a_redirect_to_another_host() -> None:
    seen: dict[str, str | None] = {}
    auth = credentials(httpx.AsyncClient(transport=httpx.MockTransport(token_endpoint)))
    async with RateLimitedClient(
        base_url="http://api.test",
        transport=httpx.MockTransport(redirecting(seen)),
        auth=auth,
        follow_redirects=True,
    ) as client:
        away = await client.get("/away")
        here = await client.get("/here")
    assert away.status_code == here.status_code == 200
    assert seen["api.test/away"] == "Bearer tok-secret-1"
    assert seen["evil.test/collect"] is None  # the token stayed home
    assert seen["api.test/landed"] == "Bearer tok-secret-1"  # same origin: kept


def test_the_bearer_token_never_follows_a_redirect_to_another_host_sync() -> None:
    seen: dict[str, str | None] = {}
    auth = credentials(httpx.Client(transport=httpx.MockTransport(token_endpoint)))
    with SyncRateLimitedClient(
        base_url="http://api.test",
        transport=httpx.MockTransport(redirecting(seen)),
        auth=auth,
        follow_redirects=True,
    ) as client:
        assert client.get("/away").status_code == 200
    assert seen["api.test/away"] == "Bearer tok-secret-1"
    assert seen["evil.test/collect"] is None


async def test_a_hostile_retry_after_cannot_park_the_client() -> None:
    """A server asking for a day's wait gets an error at once, not a sleeping client."""

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"retry-after": "86400"})

    async with RateLimitedClient(
        base_url="http://api.test",
        transport=httpx.MockTransport(handle),
        retry=RetryPolicy(max_retry_after=60.0),
    ) as client:
        with pytest.raises(RetryAfterTooLongError) as caught:
            await client.get("/x")
    assert caught.value.retry_after == pytest.approx(86400)


async def test_a_quota_reset_far_away_cannot_park_the_client() -> None:
    """A spent quota that resets in 20 hours: the next request fails at once, not in 20 h."""

    def handle(request: httpx.Request) -> httpx.Response:
        headers = {"ratelimit": '"day";r=0;t=72000', "ratelimit-policy": '"day";q=100;w=86400'}
        return httpx.Response(200, headers=headers, json={})

    async with RateLimitedClient(
        base_url="http://api.test",
        transport=httpx.MockTransport(handle),
        retry=RetryPolicy(max_retry_after=60.0),
    ) as client:
        assert (await client.get("/first")).status_code == 200
        with anyio.fail_after(5):
            with pytest.raises(RetryAfterTooLongError) as caught:
                await client.get("/second")
    assert caught.value.retry_after == pytest.approx(72000, abs=5)


async def test_logs_never_carry_credentials_or_query_strings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429 if request.url.path == "/first" else 200, json={})

    caplog.set_level(logging.DEBUG, logger="ratelimited_client")
    async with RateLimitedClient(
        base_url="http://api.test",
        transport=httpx.MockTransport(handle),
        headers={"Authorization": "Bearer hdr-secret", "Cookie": "session=cookie-secret"},
        retry=RetryPolicy(attempts=2, backoff=0.01),
    ) as client:
        await client.get("/first", params={"api_key": "query-secret"})
        await client.get("/second", params={"api_key": "query-secret"})
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert caplog.records, "DEBUG logging should have said something"
    for secret in ("hdr-secret", "cookie-secret", "query-secret"):
        assert secret not in text


def test_the_mock_api_refuses_to_listen_beyond_loopback() -> None:
    from ratelimited_client.testing import MockAPIServer

    with pytest.raises(ValueError, match="loopback"):
        MockAPIServer(MockAPIConfig(), host="0.0.0.0")  # noqa: S104 - the point of the test
