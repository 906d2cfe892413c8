"""Overhead of the throttle: RateLimitedClient vs a plain httpx.AsyncClient.

Both send the same requests to the bundled mock API on 127.0.0.1 with a limit
far above what they can reach, so the throttle never makes anyone wait: what
is left is its bookkeeping. Runs alternate between the two clients and repeat;
the report is the median throughput of each and their ratio.

    .venv/bin/python benchmarks/bench_overhead.py [--requests 3000] [--concurrency 50] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import anyio
import httpx

from ratelimited_client import Rate, RateLimitedClient
from ratelimited_client.testing import MockAPIConfig, MockAPIServer


async def throughput(client: httpx.AsyncClient, total: int, concurrency: int) -> float:
    todo = iter(range(total))
    failures = 0

    async def worker() -> None:
        nonlocal failures
        for i in todo:
            response = await client.get(f"/items/{i}")
            failures += response.status_code != 200

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    elapsed = time.perf_counter() - started
    assert failures == 0, f"{failures} requests failed"
    return total / elapsed


async def main(args: argparse.Namespace) -> None:
    config = MockAPIConfig(limit=10_000_000, window=1.0)
    plain: list[float] = []
    ours: list[float] = []
    with MockAPIServer(config) as server:
        for _ in range(args.rounds):
            async with httpx.AsyncClient(base_url=server.url) as client:
                plain.append(await throughput(client, args.requests, args.concurrency))
            async with RateLimitedClient(
                base_url=server.url,
                rate=[Rate(1_000_000, 1.0), Rate(50_000_000, 60.0)],
                max_concurrency=args.concurrency * 2,
            ) as client:
                ours.append(await throughput(client, args.requests, args.concurrency))
    p, o = statistics.median(plain), statistics.median(ours)
    print(f"plain httpx.AsyncClient : {p:8.0f} req/s (median of {args.rounds})")
    print(f"RateLimitedClient       : {o:8.0f} req/s (median of {args.rounds})")
    print(f"ratio (ours / plain)    : {o / p:8.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="throttle overhead, as a ratio to plain httpx")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    anyio.run(main, parser.parse_args())
