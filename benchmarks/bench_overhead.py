"""Overhead of the throttle: RateLimitedClient vs a plain httpx.AsyncClient, and the
same for the httpx2 stack (``ratelimited_client.httpx2.RateLimitedClient`` vs a
plain ``httpx2.AsyncClient``).

Both send the same requests to the bundled mock API on 127.0.0.1 (in a process
of its own) with limits far above what they can reach. Each round runs both
clients back to back, which one goes first alternating from round to round; a
ratio is the median over rounds of the round's ratio (ours / plain), with its
interquartile range, beside the median throughput of each.

Each client of a round first sends a warm-up of 300 requests, untimed in the
ratio: both open their pools' connections, and ours ends its slow start (first
contact at a configured rate: in flight doubles per round trip until the burst
or ``max_concurrency``, so a server that takes less rejects a couple of requests,
not the whole burst). From then on the throttle makes nobody wait, and what is
left is its bookkeeping. The warm-up's own time is reported beside the ratio
(``first_ms``): what first contact costs a fresh client, once.

The result is measured with one kept-alive connection per concurrent request
(50). It is repeated with a pool of 10 connections for 50 requests, where
httpx's own work per request is least (so ours weighs most). Either way one
round's ratio ranges over about ±7 % here (plain httpx alone varies by up to
±15 % from run to run), hence the pairs, the median and its spread; httpx's default pool
(100 connections, 20 kept alive) flips between about 600 and about 1,150
requests/s from run to run (compare encode/httpx#3215) and is not used. Last,
the CPU per request of both over an in-memory transport, one at a time: the
library's own cost, free of network, pool and server.

    .venv/bin/python benchmarks/bench_overhead.py [--requests 3000] [--concurrency 50]
        [--rounds 9] [--json PATH]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
from _upstream import Upstream

import ratelimited_client
import ratelimited_client.httpx2
from ratelimited_client import Rate
from ratelimited_client.testing import MockAPIConfig

# Each stack: its HTTP library and the module of its adapters.
STACKS: dict[str, tuple[Any, Any]] = {
    "httpx": (httpx, ratelimited_client),
    "httpx2": (httpx2, ratelimited_client.httpx2),
}

_HEADERS = {"date": "Wed, 25 Nov 2026 15:00:00 GMT", "content-type": "application/json"}


async def throughput(client: Any, total: int, concurrency: int) -> float:
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


def _client(kind: str, stack: str = "httpx", **options: Any) -> Any:
    library, adapters = STACKS[stack]
    if kind == "plain":
        return library.AsyncClient(**options)
    return adapters.RateLimitedClient(
        rate=[Rate(1_000_000, 1.0), Rate(50_000_000, 60.0)], max_concurrency=100, **options
    )


# Requests each client of a round sends before its timed run (see the module's
# docstring): more than slow start needs at ``max_concurrency=100`` (99 answers).
WARM_UP = 300


async def _paired(
    url: str,
    connections: int,
    requests: int,
    concurrency: int,
    rounds: int,
    stack: str = "httpx",
    warm_up: int = WARM_UP,
) -> dict[str, Any]:
    """``rounds`` rounds of both clients back to back, the order alternating; each
    client sends ``warm_up`` requests (timed apart) before its timed run."""
    library, _ = STACKS[stack]
    limits = library.Limits(max_connections=connections, max_keepalive_connections=connections)
    runs: dict[str, list[float]] = {"plain": [], "ours": []}
    first: dict[str, list[float]] = {"plain": [], "ours": []}
    for round_ in range(rounds):
        for kind in ("plain", "ours") if round_ % 2 == 0 else ("ours", "plain"):
            async with _client(kind, stack, base_url=url, limits=limits) as client:
                started = time.perf_counter()
                await throughput(client, warm_up, concurrency)
                first[kind].append((time.perf_counter() - started) * 1000)
                runs[kind].append(await throughput(client, requests, concurrency))
    ratios = [o / p for o, p in zip(runs["ours"], runs["plain"], strict=True)]
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    return {
        "requests": requests,
        "concurrency": concurrency,
        "connections": connections,
        "rounds": rounds,
        "warm_up": warm_up,
        "plain_first_ms": statistics.median(first["plain"]),
        "ours_first_ms": statistics.median(first["ours"]),
        "plain_per_s": runs["plain"],
        "ours_per_s": runs["ours"],
        "plain_median_per_s": statistics.median(runs["plain"]),
        "ours_median_per_s": statistics.median(runs["ours"]),
        "round_ratios": ratios,
        "ratio": statistics.median(ratios),
        "ratio_iqr": [quartiles[0], quartiles[2]],
    }


async def in_process(
    requests: int = 4000, repeats: int = 7, stack: str = "httpx"
) -> dict[str, float]:
    """CPU per request over an in-memory transport, one request at a time: the
    library's own cost with no network, no pool and no server (the least of
    ``repeats`` runs, alternated)."""
    library, _ = STACKS[stack]

    def answer(request: Any) -> Any:
        return library.Response(200, content=b'{"ok": true}', headers=_HEADERS)

    best = {"plain": math.inf, "ours": math.inf}
    for _ in range(repeats):
        for kind in best:
            transport = library.MockTransport(answer)
            url = "http://127.0.0.1:1"
            async with _client(kind, stack, base_url=url, transport=transport) as c:
                for i in range(200):
                    await c.get(f"/items/{i}")
                gc.collect()
                started = time.process_time()
                for i in range(requests):
                    await c.get(f"/items/{i}")
                cpu = (time.process_time() - started) / requests * 1e6
            best[kind] = min(best[kind], cpu)
    return {
        "plain_us": best["plain"],
        "ours_us": best["ours"],
        "overhead_us": best["ours"] - best["plain"],
        "ratio": best["ours"] / best["plain"],
    }


async def measure(
    requests: int, concurrency: int, rounds: int, small_pool: int = 10
) -> dict[str, Any]:
    """The ratio with one connection per concurrent request (the result), the same
    with a pool of ``small_pool`` connections (``small_pool``), and the CPU per
    request in process (``in_process``); under ``"httpx2"`` the first and the last
    for the httpx2 stack."""
    quick = requests < 1000  # the test suite's smoke run
    warm = 100 if quick else WARM_UP
    with Upstream(MockAPIConfig(limit=10_000_000, window=1.0)) as upstream:
        url = upstream.url
        result = await _paired(url, concurrency, requests, concurrency, rounds, "httpx", warm)
        small = await _paired(url, small_pool, requests, concurrency, rounds, "httpx", warm)
        other = await _paired(url, concurrency, requests, concurrency, rounds, "httpx2", warm)
    result["small_pool"] = small
    result["in_process"] = await in_process(*((400, 1) if quick else (4000, 7)))
    other["in_process"] = await in_process(*((400, 1, "httpx2") if quick else (4000, 7, "httpx2")))
    result["httpx2"] = other
    return result


def _line(name: str, run: dict[str, Any]) -> str:
    return (
        f"{name:<24}: ratio {run['ratio']:.3f} (median of {run['rounds']} rounds' ratios, "
        f"IQR {run['ratio_iqr'][0]:.3f}-{run['ratio_iqr'][1]:.3f}); plain "
        f"{run['plain_median_per_s']:.0f} req/s, ours {run['ours_median_per_s']:.0f} req/s; "
        f"first {run['warm_up']} requests {run['plain_first_ms']:.0f} ms plain, "
        f"{run['ours_first_ms']:.0f} ms ours"
    )


def report(result: dict[str, Any]) -> str:
    lines = [_line(f"{result['connections']} connections", result)]
    if "small_pool" in result:
        small = result["small_pool"]
        lines.append(_line(f"{small['connections']} connections", small))
    if "in_process" in result:
        cpu = result["in_process"]
        lines.append(
            f"{'in process':<24}: {cpu['plain_us']:.1f} µs of CPU per request plain, "
            f"{cpu['ours_us']:.1f} ours: {cpu['overhead_us']:.1f} µs added "
            f"({cpu['ours_us'] / cpu['plain_us']:.2f} ×)"
        )
    if "httpx2" in result:
        lines += ["httpx2:", *("  " + line for line in report(result["httpx2"]).splitlines())]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="throttle overhead, as a ratio to plain httpx")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args()
    result = anyio.run(measure, args.requests, args.concurrency, args.rounds)
    print(report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
