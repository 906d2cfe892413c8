"""The peers against rate limiters nobody on this project wrote: nginx and slowapi.

    .venv/bin/python benchmarks/bench_real_limiters.py [--quick] [--json PATH] [--only NAME]

Each limiter runs as its users deploy it, on 127.0.0.1, restarted for every
run (fresh state), in a process of its own (``_upstream.py`` for slowapi; nginx
is one anyway); what it admitted and rejected is read from its own records
(``ratelimited_client.testing.NginxLimiter`` / ``SlowapiLimiter``):

* ``slowapi moving 20/s``: FastAPI + slowapi, moving window ``20/second``,
  ``headers_enabled=True`` (``X-RateLimit-*`` with a reset one second late,
  ``Retry-After`` on every answer), served by uvicorn (cached ``Date``);
* ``slowapi fixed 100/10s``: the same with a fixed window of 100 per 10 s;
* ``nginx 20r/s``: ``limit_req rate=20r/s``, no burst (one request per 50 ms,
  anything sooner rejected), a bare 429;
* ``nginx 20r/s burst 20``: ``burst=20 nodelay``.

``N`` requests from ``C`` workers (300 from 100; ``--quick``: 40 from 20, nginx
only, three peers). The
least time: ``(ceil(N / L) - 1) * W`` for a window; ``(N - 1 - burst) / rate``
for nginx. Runs: ``ratelimited_client`` told the rate (for nginx without burst,
its evenly spaced form ``TokenBucket(Rate(20, 1), burst=1)``), not told, and told
the burst rate ``20/s`` against nginx without burst (a wrong configuration it
must correct); the peers of ``bench_scenarios.py`` told the rate (the spaced
form ``1 per 50 ms`` for nginx without burst) or, for the retry-only peers,
not.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import report
from _upstream import Upstream
from bench_scenarios import HTTP_TIMEOUT, PEERS, Scenario, drive

from ratelimited_client import Rate, RateLimitedClient
from ratelimited_client.testing import LimiterRecord, NginxLimiter, SlowapiLimiter

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from bench_scenarios import Send

    from ratelimited_client import RateTypes
    from ratelimited_client.testing._real_limiters import Strategy


@dataclass(frozen=True)
class RealLimiter:
    name: str
    kind: str  # "nginx" | "slowapi"
    limit: int  # per window (nginx: per second)
    window: float = 1.0
    burst: int = 0  # nginx only
    strategy: Strategy = "moving-window"  # slowapi only

    def least(self, requests: int) -> float:
        if self.kind == "nginx":
            return max(0, requests - 1 - self.burst) / self.limit
        return (math.ceil(requests / self.limit) - 1) * self.window

    @property
    def spaced(self) -> bool:
        """Takes no burst at all: one request per ``1 / limit`` s."""
        return self.kind == "nginx" and self.burst == 0

    def told(self) -> RateTypes:
        """The rate a user who read the limiter's configuration gives the client."""
        from ratelimited_client import TokenBucket

        if self.spaced:
            return TokenBucket(Rate(self.limit, 1.0), burst=1)
        return Rate(self.limit, self.window)

    @contextmanager
    def serve(self) -> Iterator[tuple[str, Any]]:
        """Start it fresh; yields its URL and a function returning its record."""
        if self.kind == "nginx":
            with NginxLimiter(self.limit, burst=self.burst) as nginx:
                yield nginx.url, nginx.record
            return
        spec = (
            f"{self.limit}/{self.window:g} seconds" if self.window != 1 else f"{self.limit}/second"
        )
        make = functools.partial(SlowapiLimiter, spec, strategy=self.strategy)
        with Upstream(make) as upstream:
            yield upstream.url, functools.partial(upstream.ask, "record")


LIMITERS = (
    RealLimiter("slowapi moving 20/s", "slowapi", 20),
    RealLimiter("slowapi fixed 100/10s", "slowapi", 100, window=10.0, strategy="fixed-window"),
    RealLimiter("nginx 20r/s", "nginx", 20),
    RealLimiter("nginx 20r/s burst 20", "nginx", 20, burst=20),
)


QUICK_PEERS = ("ratelimited_client (told)", "ratelimited_client (not told)", "aiolimiter")


@dataclass
class Run:
    limiter: str
    peer: str
    requests: int
    outcomes: dict[str, int]
    received_429: int
    upstream_requests: int
    max_admitted_in_window: int
    limit: int
    elapsed: float
    least: float
    ratio: float
    timed_out: bool
    learned: str | None = None


