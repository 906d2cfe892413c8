"""Limiter micro-benchmarks (no HTTP): the library's throttle against aiolimiter,
PyrateLimiter and limits, in the same run.

    .venv/bin/python benchmarks/bench_limiters.py [--quick] [--json PATH]

1. Uncontended acquisition: microseconds per acquire (+ release) on a quota that
   never binds; medians of 5 runs of 20,000.
2. Contended: 5,000 tasks waiting at once on 2,000 per second with a burst of
   10 (5 ms: an event loop's timers wake about once a millisecond, so a burst of
   1 at 0.5 ms spacing cannot be kept by anyone; measured: both libraries reach
   about 44 % of the rate then). Ours: ``TokenBucket(Rate(2000, 1), burst=10)``;
   aiolimiter: ``AsyncLimiter(10, 10/2000)``. Achieved rate against configured,
   CPU seconds per 1,000 admissions, and the lateness of each admission against
   its slot on the earliest schedule at exactly 2,000/s that no admission beat
   (counted once every waiter has queued and the first burst has gone), p50 and
   p99.
   Ours also on trio; PyrateLimiter with ``try_acquire_async(blocking=True)`` on
   ``Rate(10, 5 ms)``. limits has no waiting API (its callers sleep themselves).
   With the loop's timers waking about once a millisecond, the CPU of the wakes
   alone sets a floor, measured as ``timer_floor``.
3. Memory per waiting request at 100,000 waiters: traced allocations with the
   waiters parked in the limiter, minus the same number of tasks parked on a
   bare future each (the task itself is not the limiter's cost).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time
import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiolimiter
import anyio
import limits
import limits.storage
import limits.strategies
import pyrate_limiter

from ratelimited_client import Rate, TokenBucket
from ratelimited_client._throttle import Throttle

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

RATE = 2000
BURST = 10


# -- 1. uncontended ----------------------------------------------------------------


async def ours_uncontended(n: int) -> float:
    # A throttle used as a bare limiter (no HTTP answers): no first contact to be
    # careful about, so no slow start (it would hold the general path for a second).
    throttle = Throttle((TokenBucket(Rate(10**9, 1.0)),), slow_start=False)
    started = time.perf_counter()
    for _ in range(n):
        permit = await throttle.acquire("k")
        permit.release()
    return (time.perf_counter() - started) / n * 1e6


async def aiolimiter_uncontended(n: int) -> float:
    limiter = aiolimiter.AsyncLimiter(10**9, 1.0)
    started = time.perf_counter()
    for _ in range(n):
        async with limiter:
            pass
    return (time.perf_counter() - started) / n * 1e6


async def pyrate_uncontended(n: int) -> float:
    rate = pyrate_limiter.Rate(10**9, pyrate_limiter.Duration.SECOND)
    limiter = pyrate_limiter.Limiter(pyrate_limiter.InMemoryBucket([rate]))
    started = time.perf_counter()
    for _ in range(n):
        limiter.try_acquire("k", blocking=False)
    return (time.perf_counter() - started) / n * 1e6


async def limits_uncontended(n: int) -> float:
    limiter = limits.strategies.MovingWindowRateLimiter(limits.storage.MemoryStorage())
    item = limits.RateLimitItemPerSecond(10**9)
    started = time.perf_counter()
    for _ in range(n):
        limiter.hit(item, "k")
    return (time.perf_counter() - started) / n * 1e6


UNCONTENDED: dict[str, Callable[[int], Awaitable[float]]] = {
    "ratelimited_client": ours_uncontended,
    "aiolimiter": aiolimiter_uncontended,
    "PyrateLimiter (in memory)": pyrate_uncontended,
    "limits (moving window, memory)": limits_uncontended,
}


# -- 2. contended -------------------------------------------------------------------


async def contended(acquire: Callable[[], Awaitable[None]], waiters: int) -> dict[str, Any]:
    """Spawn ``waiters`` tasks on one limiter; measure once the last one has queued.

    Starting 5,000 tasks keeps the loop busy for tens of milliseconds, and no
    limiter can admit anyone while it is: that is the spawning's cost, not the
    limiter's, so admissions before the last waiter queued are left out.
    """
    admitted: list[float] = []
    ready: list[float] = []
    started = [0]

    async def one() -> None:
        started[0] += 1
        if started[0] == waiters:  # the last to start (trio starts tasks in any order)
            ready.append(time.perf_counter())
            ready.append(time.process_time())
        await acquire()
        admitted.append(time.perf_counter())

    async with anyio.create_task_group() as tg:
        for _ in range(waiters):
            tg.start_soon(one)
    cpu = time.process_time() - ready[1]
    # Past the last spawn the queue is never empty: after the first burst every admission
    # waits for its unit. Lateness is measured against the earliest schedule at exactly
    # the configured rate that no admission beat: slot i = a + i / RATE, a = min(t_i - i / RATE).
    steady = sorted(t for t in admitted if t >= ready[0])[BURST:]
    anchor = min(t - i / RATE for i, t in enumerate(steady))
    late = sorted((t - (anchor + i / RATE)) * 1000 for i, t in enumerate(steady))
    # The rate after the opening burst: units admitted over the time they took.
    achieved = (len(steady) - 1) / (steady[-1] - steady[0])
    return {
        "measured_admissions": len(steady),
        "achieved_per_s": achieved,
        "rate_error_pct": (achieved / RATE - 1) * 100,
        "cpu_s_per_1000": cpu / len(steady) * 1000,
        "lateness_p50_ms": late[len(late) // 2],
        "lateness_p99_ms": late[int(len(late) * 0.99)],
        "lateness_ms": [round(x, 3) for x in late],
    }


def ours_acquire() -> Callable[[], Awaitable[None]]:
    throttle = Throttle((TokenBucket(Rate(RATE, 1.0), burst=BURST),), slow_start=False)

    async def acquire() -> None:
        (await throttle.acquire("k")).release()

    return acquire


def pyrate_acquire() -> Callable[[], Awaitable[None]]:
    # 10 per 5 ms: the same burst and rate, as PyrateLimiter's sliding window.
    limiter = pyrate_limiter.Limiter(pyrate_limiter.Rate(BURST, BURST * 1000 // RATE))

    async def acquire() -> None:
        await limiter.try_acquire_async("k", blocking=True)

    return acquire


async def timer_floor(wakes: int) -> dict[str, float]:
    """The CPU one timer wake of an otherwise idle loop costs, and what that makes the
    least CPU per 1,000 admissions for a limiter that wakes once per timer tick (1 ms)."""
    cpu = time.process_time()
    for _ in range(wakes):
        await anyio.sleep(0.001)
    per_wake = (time.process_time() - cpu) / wakes
    wakes_per_1000 = 1000 / (RATE * 0.001)  # admissions per 1 ms tick: RATE / 1000
    return {
        "cpu_us_per_wake": per_wake * 1e6,
        "wakes_per_1000": wakes_per_1000,
        "cpu_ms_per_1000": per_wake * wakes_per_1000 * 1000,
    }


def aiolimiter_acquire() -> Callable[[], Awaitable[None]]:
    limiter = aiolimiter.AsyncLimiter(BURST, BURST / RATE)

    async def acquire() -> None:
        await limiter.acquire()

    return acquire


# -- 3. memory per waiter -------------------------------------------------------------


async def parked_bytes(park: Callable[[], Coroutine[Any, Any, None]], count: int) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    async with anyio.create_task_group() as tg:
        for _ in range(count):
            tg.start_soon(park)
        await anyio.wait_all_tasks_blocked()
        during = tracemalloc.get_traced_memory()[0]
        tg.cancel_scope.cancel()
    tracemalloc.stop()
    return (during - before) / count


async def memory_per_waiter(count: int) -> dict[str, float]:
    async def bare() -> None:
        # The cheapest a parked task can be: awaiting a bare future of its own.
        await asyncio.get_running_loop().create_future()

    throttle = Throttle((TokenBucket(Rate(1, 3600.0), burst=1),), slow_start=False)
    (await throttle.acquire("k")).release()  # the quota is spent: everyone waits

    async def ours() -> None:
        await throttle.acquire("k")

    limiter = aiolimiter.AsyncLimiter(1, 3600.0)
    await limiter.acquire()

    async def aio() -> None:
        await limiter.acquire()

    baseline = await parked_bytes(bare, count)
    return {
        "task_baseline_bytes": baseline,
        "ratelimited_client": await parked_bytes(ours, count) - baseline,
        "aiolimiter": await parked_bytes(aio, count) - baseline,
    }


# -- the run ---------------------------------------------------------------------------------


def run(quick: bool) -> dict[str, Any]:
    n = 2_000 if quick else 20_000
    repeat = 1 if quick else 5
    waiters = 500 if quick else 5_000
    parked = 2_000 if quick else 100_000
    results: dict[str, Any] = {"uncontended_us": {}, "contended": {}, "memory_bytes": {}}
    runs: dict[str, list[float]] = {name: [] for name in UNCONTENDED}
    for _ in range(repeat):
        for name, bench in UNCONTENDED.items():
            runs[name].append(anyio.run(bench, n))
    results["uncontended_us"] = {name: statistics.median(v) for name, v in runs.items()}
    results["contended"]["ratelimited_client (asyncio)"] = anyio.run(
        contended, ours_acquire(), waiters
    )
    results["contended"]["ratelimited_client (trio)"] = anyio.run(
        contended, ours_acquire(), waiters, backend="trio"
    )
    results["contended"]["aiolimiter"] = anyio.run(contended, aiolimiter_acquire(), waiters)
    results["contended"]["PyrateLimiter"] = anyio.run(contended, pyrate_acquire(), waiters)
    results["timer_floor"] = anyio.run(timer_floor, 200 if quick else 2000)
    results["memory_bytes"] = anyio.run(memory_per_waiter, parked)
    results.update(rate=RATE, burst=BURST, waiters=waiters, parked=parked)
    return results


def report(results: dict[str, Any]) -> str:
    lines = ["uncontended acquisition (µs, median):"]
    lines += [f"  {name:34} {us:8.2f}" for name, us in results["uncontended_us"].items()]
    lines.append(f"contended: waiters at {RATE}/s, burst {BURST}")
    lines.append(f"  {'':34} {'rate err %':>10} {'CPU s/1000':>11} {'p50 ms':>8} {'p99 ms':>8}")
    for name, r in results["contended"].items():
        lines.append(
            f"  {name:34} {r['rate_error_pct']:10.3f} {r['cpu_s_per_1000']:11.4f} "
            f"{r['lateness_p50_ms']:8.3f} {r['lateness_p99_ms']:8.3f}"
        )
    memory = results["memory_bytes"]
    lines.append(
        f"memory per waiter beyond the task itself ({memory['task_baseline_bytes']:.0f} B): "
        f"ours {memory['ratelimited_client']:.0f} B, aiolimiter {memory['aiolimiter']:.0f} B"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args()
    results = run(args.quick)
    print(report(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
