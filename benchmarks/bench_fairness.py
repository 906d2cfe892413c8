"""Fair shares between tenants (issue 22): three tenants weighted 1:1:2, each with
more work than it can get, share a strict sliding window of 40 a second that the
bundled mock enforces (in a process of its own). Two ways:

- in one process: one client, the three tenants' requests in its queue;
- across processes: three processes, one tenant each, one quota in a local
  ``redis-server`` (started on a free port for the run).

For 11 s all three have work (30 requests in flight each); then a and b stop (what
they still have queued leaves the queue) and c runs alone for 3 s more. Counted as
the responses come back: each tenant's share of the 10 s after the first window
(spent at once by whoever asks first) against 10/10/20 a second, the worst second
(its largest deviation from the weights), the server's most in any second and its
429s, and how long after the others stop c has the whole quota (the first second
with at least 36 of 40 begins).

Targets: within 10 % of 10/10/20 over the 10 s, 0 × 429, never more than 40 in a
second, c alone at the whole quota within one window of the others' stop.

    .venv/bin/python benchmarks/bench_fairness.py [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

from _local_redis import local_redis
from _upstream import Upstream

from ratelimited_client.testing import MockAPIConfig

LIMIT = 40
WEIGHTS = {"a": 1, "b": 1, "c": 2}
SHARED = 11.0  # seconds all three have work (the first, a burst, not counted)
ALONE = 3.0  # seconds c runs alone after
PER_TENANT = 30  # requests in flight per tenant

WORKER = textwrap.dedent(
    """
    import json, sys, time
    import anyio
    from ratelimited_client import RateLimitedClient, RedisBackend

    url, redis_url, prefix = sys.argv[1:4]
    start = float(sys.argv[4])
    stops = json.loads(sys.argv[5])  # tenant -> when it stops (epoch seconds)
    in_flight, limit = int(sys.argv[6]), int(sys.argv[7])

    async def main():
        backend = RedisBackend(redis_url, prefix=prefix) if redis_url else None
        done = []
        async with RateLimitedClient(
            base_url=url, rate=f"{limit}/second", backend=backend,
            key=lambda request: "shared",
            tenant=lambda request: request.url.path.split("/")[1],
            tenant_weights={"c": 2}, slow_start=False,
        ) as client:
            async def worker(tenant, n):
                for i in range(1000):  # bounded: the run needs a few hundred at most
                    response = await client.get(f"/{tenant}/{n}-{i}")
                    response.raise_for_status()
                    done.append((time.time() - start, tenant))

            async def tenant_run(tenant, stop):
                with anyio.move_on_after(stop - time.time()):
                    async with anyio.create_task_group() as tg:
                        for n in range(in_flight):
                            tg.start_soon(worker, tenant, n)

            await anyio.sleep(max(0.0, start - time.time()))
            async with anyio.create_task_group() as tg:
                for tenant, stop in stops.items():
                    tg.start_soon(tenant_run, tenant, stop)
        if backend is not None:
            await backend.aclose()
        print(json.dumps(done))

    anyio.run(main)
    """
)


def _run(url: str, redis_url: str, groups: list[list[str]]) -> list[tuple[float, str]]:
    """One worker process per group of tenants; the responses as (seconds, tenant)."""
    start = time.time() + 2.0  # imports and connections first
    stops = {t: start + SHARED + (ALONE if t == "c" else 0.0) for t in WEIGHTS}
    prefix = f"fair-{uuid.uuid4().hex}"
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                url,
                redis_url,
                prefix,
                repr(start),
                json.dumps({t: stops[t] for t in group}),
                str(PER_TENANT),
                str(LIMIT),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for group in groups
    ]
    done: list[tuple[float, str]] = []
    for worker in workers:
        out, err = worker.communicate(timeout=SHARED + ALONE + 60)
        if worker.returncode != 0:
            raise RuntimeError(err[-3000:])
        done += [(at, tenant) for at, tenant in json.loads(out.strip().splitlines()[-1])]
    return done


def _figures(done: list[tuple[float, str]]) -> dict[str, Any]:
    total = sum(WEIGHTS.values())
    fair = {t: LIMIT * w / total for t, w in WEIGHTS.items()}  # per second
    seconds = range(1, int(SHARED))
    rates = {t: sum(1 for at, x in done if x == t and 1.0 <= at < SHARED) / 10 for t in WEIGHTS}
    worst = 0.0
    for second in seconds:
        for tenant in WEIGHTS:
            got = sum(1 for at, x in done if x == tenant and second <= at < second + 1)
            worst = max(worst, abs(got - fair[tenant]) / fair[tenant])
    # c alone: when the first second-long window after the others' stop with >= 90 %
    # of the quota begins.
    times = sorted(at for at, x in done if x == "c" and at >= SHARED)
    whole_after = None
    for i, at in enumerate(times):
        inside = sum(1 for later in times[i:] if later < at + 1.0)
        if inside >= 0.9 * LIMIT:
            whole_after = at - SHARED
            break
    return {
        "rates": rates,
        "fair": fair,
        "deviation": max(abs(rates[t] - fair[t]) / fair[t] for t in WEIGHTS),
        "worst_second": worst,
        "whole_quota_after": whole_after,
    }


def measure() -> list[dict[str, Any]]:
    rows = []
    with local_redis() as redis_url:
        for mode, url_of_redis, groups in (
            ("one process", "", [list(WEIGHTS)]),
            ("3 processes, Redis", redis_url, [[t] for t in WEIGHTS]),
        ):
            with Upstream(MockAPIConfig(limit=LIMIT, window=1.0)) as upstream:
                done = _run(upstream.url, url_of_redis, groups)
                stats = upstream.stats()
            rows.append(
                {
                    "mode": mode,
                    **_figures(done),
                    "rejected": stats.rejected,
                    "max_in_window": stats.max_received_in_window,
                    "limit": LIMIT,
                }
            )
    return rows


def report(rows: list[dict[str, Any]]) -> str:
    lines = []
    for r in rows:
        rates = "/".join(f"{r['rates'][t]:.1f}" for t in WEIGHTS)
        after = r["whole_quota_after"]
        lines.append(
            f"{r['mode']:<19}: {rates} a second over 10 s (fair 10/10/20; off by "
            f"{r['deviation']:.1%}, worst second {r['worst_second']:.0%}), "
            f"{r['rejected']} × 429, max {r['max_in_window']}/{r['limit']} in a second; "
            "c alone has the whole quota "
            + ("never" if after is None else f"from {after:.2f} s after the others stop")
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="fair shares between tenants")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args()
    rows = measure()
    print(report(rows))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