def ours(rate: RateTypes | None, statistics: list[Any]) -> Any:
    @asynccontextmanager
    async def peer(url: str, scenario: Scenario) -> AsyncIterator[Send]:
        async with RateLimitedClient(base_url=url, rate=rate, timeout=HTTP_TIMEOUT) as client:

            async def send(path: str) -> int:
                return (await client.get(path)).status_code

            yield send
            statistics.append(client.statistics())

    return peer


def plan(limiter: RealLimiter) -> list[tuple[str, Any, Scenario]]:
    """(peer name, peer, the scenario it is told) for one limiter."""
    window = 1.0 / limiter.limit if limiter.spaced else limiter.window
    limit = 1 if limiter.spaced else limiter.limit
    told = Scenario(limiter.name, 0, 0, limit, window=window)
    blind = Scenario(limiter.name, 0, 0, limit, window=window, told=False)
    runs: list[tuple[str, Any, Scenario]] = [
        ("ratelimited_client (told)", limiter.told(), told),
        ("ratelimited_client (not told)", None, blind),
    ]
    if limiter.spaced:
        runs.append(("ratelimited_client (told 20/s)", Rate(limiter.limit, 1.0), told))
    runs += [(name, PEERS[name], told) for name in ("aiolimiter", "PyrateLimiter", "limits")]
    runs += [(name, PEERS[name], blind) for name in ("httpx-retries", "stamina")]
    return runs


async def run_one(
    limiter: RealLimiter, name: str, peer: Any, scenario: Scenario, requests: int, concurrency: int
) -> Run:
    statistics: list[Any] = []
    if name.startswith("ratelimited_client"):
        peer = ours(peer, statistics)
    with limiter.serve() as (url, record_of):
        outcomes, _, elapsed, timed_out = await drive(peer, url, scenario, requests, concurrency)
        record: LimiterRecord = record_of()
    least = limiter.least(requests)
    window = 1.0 if limiter.kind == "nginx" else limiter.window
    learned = None
    if statistics:
        buckets = statistics[0].buckets
        learned = ", ".join(str(b.learned_rate) for b in buckets.values() if b.learned_rate)
    return Run(
        limiter=limiter.name,
        peer=name,
        requests=requests,
        outcomes=dict(outcomes),
        received_429=record.rejected,
        upstream_requests=record.received,
        max_admitted_in_window=record.max_admitted_in(window),
        limit=limiter.limit + limiter.burst,
        elapsed=elapsed,
        least=least,
        ratio=elapsed / least if least else math.nan,
        timed_out=timed_out,
        learned=learned or None,
    )


def summary(run: Run) -> str:
    ok = run.outcomes.get("200", 0)
    learned = f" learned {run.learned}" if run.learned else ""
    return (
        f"{run.limiter:<22} {run.peer:<31} ok {ok:>4}/{run.requests:<4} "
        f"429s {run.received_429:>4} max-in-window {run.max_admitted_in_window:>3}/{run.limit:<3} "
        f"{run.elapsed:6.2f}s ratio {run.ratio:5.2f}"
        + (" TIMED OUT" if run.timed_out else "")
        + learned
    )


async def run_all(quick: bool, only: str | None, peer_only: str | None = None) -> dict[str, Any]:
    requests, concurrency = (40, 20) if quick else (300, 100)
    runs: list[dict[str, Any]] = []
    for limiter in LIMITERS:
        if only is not None and not limiter.name.startswith(only):
            continue
        if quick and limiter.kind != "nginx":
            continue  # the smoke run: nginx only (no interpreter to start), three peers
        for name, peer, scenario in plan(limiter):
            if peer_only is not None and not name.startswith(peer_only):
                continue
            if quick and name not in QUICK_PEERS:
                continue
            run = await run_one(limiter, name, peer, scenario, requests, concurrency)
            print(summary(run), flush=True)
            runs.append(asdict(run))
    return {"quick": quick, "runs": runs}


def main() -> None:
    logging.getLogger("stamina").setLevel(logging.ERROR)
    logging.getLogger("ratelimited_client").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    parser.add_argument("--only", help="run only the limiters whose name starts with this")
    parser.add_argument("--peer", help="run only the peers whose name starts with this")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--markdown", type=Path, help="write the results here as a table")
    args = parser.parse_args()
    results = anyio.run(run_all, args.quick, args.only, args.peer)
    if args.json is not None:
        args.json.write_text(json.dumps(results) + "\n")
    if args.markdown is not None:
        args.markdown.write_text(report.real_limiter_table(results))


if __name__ == "__main__":
    main()
