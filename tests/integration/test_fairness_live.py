"""Fair shares between tenants over real sockets: three tenants weighted 1:1:2 share
a quota of 40 requests a second that the bundled mock enforces (a strict sliding
window), each with more work than it can get. Counted as the responses come back:
10, 10 and 20 a second (within 10 %); when two run out of work, the third gets the
whole quota from the next window."""

from __future__ import annotations

import collections
import time
from typing import TYPE_CHECKING

import anyio
import pytest

from ratelimited_client import RateLimitedClient

if TYPE_CHECKING:
    from ratelimited_client.testing.pytest_plugin import MockAPIServerFactory

pytestmark = [pytest.mark.slow]

LIMIT = 40


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_three_tenants_share_a_quota_by_their_weights(
    mock_api_server: MockAPIServerFactory, anyio_backend: str
) -> None:
    server = mock_api_server(limit=LIMIT, window=1.0)
    done: list[tuple[float, str]] = []
    async with RateLimitedClient(
        base_url=server.url,
        rate=f"{LIMIT}/second",
        tenant=lambda request: request.url.path.split("/")[1],
        tenant_weights={"c": 2},
        slow_start=False,  # the warm-up spends the first window at once
    ) as client:
        started = time.perf_counter()

        async def get(tenant: str, i: int) -> None:
            response = await client.get(f"/{tenant}/{i}")
            response.raise_for_status()
            done.append((time.perf_counter() - started, tenant))

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tasks:
                for i in range(LIMIT):  # the first window, spent: everyone after queues
                    tasks.start_soon(get, "warm-up", i)
                await anyio.sleep(0.05)
                # a and b run out of work after 4 windows; c has work for 6 more.
                for tenant, count in (("a", 40), ("b", 40), ("c", 280)):
                    for i in range(count):
                        tasks.start_soon(get, tenant, i)
    stats = server.stats()
    assert stats.rejected == 0
    assert stats.max_received_in_window <= LIMIT
    # While all three wait (the windows at 1, 2, 3 and 4 s): 40, 40 and 80.
    shared = collections.Counter(t for at, t in done if 0.9 <= at < 4.9 and t != "warm-up")
    assert 36 <= shared["a"] <= 44
    assert 36 <= shared["b"] <= 44
    assert 72 <= shared["c"] <= 88
    # Then c alone: the whole quota a window (the two windows after the others' last).
    last_other = max(at for at, t in done if t in ("a", "b"))
    alone = [at for at, t in done if t == "c" and last_other + 1.1 <= at < last_other + 3.1]
    assert len(alone) >= 0.9 * 2 * LIMIT
