"""PrometheusMetrics and logging against the real mock upstream over real sockets.

Each test drives the upstream through events (throttle waits, 429s and pauses,
retries, give-ups and the retry budget, token refreshes) and asserts the exact
metric values afterwards, on a private registry, checked against what the
upstream itself counted.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio
import pytest

from ratelimited_client import (
    OAuth2ClientCredentials,
    PrometheusMetrics,
    Rate,
    RateLimitedClient,
    RetryPolicy,
    TokenRefreshError,
)

if TYPE_CHECKING:
    import httpx

    from ratelimited_client.testing.pytest_plugin import MockAPIServerFactory

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

NS = "ratelimited_client"


def value(metrics: PrometheusMetrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(f"{NS}_{name}", labels)
    return 0.0 if found is None else found


async def burst(client: httpx.AsyncClient, total: int) -> list[int]:
    statuses: list[int] = []

    async def one(i: int) -> None:
        statuses.append((await client.get(f"/items/{i}")).status_code)

    async with anyio.create_task_group() as tg:
        for i in range(total):
            tg.start_soon(one, i)
    return statuses


async def test_throttle_waits_are_counted_in_the_histogram(
    mock_api_server: MockAPIServerFactory,
) -> None:
    """Rate(5, 1 s), 12 at once: 5 go at once, 5 wait about 1 s, 2 about 2 s."""
    server = mock_api_server(limit=5, window=1.0, dialect="ietf")
    metrics = PrometheusMetrics()
    async with RateLimitedClient(base_url=server.url, rate=Rate(5, 1.0), metrics=metrics) as client:
        statuses = await burst(client, 12)
    bucket = server.url.replace("http://", "http://") + (
        ":80" if server.url.count(":") == 1 else ""
    )
    assert statuses == [200] * 12
    assert (
        value(metrics, "requests_total", method="GET", status_class="2xx", bucket=bucket, route="")
        == 12
    )
    assert value(metrics, "throttle_wait_seconds_count", bucket=bucket) == 12
    assert value(metrics, "throttle_wait_seconds_bucket", bucket=bucket, le="0.5") == 5
    assert value(metrics, "throttle_wait_seconds_bucket", bucket=bucket, le="1.0") == 5
    # The last two wait about 2 s; only the quota's side of that is exact (no earlier,
    # the sum below), how much later a busy machine makes them is not this test's.
    assert value(metrics, "throttle_wait_seconds_bucket", bucket=bucket, le="2.5") >= 10
    # A floor the quota sets (nobody waits less than its window); no ceiling on time.
    assert value(metrics, "throttle_wait_seconds_sum", bucket=bucket) >= 5 * 1.0 + 2 * 2.0
    assert value(metrics, "throttled_responses_total", bucket=bucket, status="429") == 0
    # The last answer's quota, as the upstream reported it.
    assert value(metrics, "quota_limit", bucket=bucket, quota="default") == 5
    assert 0 <= value(metrics, "quota_remaining", bucket=bucket, quota="default") <= 5
    assert value(metrics, "in_flight_requests") == 0
    assert value(metrics, "queued_requests", bucket=bucket) == 0
    assert server.stats().received == 12


async def test_429s_pause_and_retries_are_counted(
    mock_api_server: MockAPIServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """No local limit, 4 at once against 2 per second: 2 × 429, one pause, 2 retries."""
    server = mock_api_server(limit=2, window=1.0, dialect="retry-after")
    metrics = PrometheusMetrics()
    with caplog.at_level(logging.INFO, logger="ratelimited_client"):
        async with RateLimitedClient(base_url=server.url, learn=False, metrics=metrics) as client:
            statuses = await burst(client, 4)
    bucket = f"{server.url}"
    assert statuses == [200] * 4
    stats = server.stats()
    assert (stats.received, stats.rejected) == (6, 2)
    labels = {"method": "GET", "bucket": bucket, "route": ""}
    assert value(metrics, "requests_total", status_class="2xx", **labels) == 4
    assert value(metrics, "requests_total", status_class="4xx", **labels) == 2
    assert value(metrics, "request_duration_seconds_count", **labels) == 6
    assert value(metrics, "throttled_responses_total", bucket=bucket, status="429") == 2
    assert value(metrics, "retries_total", bucket=bucket, reason="status 429") == 2
    # Both 429s answer the same burst: one pause, one WARNING.
    assert value(metrics, "server_pauses_total", bucket=bucket, source="retry-after") == 1
    # The pause the server stated (Retry-After: 1), summed as stated: a number from
    # the headers, not a wall time, so a busy machine cannot change it.
    assert 1.0 <= value(metrics, "server_pause_seconds_total", bucket=bucket) <= 1.0 + 1e-9
    assert value(metrics, "throttle_wait_seconds_count", bucket=bucket) == 6
    assert value(metrics, "gave_up_total", bucket=bucket, reason="attempts exhausted") == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [getattr(r, "event", None) for r in warnings] == ["paused"]
    retries = [r for r in caplog.records if getattr(r, "event", None) == "retry"]
    assert len(retries) == 2
    assert all(r.levelno == logging.INFO for r in retries)


async def test_give_ups_and_an_exhausted_budget_are_counted(
    mock_api_server: MockAPIServerFactory,
) -> None:
    """Every answer a 503: a budget of one retry lets 1 through, then refuses twice."""
    server = mock_api_server(limit=100, window=1.0, fail_rate=1.0, seed=7)
    metrics = PrometheusMetrics()
    policy = RetryPolicy(
        attempts=3,
        backoff=0.01,
        max_backoff=0.01,
        max_retry_after=2.0,
        budget=0.0,
        budget_floor=0.1,
        budget_window=10.0,
    )
    async with RateLimitedClient(base_url=server.url, retry=policy, metrics=metrics) as client:
        first = await client.get("/a")
        second = await client.get("/b")
    assert (first.status_code, second.status_code) == (503, 503)
    bucket = server.url
    assert server.stats().faults == 3
    assert (
        value(metrics, "requests_total", method="GET", status_class="5xx", bucket=bucket, route="")
        == 3
    )
    assert value(metrics, "retries_total", bucket=bucket, reason="status 503") == 1
    assert value(metrics, "retry_budget_exhausted_total", bucket=bucket) == 2
    assert value(metrics, "gave_up_total", bucket=bucket, reason="retry budget exhausted") == 2
    assert value(metrics, "retry_budget_remaining") == 0


async def test_gauges_show_in_flight_and_queued_while_it_happens(
    mock_api_server: MockAPIServerFactory,
) -> None:
    server = mock_api_server(limit=100, window=1.0)
    metrics = PrometheusMetrics()
    bucket = server.url
    async with RateLimitedClient(
        base_url=server.url, rate=Rate(2, 60.0), metrics=metrics
    ) as client:
        # A body over 64 KiB streams (a smaller one is read inside the attempt and
        # frees its slot at once): store one, then hold the list open.
        big = {"title": "big", "body": "x" * 100_000}
        assert (await client.post("/documents", json=big)).status_code == 201
        async with client.stream("GET", "/documents") as response:
            assert response.status_code == 200
            assert value(metrics, "in_flight_requests") == 1
            async with anyio.create_task_group() as tg:
                for i in range(3):
                    tg.start_soon(client.get, f"/queued/{i}")
                await anyio.wait_all_tasks_blocked()
                assert value(metrics, "queued_requests", bucket=bucket) == 3
                tg.cancel_scope.cancel()
        assert value(metrics, "in_flight_requests") == 0
        assert value(metrics, "queued_requests", bucket=bucket) == 0
        assert client.statistics().queued == 0


async def test_token_refreshes_are_counted_and_secrets_appear_nowhere(
    mock_api_server: MockAPIServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 5's leak check over real sockets: logs at DEBUG, exception text and the
    metrics output hold neither the client secret nor any access or refresh token."""
    secret = "very-secret-client-secret-0451"
    server = mock_api_server(limit=50, window=1.0, oauth=True, client_secret=secret, token_ttl=1.0)
    metrics = PrometheusMetrics()
    auth = OAuth2ClientCredentials(
        f"{server.url}/oauth/token", client_id="mock-client", client_secret=secret
    )
    tokens: set[str] = set()
    errors: list[str] = []
    with caplog.at_level(logging.DEBUG):
        async with RateLimitedClient(base_url=server.url, auth=auth, metrics=metrics) as client:
            for _ in range(3):
                assert (await burst(client, 5)) == [200] * 5
                assert auth.token is not None
                tokens.add(auth.token.access_token)
                await anyio.sleep(1.05)  # the token expires: the next burst refreshes once
        wrong = OAuth2ClientCredentials(
            f"{server.url}/oauth/token", client_id="mock-client", client_secret=secret + "x"
        )
        async with RateLimitedClient(base_url=server.url, auth=wrong, metrics=metrics) as client:
            with pytest.raises(TokenRefreshError) as caught:
                await client.get("/items/1")
            errors.append(str(caught.value))
            errors.append(repr(caught.value))
    assert len(tokens) == 3
    assert server.stats().tokens_issued == 3
    grant = {"grant": "client_credentials"}
    assert value(metrics, "token_refreshes_total", outcome="success", **grant) == 3
    assert value(metrics, "token_refreshes_total", outcome="failure", **grant) == 1
    assert any(getattr(r, "event", None) == "token_refresh_failed" for r in caplog.records)
    exposed = metrics.render().decode()
    text = (
        caplog.text
        + "".join(f"{record.__dict__}" for record in caplog.records)
        + "\n".join(errors)
        + exposed
        + repr(auth)
        + repr(wrong)
    )
    for needle in (secret, *tokens):
        assert needle not in text
