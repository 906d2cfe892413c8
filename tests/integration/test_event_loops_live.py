"""One client, several event loops: it works, or it says why not.

The throttle keeps no loop-bound state (a waiter's future is made by the loop
that waits), so its quota carries over from one loop to the next. httpx's
connection pool does not: a kept-alive connection belongs to the loop that
opened it. A request from a new loop while the pool still holds the old loop's
connections fails at once with an error naming the cause, instead of httpcore's
"Event loop is closed" somewhere inside a send.
"""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from typing import TYPE_CHECKING

import httpx
import pytest
import trio

from ratelimited_client import Rate, RateLimitedClient

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ratelimited_client.testing import MockAPIServer
    from ratelimited_client.testing.pytest_plugin import MockAPIServerFactory

pytestmark = pytest.mark.slow

NO_KEEPALIVE = httpx.Limits(max_keepalive_connections=0)


async def statuses(client: RateLimitedClient, count: int) -> list[int]:
    return [(await client.get(f"/items/{i}")).status_code for i in range(count)]


def test_a_second_asyncio_run_with_pooled_connections_names_the_cause(
    mock_api_server: MockAPIServerFactory,
) -> None:
    server = mock_api_server(limit=100)
    client = RateLimitedClient(base_url=server.url, rate=Rate(50, 1.0))  # outside any loop
    assert asyncio.run(statuses(client, 3)) == [200, 200, 200]
    with pytest.raises(RuntimeError, match="used in another event loop") as caught:
        asyncio.run(statuses(client, 1))
    assert "max_keepalive_connections=0" in str(caught.value)
    assert server.stats().received == 3  # refused before anything was sent
    # The first loop's kept-alive connection is stranded (the very thing the error is
    # about): nothing can close it any more, so let it go quietly.
    del client, caught
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def test_one_client_serves_two_asyncio_runs_then_trio_and_keeps_its_quota(
    mock_api_server: MockAPIServerFactory,
) -> None:
    server = mock_api_server(limit=2, window=1.0)
    client = RateLimitedClient(base_url=server.url, rate=Rate(2, 1.0), limits=NO_KEEPALIVE)
    started = time.monotonic()
    assert asyncio.run(statuses(client, 2)) == [200, 200]
    # The quota is spent: the next loop's request waits for the window, it does not 429.
    assert asyncio.run(statuses(client, 1)) == [200]
    assert time.monotonic() - started >= 0.95
    assert trio.run(statuses, client, 2) == [200, 200]
    assert server.stats().rejected == 0
    asyncio.run(client.aclose())


def test_a_client_made_inside_each_run_just_works(mock_api_server: MockAPIServerFactory) -> None:
    server = mock_api_server(limit=100)

    async def run() -> list[int]:
        async with RateLimitedClient(base_url=server.url, rate=Rate(50, 1.0)) as client:
            return await statuses(client, 2)

    assert asyncio.run(run()) == [200, 200]
    assert asyncio.run(run()) == [200, 200]
    assert trio.run(run) == [200, 200]


# pytest-asyncio gives every test a loop of its own: one module-level client
# (no idle connections) serves them all.
SHARED: dict[str, RateLimitedClient] = {}


def shared(server: MockAPIServer) -> RateLimitedClient:
    if "client" not in SHARED:
        SHARED["client"] = RateLimitedClient(
            base_url=server.url, rate=Rate(50, 1.0), limits=NO_KEEPALIVE
        )
    return SHARED["client"]


@pytest.fixture(scope="module")
def module_server() -> Iterator[MockAPIServer]:
    from ratelimited_client.testing import MockAPIConfig, MockAPIServer

    server = MockAPIServer(MockAPIConfig(limit=100))
    server.start()
    yield server
    server.stop()


@pytest.mark.asyncio
async def test_per_test_loops_first(module_server: MockAPIServer) -> None:
    assert await statuses(shared(module_server), 2) == [200, 200]


@pytest.mark.asyncio
async def test_per_test_loops_second(module_server: MockAPIServer) -> None:
    assert await statuses(shared(module_server), 2) == [200, 200]
    assert shared(module_server).statistics().buckets
