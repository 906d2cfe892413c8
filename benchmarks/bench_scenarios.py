"""The same work through every peer, against the bundled mock API over real sockets.

    .venv/bin/python benchmarks/bench_scenarios.py [--quick] [--json PATH] [--only NAME]

The upstream runs in a process of its own (``_upstream.py``) and counts a
request when it arrives, with a strict sliding window of ``limit`` per
``window`` seconds. Each peer is set up the way its documentation says a
careful user honours ``Retry-After``:

* ``naive httpx``: a plain ``httpx.AsyncClient`` that retries a 429 at once
  (what a quickly written client does), up to 10 attempts;
* ``httpx-retries``: ``RetryTransport(Retry(total=9, backoff_factor=0.5,
  status_forcelist=[429, 503], respect_retry_after_header=True))``;
* ``stamina``: ``@stamina.retry(on=hook, attempts=10)``, the hook returning the
  ``Retry-After`` seconds as the backoff for a 429 (stamina's documented way);
* ``aiolimiter``, ``PyrateLimiter``, ``limits``: told the limit, each request
  acquired first (``async with AsyncLimiter(L, W)``; ``try_acquire_async(...,
  blocking=True)``; a moving-window ``hit`` and a sleep until its reset), and a
  429 slept off for its ``Retry-After`` before trying again, up to 10 attempts;
* ``ratelimited_client``: ``RateLimitedClient(rate=f"{L}/{W}s")`` when told the
  limit, no rate when not; ``latency_proof=True`` in the jitter scenario.

Scenarios (``N`` requests from ``C`` workers; the least time a strict window
allows for ``N`` requests is ``(ceil(N / L) - 1) * W``: the last full window
cannot start before that):

* ``known``: the peers that can be told the limit, and the naive one;
* ``unknown/<dialect>``: the client is not told the limit; the upstream speaks
  one header dialect and bans after 5 rejections in a window for 5 s;
* ``penalty``: every peer, the limiters told the limit, the same ban;
* ``jitter``: 0-50 ms random latency on every answer, limiters told the limit.

Reported per run: final outcomes, 429s received, upstream requests per logical
request, the upstream's most requests in any window, bans tripped, elapsed time
and its ratio to the least.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections import Counter
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiolimiter
import anyio
import httpx
import httpx_retries
import limits
import limits.aio.storage
import limits.aio.strategies
import pyrate_limiter
import stamina
from _upstream import Upstream

from ratelimited_client import RateLimitedClient
from ratelimited_client.testing import MockAPIConfig

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    Send = Callable[[str], Awaitable[int]]
    Peer = Callable[[str, "Scenario"], Any]

ATTEMPTS = 10
RUN_TIMEOUT = 180.0
HTTP_TIMEOUT = httpx.Timeout(30.0)


@dataclass(frozen=True)
class Scenario:
    name: str
    requests: int
    concurrency: int
    limit: int
    window: float = 1.0
    dialect: str = "retry-after"
    told: bool = True  # whether the limiters are told the limit
    penalty_after: int | None = None
    penalty_for: float = 5.0
    latency: tuple[float, float] = (0.0, 0.0)
    peers: tuple[str, ...] = ()

    def config(self) -> MockAPIConfig:
        return MockAPIConfig(
            limit=self.limit,
            window=self.window,
            algorithm="sliding",
            dialect=self.dialect,  # type: ignore[arg-type]
            penalty_after=self.penalty_after,
            penalty_for=self.penalty_for,
            latency=self.latency,
            seed=7,
        )

    @property
    def least(self) -> float:
        return (math.ceil(self.requests / self.limit) - 1) * self.window


@dataclass
class Run:
    scenario: str
    peer: str
    requests: int
    outcomes: dict[str, int]
    received_429: int
    upstream_requests: int
    upstream_per_logical: float
    max_in_window: int
    limit: int
    bans: int
    elapsed: float
    least: float
    ratio: float
    timed_out: bool
    arrivals: list[tuple[float, int]] = field(default_factory=list)


def retry_after(response: httpx.Response) -> float:
    """The ``Retry-After`` delta in seconds, 1 s when missing or unreadable."""
    try:
        return max(0.0, float(response.headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


# -- the peers ------------------------------------------------------------------------


@asynccontextmanager
async def naive(url: str, scenario: Scenario) -> AsyncIterator[Send]:
    async with httpx.AsyncClient(base_url=url, timeout=HTTP_TIMEOUT) as client:

        async def send(path: str) -> int:
            for _ in range(ATTEMPTS):
                response = await client.get(path)
                if response.status_code != 429:
                    break
            return response.status_code

        yield send


@asynccontextmanager
async def with_httpx_retries(url: str, scenario: Scenario) -> AsyncIterator[Send]:
    retry = httpx_retries.Retry(
        total=ATTEMPTS - 1,
        backoff_factor=0.5,
        status_forcelist=[429, 503],
        respect_retry_after_header=True,
    )
    transport = httpx_retries.RetryTransport(retry=retry)
    async with httpx.AsyncClient(base_url=url, transport=transport, timeout=HTTP_TIMEOUT) as client:

        async def send(path: str) -> int:
            return (await client.get(path)).status_code

        yield send


@asynccontextmanager
async def with_stamina(url: str, scenario: Scenario) -> AsyncIterator[Send]:
    def backoff(error: Exception) -> bool | float:
        if isinstance(error, httpx.HTTPStatusError):
            status = error.response.status_code
            return retry_after(error.response) if status in (429, 503) else False
        return isinstance(error, httpx.TransportError)

    async with httpx.AsyncClient(base_url=url, timeout=HTTP_TIMEOUT) as client:

        @stamina.retry(on=backoff, attempts=ATTEMPTS, timeout=None)
        async def get(path: str) -> int:
            response = await client.get(path)
            response.raise_for_status()
            return response.status_code

        async def send(path: str) -> int:
            try:
                return await get(path)
            except httpx.HTTPStatusError as error:
                return error.response.status_code

        yield send


def gated(
    client: httpx.AsyncClient, acquire: Callable[[], Awaitable[None]]
) -> Callable[[str], Awaitable[int]]:
    """Acquire before every attempt; sleep a 429 off for its Retry-After."""

    async def send(path: str) -> int:
        for _ in range(ATTEMPTS):
            await acquire()
            response = await client.get(path)
            if response.status_code != 429:
                break
            await anyio.sleep(retry_after(response))
        return response.status_code

    return send


@asynccontextmanager
async def with_aiolimiter(url: str, scenario: Scenario) -> AsyncIterator[Send]:
    limiter = aiolimiter.AsyncLimiter(scenario.limit, scenario.window)
    async with httpx.AsyncClient(base_url=url, timeout=HTTP_TIMEOUT) as client:
        yield gated(client, limiter.acquire)


@asynccontextmanager
async def with_pyrate(url: str, scenario: Scenario) -> AsyncIterator[Send]:
    rate = pyrate_limiter.Rate(scenario.limit, int(scenario.window * 1000))
    limiter = pyrate_limiter.Limiter(rate)

    async def acquire() -> None:
        await limiter.try_acquire_async("upstream", blocking=True)

    async with httpx.AsyncClient(base_url=url, timeout=HTTP_TIMEOUT) as client:
        yield gated(client, acquire)


@asynccontextmanager
async def with_limits(url: str, scenario: Scenario) -> AsyncIterator[Send]:
    limiter = limits.aio.strategies.MovingWindowRateLimiter(limits.aio.storage.MemoryStorage())
    item = limits.RateLimitItemPerSecond(scenario.limit, int(scenario.window))

    async def acquire() -> None:
        while not await limiter.hit(item, "upstream"):
            stats = await limiter.get_window_stats(item, "upstream")
            await anyio.sleep(max(0.001, stats.reset_time - time.time()))

    async with httpx.AsyncClient(base_url=url, timeout=HTTP_TIMEOUT) as client:
        yield gated(client, acquire)


@asynccontextmanager
async def ours(url: str, scenario: Scenario) -> AsyncIterator[Send]:
    rate = f"{scenario.limit}/{scenario.window:g}s" if scenario.told else None
    async with RateLimitedClient(
        base_url=url,
        rate=rate,
        latency_proof=scenario.latency != (0.0, 0.0),
        timeout=HTTP_TIMEOUT,
    ) as client:

        async def send(path: str) -> int:
            return (await client.get(path)).status_code

        yield send


PEERS: dict[str, Peer] = {
    "ratelimited_client": ours,
    "aiolimiter": with_aiolimiter,
    "PyrateLimiter": with_pyrate,
    "limits": with_limits,
    "httpx-retries": with_httpx_retries,
    "stamina": with_stamina,
    "naive httpx": naive,
}
TOLD = ("ratelimited_client", "aiolimiter", "PyrateLimiter", "limits")
NOT_TOLD = ("ratelimited_client", "httpx-retries", "stamina", "naive httpx")


def scenarios(quick: bool) -> list[Scenario]:
    # The smoke run: two windows' worth, bans of 1 s.
    n, c, limit = (12, 12, 10) if quick else (400, 200, 20)
    ban = 1.0 if quick else 5.0
    dialects = ["ietf"] if quick else ["retry-after", "ietf", "x-ratelimit", "github"]
    found = [Scenario("known", n, c, limit, peers=(*TOLD, "naive httpx"))]
    for dialect in dialects:
        found.append(
            Scenario(
                f"unknown/{dialect}",
                n,
                c,
                limit,
                dialect=dialect,
                told=False,
                penalty_after=5,
                penalty_for=ban,
                peers=NOT_TOLD,
            )
        )
    found.append(
        Scenario("penalty", n, c, limit, penalty_after=5, penalty_for=ban, peers=tuple(PEERS))
    )
    if not quick:  # (the smoke run keeps to three scenarios)
        # Told the rate, against a server whose reset is a whole-second epoch (GitHub's):
        # its counts agree with the limiter, so its coarse reset must cost nothing.
        found.append(Scenario("known/github", 200, 100, limit, dialect="github", peers=TOLD))
        jitter = Scenario("jitter", n, c, limit, latency=(0.0, 0.05), peers=(*TOLD, "naive httpx"))
        found.append(jitter)
    return found


# -- one run ------------------------------------------------------------------------------


async def drive(
    peer: Peer, url: str, scenario: Scenario, requests: int, concurrency: int
) -> tuple[Counter[str], float, float, bool]:
    """``requests`` GETs through ``peer`` from ``concurrency`` workers, bounded by
    ``RUN_TIMEOUT``: outcomes, start, elapsed to the last finish, and timed out."""
    todo = iter(range(requests))
    outcomes: Counter[str] = Counter()
    finished: list[float] = []

    async def worker(send: Send) -> None:
        for i in todo:
            try:
                outcomes[str(await send(f"/items/{i}"))] += 1
            except Exception as error:  # noqa: BLE001 - a peer's failure is a result
                outcomes[type(error).__name__] += 1
            finished.append(time.monotonic())

    started = time.monotonic()
    with anyio.move_on_after(RUN_TIMEOUT) as scope:
        async with peer(url, scenario) as send, anyio.create_task_group() as tg:
            for _ in range(concurrency):
                tg.start_soon(worker, send)
    elapsed = (max(finished) if finished else time.monotonic()) - started
    return outcomes, started, elapsed, scope.cancelled_caught


async def run_one(scenario: Scenario, peer: str, upstream: Upstream) -> Run:
    """One peer through one scenario, on a freshly reset upstream."""
    upstream.reset()
    outcomes, started, elapsed, timed_out = await drive(
        PEERS[peer], upstream.url, scenario, scenario.requests, scenario.concurrency
    )
    stats = upstream.stats()
    arrivals = [(t - started, status) for t, status in upstream.arrivals()]
    least = scenario.least
    return Run(
        scenario=scenario.name,
        peer=peer,
        requests=scenario.requests,
        outcomes=dict(outcomes),
        received_429=sum(1 for _, status in arrivals if status == 429),
        upstream_requests=stats.received,
        upstream_per_logical=stats.received / scenario.requests,
        max_in_window=stats.max_received_in_window,
        limit=scenario.limit,
        bans=stats.penalties,
        elapsed=elapsed,
        least=least,
        ratio=elapsed / least if least else math.nan,
        timed_out=timed_out,
        arrivals=arrivals,
    )


async def run_all(quick: bool, only: str | None, peer_only: str | None = None) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for scenario in scenarios(quick):
        if only is not None and not scenario.name.startswith(only):
            continue
        with Upstream(scenario.config()) as upstream:
            for peer in scenario.peers:
                if peer_only is not None and peer != peer_only:
                    continue
                run = await run_one(scenario, peer, upstream)
                print(summary(run), flush=True)
                record = asdict(run)
                if scenario.name != "penalty":
                    record["arrivals"] = []  # kept only where a plot uses them
                runs.append(record)
    return {"quick": quick, "runs": runs}


def summary(run: Run) -> str:
    ok = run.outcomes.get("200", 0)
    return (
        f"{run.scenario:<22} {run.peer:<20} ok {ok:>4}/{run.requests:<4} "
        f"429s {run.received_429:>5} sent/req {run.upstream_per_logical:5.2f} "
        f"max-in-window {run.max_in_window:>4}/{run.limit:<3} bans {run.bans:>2} "
        f"{run.elapsed:6.2f}s ratio {run.ratio:6.3f}" + (" TIMED OUT" if run.timed_out else "")
    )


def main() -> None:
    # Every peer logs its retries (stamina at WARNING); the figures are the report here.
    logging.getLogger("stamina").setLevel(logging.ERROR)
    logging.getLogger("ratelimited_client").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    parser.add_argument("--only", help="run only the scenarios whose name starts with this")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args()
    results = anyio.run(run_all, args.quick, args.only)
    if args.json is not None:
        args.json.write_text(json.dumps(results) + "\n")


if __name__ == "__main__":
    main()
