"""Overhead of the throttle: RateLimitedClient vs a plain httpx.AsyncClient.

Both send the same requests to the bundled mock API on 127.0.0.1 (in a process
of its own) with a limit far above what they can reach, so the throttle never
makes anyone wait: what is left is its bookkeeping. Runs alternate between the
two clients and repeat; the report is the median throughput of each and their
ratio. Both use the same pool of 10 kept-alive connections: with httpx's
default pool (100 connections, 20 kept alive) at concurrency 50 the plain
client's own throughput flips between two modes from run to run (about 600 and
about 1,150 requests/s here; 20 busy kept-alive connections are the slow one,
compare encode/httpx#3215), which would drown a few per cent of overhead.

    .venv/bin/python benchmarks/bench_overhead.py [--requests 3000] [--concurrency 50]
        [--rounds 7] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
from _upstream import Upstream

from ratelimited_client import Rate, RateLimitedClient
from ratelimited_client.testing import MockAPIConfig


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


async def measure(requests: int, concurrency: int, rounds: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=10, max_keepalive_connections=10)
    plain: list[float] = []
    ours: list[float] = []
    with Upstream(MockAPIConfig(limit=10_000_000, window=1.0)) as upstream:
        for _ in range(rounds):
            async with httpx.AsyncClient(base_url=upstream.url, limits=limits) as client:
                plain.append(await throughput(client, requests, concurrency))
            async with RateLimitedClient(
                base_url=upstream.url,
                limits=limits,
                rate=[Rate(1_000_000, 1.0), Rate(50_000_000, 60.0)],
                max_concurrency=concurrency * 2,
            ) as client:
                ours.append(await throughput(client, requests, concurrency))
    p, o = statistics.median(plain), statistics.median(ours)
    return {
        "requests": requests,
        "concurrency": concurrency,
        "rounds": rounds,
        "plain_per_s": plain,
        "ours_per_s": ours,
        "plain_median_per_s": p,
        "ours_median_per_s": o,
        "ratio": o / p,
    }


def report(result: dict[str, Any]) -> str:
    median = f"req/s (median of {result['rounds']})"
    return "\n".join(
        [
            f"plain httpx.AsyncClient : {result['plain_median_per_s']:8.0f} {median}",
            f"RateLimitedClient       : {result['ours_median_per_s']:8.0f} {median}",
            f"ratio (ours / plain)    : {result['ratio']:8.3f}",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="throttle overhead, as a ratio to plain httpx")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args()
    result = anyio.run(measure, args.requests, args.concurrency, args.rounds)
    print(report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
