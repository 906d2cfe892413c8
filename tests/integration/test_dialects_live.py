"""Every header dialect the mock speaks, over real sockets, with no rate configured.

The client must learn the quota from what the server says: a handful of 429s
at most, all before it has learned the limit, and never a request sent on a
bucket before a Retry-After it was given has passed.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import anyio
import httpx
import pytest

from ratelimited_client import RateLimitedTransport
from ratelimited_client.testing._dialects import DIALECTS as MOCK_DIALECTS

if TYPE_CHECKING:
    from ratelimited_client.testing.pytest_plugin import MockAPIServerFactory

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

DIALECTS = list(MOCK_DIALECTS)
# Header dialects report the quota on every answer: the floor is zero 429s.
# A server that speaks only through 429s costs the ones in flight when it first does:
# at most four, the most a client that knows nothing keeps in flight.
MAX_429 = {"retry-after": 4}
REQUESTS = 100
CONCURRENCY = 60


class Spy(httpx.AsyncBaseTransport):
    """Records (sent, answered, status, Retry-After) for every attempt, on the client's clock."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.log: list[tuple[float, float, int, float | None]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sent = time.monotonic()
        response = await self.inner.handle_async_request(request)
        retry_after = response.headers.get("retry-after")
        self.log.append(
            (
                sent,
                time.monotonic(),
                response.status_code,
                float(retry_after) if retry_after else None,
            )
        )
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_unknown_limit_is_learned_from_each_dialect(
    mock_api_server: MockAPIServerFactory, dialect: str, anyio_backend: str
) -> None:
    """100 requests at concurrency 60, no rate, against 20 per 0.5 s strict: few 429s."""
    server = mock_api_server(limit=20, window=0.5, dialect=dialect)
    spy = Spy()
    transport = RateLimitedTransport(spy, retry=None)  # count every 429 the server sends
    statuses: list[int] = []
    todo = iter(range(REQUESTS))

    async def worker() -> None:
        for i in todo:
            statuses.append((await client.get(f"/items/{i}")).status_code)

    async with httpx.AsyncClient(base_url=server.url, transport=transport) as client:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for _ in range(CONCURRENCY):
                    tg.start_soon(worker)
    rejected = statuses.count(429)
    print(f"{dialect} on {anyio_backend}: {rejected} × 429 of {REQUESTS}")  # noqa: T201
    assert len(statuses) == REQUESTS
    assert rejected <= MAX_429.get(dialect, 0)
    stats = server.stats()
    assert stats.rejected == rejected
    # After the last 429 the client has learned: the rest all succeeded.
    if rejected:
        last = max(i for i, (_, _, status, _) in enumerate(spy.log) if status == 429)
        assert all(status == 200 for _, _, status, _ in spy.log[last + 1 + CONCURRENCY :])
    # No request left before a Retry-After it had been given had passed.
    for _, answered, status, retry_after in spy.log:
        if status == 429 and retry_after is not None:
            early = [s for s, _, _, _ in spy.log if answered < s < answered + retry_after]
            assert early == [], f"{len(early)} sent within Retry-After {retry_after}"
    learned = transport.statistics().buckets
    assert any(b.learned_rate is not None for b in learned.values())


@pytest.mark.parametrize("skew", [-600.0, 600.0], ids=["server-10min-behind", "server-10min-ahead"])
async def test_server_clock_skew_does_not_matter(
    mock_api_server: MockAPIServerFactory, skew: float
) -> None:
    """The server's clock 10 minutes off ours, epoch resets (GitHub): still no 429,
    and the run is paced by the quota, not by the skew (no 10-minute stalls)."""
    server = mock_api_server(limit=20, window=1.0, dialect="github", clock_skew=skew)
    transport = RateLimitedTransport()
    statuses: list[int] = []
    todo = iter(range(80))

    async def worker() -> None:
        for i in todo:
            statuses.append((await client.get(f"/items/{i}")).status_code)

    started = time.monotonic()
    async with httpx.AsyncClient(base_url=server.url, transport=transport) as client:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for _ in range(40):
                    tg.start_soon(worker)
    elapsed = time.monotonic() - started
    assert statuses == [200] * 80
    assert server.stats().max_received_in_window <= 20
    # 3 s is the least the quota allows; the ceiling (4 ×, loose enough for a busy
    # machine) tells pacing by the quota apart from a stall of the skew's size.
    assert 3.0 <= elapsed <= 12.0
