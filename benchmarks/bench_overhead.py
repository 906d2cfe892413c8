"""Overhead of the throttle: RateLimitedClient vs a plain httpx.AsyncClient.

Both send the same requests to the bundled mock API on 127.0.0.1 (in a process
of its own) with a limit far above what they can reach, so the throttle never
makes anyone wait: what is left is its bookkeeping. Each round runs both
clients back to back, which one goes first alternating from round to round; the
ratio reported is the median over rounds of the round's ratio (ours / plain),
with its interquartile range, beside the median throughput of each. On a shared
machine whose speed drifts by ±10 % from one run to the next (seen here), the
pairs cancel the drift that a ratio of two medians keeps. Both use the same
pool of 10 kept-alive connections: with httpx's default pool (100 connections,
20 kept alive) at concurrency 50 the plain client's own throughput flips
between two modes from run to run (about 600 and about 1,150 requests/s here;
20 busy kept-alive connections are the slow one, compare encode/httpx#3215),
which would drown a few per cent of overhead.

    .venv/bin/python benchmarks/bench_overhead.py [--requests 3000] [--concurrency 50]
        [--rounds 15] [--json PATH]
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

        async def run_plain() -> None:
            async with httpx.AsyncClient(base_url=upstream.url, limits=limits) as client:
                plain.append(await throughput(client, requests, concurrency))

        async def run_ours() -> None:
            async with RateLimitedClient(
                base_url=upstream.url,
                limits=limits,
                rate=[Rate(1_000_000, 1.0), Rate(50_000_000, 60.0)],
                max_concurrency=concurrency * 2,
            ) as client:
                ours.append(await throughput(client, requests, concurrency))

        for round_ in range(rounds):
            first, second = (run_plain, run_ours) if round_ % 2 == 0 else (run_ours, run_plain)
            await first()
            await second()
    ratios = [o / p for o, p in zip(ours, plain, strict=True)]
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    return {
        "requests": requests,
        "concurrency": concurrency,
        "rounds": rounds,
        "plain_per_s": plain,
        "ours_per_s": ours,
        "plain_median_per_s": statistics.median(plain),
        "ours_median_per_s": statistics.median(ours),
        "round_ratios": ratios,
        "ratio": statistics.median(ratios),
        "ratio_iqr": [quartiles[0], quartiles[2]],
    }


def report(result: dict[str, Any]) -> str:
    median = f"req/s (median of {result['rounds']})"
    return "\n".join(
        [
            f"plain httpx.AsyncClient : {result['plain_median_per_s']:8.0f} {median}",
            f"RateLimitedClient       : {result['ours_median_per_s']:8.0f} {median}",
            f"ratio (ours / plain)    : {result['ratio']:8.3f} (median of the rounds' ratios; "
            f"IQR {result['ratio_iqr'][0]:.3f}-{result['ratio_iqr'][1]:.3f})",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="throttle overhead, as a ratio to plain httpx")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args()
    result = anyio.run(measure, args.requests, args.concurrency, args.rounds)
    print(report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
