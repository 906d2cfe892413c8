"""Learning an unknown limit, per header dialect: 429s received and time against the least.

For each dialect the bundled mock API speaks, a strict sliding window of
``--limit`` per ``--window`` s; ``--requests`` requests from ``--concurrency``
tasks through ``RateLimitedTransport`` with **no** rate configured. Reports the
429s the client received and the elapsed time as a ratio to the least time the
quota allows, ``(ceil(N / L) - 1) * W``.

    .venv/bin/python benchmarks/bench_learning.py [--requests 300] [--concurrency 100]
"""

from __future__ import annotations

import argparse
import math
import time

import anyio
import httpx

from ratelimited_client import RateLimitedTransport
from ratelimited_client.testing import MockAPIConfig, MockAPIServer
from ratelimited_client.testing._dialects import DIALECTS


async def run(dialect: str, args: argparse.Namespace) -> tuple[int, float, str]:
    config = MockAPIConfig(limit=args.limit, window=args.window, dialect=dialect)  # type: ignore[arg-type]
    with MockAPIServer(config) as server:
        transport = RateLimitedTransport()
        todo = iter(range(args.requests))
        rejected = 0

        async def worker() -> None:
            nonlocal rejected
            for i in todo:
                response = await client.get(f"/items/{i}")
                rejected += response.status_code == 429

        started = time.monotonic()
        async with httpx.AsyncClient(base_url=server.url, transport=transport) as client:
            async with anyio.create_task_group() as tg:
                for _ in range(args.concurrency):
                    tg.start_soon(worker)
        elapsed = time.monotonic() - started
        learned = [b.learned_rate for b in transport.statistics().buckets.values()]
        assert server.stats().max_admitted_in_window <= args.limit
    return rejected, elapsed, str(learned[0]) if learned and learned[0] else "-"


async def main(args: argparse.Namespace) -> None:
    least = (math.ceil(args.requests / args.limit) - 1) * args.window
    print(
        f"{args.requests} requests, concurrency {args.concurrency}, limit "
        f"{args.limit}/{args.window:g}s, least time {least:.2f} s"
    )
    print(f"{'dialect':<12} {'429s':>5} {'elapsed':>9} {'ratio':>7}  learned")
    for dialect in DIALECTS:
        rejected, elapsed, learned = await run(dialect, args)
        print(f"{dialect:<12} {rejected:>5} {elapsed:>8.2f}s {elapsed / least:>7.3f}  {learned}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="learning an unknown limit, per dialect")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--window", type=float, default=1.0)
    anyio.run(main, parser.parse_args())
