"""Cancellation storms over real sockets: every slot and reservation comes back.

A random 30 % of requests are cancelled at random moments, so they are caught
queued in the throttle, waiting out a server pause, in flight, sleeping in a
retry's backoff or waiting for a token refresh. Afterwards the throttle's
counters are back to zero, the concurrency semaphore is free, the requests
that were not cancelled all finished, and nothing was left to be garbage
collected unawaited (pytest turns warnings into errors; the ``asyncio`` logger's
"Task was destroyed" would fail the test too).
"""

from __future__ import annotations

import gc
import logging
import random
from collections import Counter
from typing import TYPE_CHECKING

import anyio
import pytest

from ratelimited_client import (
    OAuth2ClientCredentials,
    Rate,
    RateLimitedClient,
    RetryPolicy,
)
from ratelimited_client._throttle import Permit, Throttle, _Waiter

if TYPE_CHECKING:
    from ratelimited_client.testing.pytest_plugin import MockAPIServerFactory

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SECRET = "storm-secret"


@pytest.mark.timeout(120)
async def test_a_cancellation_storm_gives_every_slot_back(
    mock_api_server: MockAPIServerFactory,
    anyio_backend: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = mock_api_server(
        limit=40,
        window=1.0,
        algorithm="sliding",
        latency=(0.0, 0.15),
        fail_rate=0.1,  # 503s: half pause the bucket, half send their request to backoff
        oauth=True,
        client_id="app",
        client_secret=SECRET,
        token_ttl=1.0,  # a refresh every half second: some are cancelled waiting for one
        seed=3,
    )
    rng = random.Random(5)
    total = 100
    outcomes: Counter[str] = Counter()
    caplog.set_level(logging.ERROR, logger="asyncio")
    auth = OAuth2ClientCredentials(
        f"{server.url}/oauth/token", client_id="app", client_secret=SECRET
    )
    async with RateLimitedClient(
        base_url=server.url,
        auth=auth,
        rate=Rate(40, 1.0),
        max_concurrency=10,
        retry=RetryPolicy(attempts=4, backoff=0.3, budget=1.0),
    ) as client:

        async def one(i: int, cancel_after: float | None) -> None:
            if cancel_after is None:
                response = await client.get(f"/items/{i}")
                outcomes[str(response.status_code)] += 1
                return
            with anyio.move_on_after(cancel_after) as scope:
                response = await client.get(f"/items/{i}")
                outcomes[str(response.status_code)] += 1
            if scope.cancelled_caught:
                outcomes["cancelled"] += 1

        plan = [rng.uniform(0.0, 4.0) if rng.random() < 0.3 else None for _ in range(total)]
        with anyio.fail_after(90):
            async with anyio.create_task_group() as tg:
                for i, cancel_after in enumerate(plan):
                    tg.start_soon(one, i, cancel_after)
        stats = client.statistics()
        throttle = client._shared.throttle
        assert isinstance(throttle, Throttle)
        semaphore = throttle._semaphore
        assert semaphore is not None
        assert semaphore.in_use == 0
        assert semaphore.waiting == 0

    planned = sum(1 for c in plan if c is not None)
    assert sum(outcomes.values()) == total
    # Every request that was not cancelled finished, and some of the planned ones too.
    assert outcomes["cancelled"] <= planned
    assert outcomes["cancelled"] >= planned // 3, (outcomes, planned)
    assert outcomes["200"] + outcomes["503"] == total - outcomes["cancelled"]
    assert stats.in_flight == 0
    assert stats.queued == 0
    assert all(bucket.waiting == 0 for bucket in stats.buckets.values())
    gc.collect()
    assert not [obj for obj in gc.get_objects() if isinstance(obj, (Permit, _Waiter))]
    assert not [r for r in caplog.records if r.name == "asyncio"], caplog.text
    assert server.stats().rejected == 0
