"""Admissions per second per process through a local Redis, and round trips per
admission, for RedisBackend and the Redis backends of PyrateLimiter and limits,
measured in the same run against the same redis-server.

    .venv/bin/python benchmarks/bench_redis.py [--admissions 5000] [--repeat 3]

Every peer decides with its documented Redis backend on a quota that never binds
(so each call is one uncontended admission), sync API, one thread. Round trips
are counted where they happen: redis-py's ``send_packed_command`` (a pipeline
or a script call is one), for all three libraries alike. Medians over
``--repeat`` runs, the peers interleaved. A ``redis-server`` is started on a
free 127.0.0.1 port for the run and stopped after (``_local_redis.py``).
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from typing import TYPE_CHECKING, Any

import limits
import limits.storage
import limits.strategies
import pyrate_limiter
import redis
import redis.connection
from _local_redis import local_redis

from ratelimited_client import Rate, RedisBackend, SlidingWindow

if TYPE_CHECKING:
    from collections.abc import Callable

TRIPS = [0]
_send: Any = redis.connection.Connection.send_packed_command


def _counting_send(self: Any, command: Any, check_health: Any = True) -> Any:
    TRIPS[0] += 1
    return _send(self, command, check_health)


setattr(redis.connection.Connection, "send_packed_command", _counting_send)  # noqa: B010


def ours(url: str) -> Callable[[], None]:
    backend = RedisBackend(url, prefix=f"bench-{uuid.uuid4().hex}")
    specs = (SlidingWindow(Rate(10_000_000, 60.0)),)

    def admit() -> None:
        if backend.acquire_sync("api", specs, 1).admission is None:
            raise RuntimeError("refused")

    return admit


def pyrate(url: str) -> Callable[[], None]:
    client = redis.Redis.from_url(url)
    rate = pyrate_limiter.Rate(10_000_000, pyrate_limiter.Duration.MINUTE)
    bucket = pyrate_limiter.RedisBucket.init([rate], client, f"bench-{uuid.uuid4().hex}")
    limiter = pyrate_limiter.Limiter(bucket)

    def admit() -> None:
        if not limiter.try_acquire("api", blocking=False):
            raise RuntimeError("refused")

    return admit


def limits_moving_window(url: str) -> Callable[[], None]:
    storage = limits.storage.RedisStorage(url)
    limiter = limits.strategies.MovingWindowRateLimiter(storage)
    item = limits.RateLimitItemPerMinute(10_000_000)
    key = f"bench-{uuid.uuid4().hex}"

    def admit() -> None:
        if not limiter.hit(item, key):
            raise RuntimeError("refused")

    return admit


PEERS: dict[str, Callable[[str], Callable[[], None]]] = {
    "ratelimited_client RedisBackend": ours,
    "PyrateLimiter RedisBucket": pyrate,
    "limits MovingWindow (Redis)": limits_moving_window,
}


def measure(admit: Callable[[], None], count: int) -> tuple[float, float]:
    admit()  # warm: connection, script load
    TRIPS[0] = 0
    started = time.perf_counter()
    for _ in range(count):
        admit()
    elapsed = time.perf_counter() - started
    return count / elapsed, TRIPS[0] / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--admissions", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with local_redis() as url:
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in PEERS}
        for _ in range(args.repeat):
            for name, build in PEERS.items():
                results[name].append(measure(build(url), args.admissions))
    best_peer = max(
        statistics.median(r[0] for r in runs)
        for name, runs in results.items()
        if not name.startswith("ratelimited_client")
    )
    print(f"{args.admissions} uncontended admissions, sync, one thread; medians of {args.repeat}")
    print(f"{'peer':36} {'admissions/s':>13} {'round trips':>12} {'vs best peer':>13}")
    for name, runs in results.items():
        rate = statistics.median(r[0] for r in runs)
        trips = statistics.median(r[1] for r in runs)
        print(f"{name:36} {rate:13.0f} {trips:12.2f} {rate / best_peer:12.2f}x")


if __name__ == "__main__":
    main()
