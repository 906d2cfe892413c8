"""The first program: 60 requests to the bundled mock API, which allows 10 a second
and answers 429 past that. Runs offline (the mock is served on 127.0.0.1).

    pip install 'ratelimited_client[testing]'
    python first_program.py
"""

from __future__ import annotations

import time

import anyio

from ratelimited_client import Rate, RateLimitedClient
from ratelimited_client.testing import MockAPIConfig, MockAPIServer


async def main(url: str) -> list[int]:
    statuses: list[int] = []
    async with RateLimitedClient(
        base_url=url,
        rate=Rate(10, 1.0),  # or "10/second", Rate.parse("600/minute")
        max_concurrency=5,  # in flight at once
        max_queued=1_000,  # one more raises QueueFullError at once
    ) as client:

        async def fetch(i: int) -> None:
            response = await client.get(f"/items/{i}")
            statuses.append(response.status_code)

        async with anyio.create_task_group() as tg:
            for i in range(60):
                tg.start_soon(fetch, i)
    return statuses


if __name__ == "__main__":
    with MockAPIServer(MockAPIConfig(limit=10, window=1.0)) as server:
        started = time.monotonic()
        statuses = anyio.run(main, server.url)  # or anyio.run(main, server.url, backend="trio")
        elapsed = time.monotonic() - started
        seen = server.stats()
    print(f"{statuses.count(200)} × 200, {seen.rejected} × 429 at the server, ", end="")
    print(f"at most {seen.max_received_in_window} in any second, {elapsed:.1f} s")
