"""The story this library exists for, over real sockets: a provider that bans abusive clients.

The mock upstream allows 50 requests per second (the real-world 50 per minute,
scaled), answers 429 with Retry-After past it, and after 5 rejections within
one window answers 429 to everything for 5 s.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import anyio
import httpx
import pytest
import tenacity

from ratelimited_client import Rate, RateLimitedClient, RetryPolicy

if TYPE_CHECKING:
    from ratelimited_client.testing import MockAPIServer
    from ratelimited_client.testing.pytest_plugin import MockAPIServerFactory

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PENALTY = {"limit": 50, "window": 1.0, "penalty_after": 5, "penalty_for": 5.0}


async def bursts(send: object, total: int, concurrency: int, burst: int, gap: float) -> list[int]:
    """``total`` requests in bursts of ``burst`` every ``gap`` seconds, ``concurrency`` at once."""
    statuses: list[int] = []
    limiter = anyio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with limiter:
            response = await send(f"/items/{i}")  # type: ignore[operator]
            statuses.append(response.status_code)

    async with anyio.create_task_group() as tg:
        for start in range(0, total, burst):
            for i in range(start, min(total, start + burst)):
                tg.start_soon(one, i)
            await anyio.sleep(gap)
    return statuses


async def test_naive_httpx_tenacity_client_gets_banned(
    mock_api_server: MockAPIServerFactory,
) -> None:
    """Control: httpx + tenacity retrying 429 at once, no jitter, no header reading."""
    server: MockAPIServer = mock_api_server(**PENALTY)
    retrying = tenacity.AsyncRetrying(
        retry=tenacity.retry_if_result(lambda r: r.status_code == 429),
        wait=tenacity.wait_fixed(0.05),
        stop=tenacity.stop_after_attempt(5),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )
    async with httpx.AsyncClient(base_url=server.url) as client:

        async def send(path: str) -> httpx.Response:
            return await retrying(client.get, path)

        with anyio.fail_after(60):
            statuses = await bursts(send, total=300, concurrency=200, burst=150, gap=0.2)
    stats = server.stats()
    assert stats.penalties >= 1, stats
    assert statuses.count(429) > 0


async def test_client_that_knows_the_rate_never_gets_a_429(
    mock_api_server: MockAPIServerFactory,
) -> None:
    """rate=Rate(50, 1 s): 500 requests at concurrency 200, in bursts: zero 429s."""
    server: MockAPIServer = mock_api_server(**PENALTY)
    async with RateLimitedClient(base_url=server.url, rate=Rate(50, 1.0)) as client:
        started = time.monotonic()
        with anyio.fail_after(60):
            statuses = await bursts(client.get, total=500, concurrency=200, burst=250, gap=0.5)
        elapsed = time.monotonic() - started
    stats = server.stats()
    assert statuses == [200] * 500
    assert (stats.rejected, stats.penalties) == (0, 0)
    assert stats.max_received_in_window <= 50
    # (500 / 50 - 1) periods at least; the ceiling is a loose sanity bound (the
    # closeness to the least time is benchmarks/bench_scenarios.py's figure).
    assert 9.0 <= elapsed <= 9.0 * 1.5


async def test_client_that_does_not_know_the_rate_never_trips_the_penalty(
    mock_api_server: MockAPIServerFactory,
) -> None:
    """No rate: it learns from the first 429s (at most four) and is never banned;
    retries bring every request home."""
    server: MockAPIServer = mock_api_server(**PENALTY)
    async with RateLimitedClient(
        base_url=server.url, retry=RetryPolicy(attempts=6, backoff=0.2)
    ) as client:
        with anyio.fail_after(60):
            statuses = await bursts(client.get, total=400, concurrency=200, burst=200, gap=0.5)
    stats = server.stats()
    assert stats.penalties == 0, stats
    assert stats.rejected <= 4
    assert statuses == [200] * 400
