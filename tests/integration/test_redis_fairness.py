"""Priorities and fair shares across processes, decided in a real redis-server.

The heads of every process's queue on a bucket keep places in one line in Redis
(``acquire.lua``): ordered by promotion, priority and start-time fair queuing tags,
a head is admitted only after the places ahead of it. The first tests drive the
script directly on Redis's side with given instants (microseconds), as several
processes would, late by a few milliseconds as real ones are: the numbers are
exact. The last runs three real processes through the bundled mock API.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import json
import random
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from typing import TYPE_CHECKING

import httpx
import pytest
import redis
from test_redis_live import RedisServer, redis_server

from ratelimited_client import (
    Rate,
    RateLimitedClient,
    RedisBackend,
    SlidingWindow,
    SyncRateLimitedClient,
    TokenBucket,
)
from ratelimited_client._backends import Place

if TYPE_CHECKING:
    from ratelimited_client._rate import LimitSpec
    from ratelimited_client.testing.pytest_plugin import MockAPIServerFactory

pytestmark = pytest.mark.slow

__all__ = ["redis_server"]  # the fixture, used here

T0 = 1_000_000_000_000  # microseconds: the simulated runs' first instant
QUOTA: tuple[LimitSpec, ...] = (SlidingWindow(Rate(40, 1.0)),)


def simulate(
    url: str,
    tenants: dict[str, float],
    *,
    until: dict[str, float],
    caps: dict[str, tuple[LimitSpec, ...]] | None = None,
    seed: int = 1,
) -> list[tuple[float, str]]:
    """Each tenant is a process of its own (one ``RedisBackend`` each) with more work
    than it can get, whose head asks the real script: admitted, its next request asks
    0–2 ms later; told to wait, it comes back then, 0–5 ms late; an answer re-dates
    its slot 5–40 ms after the admission. A tenant stops asking at ``until`` (s).
    Returns the admissions: (seconds from the start, tenant)."""
    rng = random.Random(seed)
    prefix = f"fair-{uuid.uuid4().hex}"
    backends = {tenant: RedisBackend(url, prefix=prefix) for tenant in tenants}
    owners = {tenant: backend.new_owner() for tenant, backend in backends.items()}
    # (when, kind: 0 ask / 1 settle, order, tenant, since (ask) or the admission (settle))
    events: list[tuple[int, int, int, str, object]] = [
        (T0 + i * 1000, 0, i, tenant, T0 + i * 1000) for i, tenant in enumerate(tenants)
    ]
    order = itertools.count(len(events))  # ties go in the order they were made
    admitted: list[tuple[float, str]] = []
    while events:
        at, kind, _, tenant, what = heapq.heappop(events)
        backend = backends[tenant]
        if kind == 1:
            backend.settle_sync(what, now_us=at)  # type: ignore[arg-type]
            continue
        if at > T0 + until[tenant] * 1_000_000:
            continue
        assert isinstance(what, int)
        place = Place(
            owners[tenant],
            tenant,
            tenants[tenant],
            0,
            (at - what) / 1_000_000,
            30.0,
            0.0,
            (caps or {}).get(tenant, ()),
            more=True,
        )
        decision = backend.acquire_sync("shared", QUOTA, 1, place=place, now_us=at)
        if decision.admission is not None:
            admitted.append(((at - T0) / 1_000_000, tenant))
            heapq.heappush(
                events, (at + rng.randint(5000, 40000), 1, next(order), tenant, decision.admission)
            )
            following = at + rng.randint(0, 2000)
            heapq.heappush(events, (following, 0, next(order), tenant, following))
        else:
            late = rng.randint(0, 5000)
            again = at + round(decision.wait * 1_000_000) + late
            heapq.heappush(events, (again, 0, next(order), tenant, what))
    for backend in backends.values():
        backend.close_sync()
    return admitted


def per_second(admitted: list[tuple[float, str]], second: int) -> collections.Counter[str]:
    return collections.Counter(t for at, t in admitted if second <= at < second + 1)


def most_in_a_window(admitted: list[tuple[float, str]]) -> int:
    times = sorted(at for at, _ in admitted)
    most, first = 0, 0
    for last, at in enumerate(times):
        while times[first] <= at - 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def test_three_processes_get_shares_by_their_tenants_weights(redis_server: RedisServer) -> None:
    """Weights 1:1:2, each tenant in a process of its own, a shared 40 a second: 10, 10
    and 20 a second once the first window is spent (within one in each second; over
    the first five, first window included, within 10 %); when a and b stop, c gets the
    whole quota from the next window."""
    admitted = simulate(
        redis_server.url, {"a": 1, "b": 1, "c": 2}, until={"a": 5.0, "b": 5.0, "c": 7.0}
    )
    assert most_in_a_window(admitted) <= 40
    for second in (1, 2, 3, 4):
        counts = per_second(admitted, second)
        assert 9 <= counts["a"] <= 11, (second, counts)
        assert 9 <= counts["b"] <= 11, (second, counts)
        assert 19 <= counts["c"] <= 21, (second, counts)
    first_five = collections.Counter(t for at, t in admitted if at < 5.0)
    assert 45 <= first_five["a"] <= 55, first_five
    assert 45 <= first_five["b"] <= 55, first_five
    assert 90 <= first_five["c"] <= 110, first_five
    assert per_second(admitted, 5)["c"] >= 36  # a's and b's places go half a second on
    assert per_second(admitted, 6) == {"c": 40}


def test_equal_weights_give_a_third_each(redis_server: RedisServer) -> None:
    """The control: the same run with the weights 1:1:1 gives a third each, so the
    1:1:2 above comes from the weights, not from the processes' timing."""
    admitted = simulate(redis_server.url, {"a": 1, "b": 1, "c": 1}, until=dict.fromkeys("abc", 4.0))
    for second in (1, 2, 3):
        counts = per_second(admitted, second)
        assert all(12 <= counts[t] <= 15 for t in "abc"), counts


def test_a_tenant_at_its_own_cap_holds_nobody_back(redis_server: RedisServer) -> None:
    """a capped at 5 a second inside the shared 40, b without a cap: 5 and 35, the
    cap shared by every process of a (decided in Redis, not per process)."""
    caps: dict[str, tuple[LimitSpec, ...]] = {"a": (SlidingWindow(Rate(5, 1.0)),)}
    admitted = simulate(redis_server.url, {"a": 1, "b": 1}, until={"a": 4.0, "b": 4.0}, caps=caps)
    for second in (1, 2, 3):
        assert per_second(admitted, second) == {"a": 5, "b": 35}


def _saturated_and_another(url: str, prefix: str) -> tuple[RedisBackend, RedisBackend]:
    """Two processes' backends on one bucket, its window already full (``_saturated``)."""
    return _saturated(url, prefix), RedisBackend(url, prefix=prefix)


def _saturated(url: str, prefix: str) -> RedisBackend:
    """A backend whose bucket's window of 40 is full: the first slot frees at T0 + 1 s
    (one at every 10 ms from then on)."""
    backend = RedisBackend(url, prefix=prefix)
    for i in range(40):
        assert backend.acquire_sync("shared", QUOTA, 1, now_us=T0 + i * 10_000).admission
    return backend


def _place(owner: str, priority: int = 0, waited: float = 0.0, held: float = 0.0) -> Place:
    return Place(owner, "", 1.0, priority, waited, 30.0, held)


def test_a_higher_priority_head_in_another_process_goes_first(redis_server: RedisServer) -> None:
    prefix = f"prio-{uuid.uuid4().hex}"
    batch, urgent = _saturated_and_another(redis_server.url, prefix)
    early = T0 + 500_000
    # The batch's head waits first: the first slot is its.
    told = batch.acquire_sync("shared", QUOTA, 1, place=_place("batch"), now_us=early)
    assert told.admission is None
    assert told.wait == pytest.approx(0.5)
    # An urgent head of another process arrives later and is told the same slot ...
    told = urgent.acquire_sync("shared", QUOTA, 1, place=_place("urgent", 10), now_us=early + 1)
    assert told.wait == pytest.approx(0.5, abs=1e-5)
    # ... which the batch's head, back first, leaves to it: it is told the next one.
    slot = T0 + 1_000_000
    told = batch.acquire_sync("shared", QUOTA, 1, place=_place("batch", 0, 0.5), now_us=slot)
    assert told.admission is None
    assert told.wait == pytest.approx(0.01)
    assert urgent.acquire_sync(
        "shared", QUOTA, 1, place=_place("urgent", 10), now_us=slot + 100
    ).admission
    assert batch.acquire_sync(
        "shared", QUOTA, 1, place=_place("batch", 0, 0.51), now_us=slot + 10_000
    ).admission
    batch.close_sync()
    urgent.close_sync()


def test_a_head_waiting_past_the_promotion_age_goes_before_any_priority(
    redis_server: RedisServer,
) -> None:
    prefix = f"promote-{uuid.uuid4().hex}"
    batch, urgent = _saturated_and_another(redis_server.url, prefix)
    slot = T0 + 1_000_000
    # The batch's request has waited 31 s in its process (the promotion age is 30 s).
    assert batch.acquire_sync(
        "shared", QUOTA, 1, place=_place("batch", 0, 31.0), now_us=slot - 1000
    ).wait == pytest.approx(0.001)
    told = urgent.acquire_sync("shared", QUOTA, 1, place=_place("urgent", 10), now_us=slot)
    assert told.admission is None
    assert told.wait == pytest.approx(0.01)
    assert batch.acquire_sync(
        "shared", QUOTA, 1, place=_place("batch", 0, 31.001), now_us=slot
    ).admission
    batch.close_sync()
    urgent.close_sync()


def test_a_place_whose_process_is_gone_is_dropped(redis_server: RedisServer) -> None:
    """A head that never comes back holds the others back until its turn plus half a
    second, not longer."""
    prefix = f"gone-{uuid.uuid4().hex}"
    gone, alive = _saturated_and_another(redis_server.url, prefix)
    early = T0 + 500_000
    assert gone.acquire_sync("shared", QUOTA, 1, place=_place("gone", 10), now_us=early).wait
    told = alive.acquire_sync("shared", QUOTA, 1, place=_place("alive"), now_us=early + 1)
    assert told.wait == pytest.approx(0.51, abs=1e-5)  # behind the gone one's slot
    # Its turn (T0 + 1 s) plus 0.5 s has passed: the place is dropped.
    assert alive.acquire_sync(
        "shared", QUOTA, 1, place=_place("alive", 0, 1.0), now_us=T0 + 1_500_001
    ).admission
    gone.close_sync()
    alive.close_sync()


def test_a_reserve_is_left_free_by_lower_priorities_in_every_process(
    redis_server: RedisServer,
) -> None:
    """Held back: a request below the reserve's priority fits only with 10 units left."""
    backend = RedisBackend(redis_server.url, prefix=f"reserve-{uuid.uuid4().hex}")
    admitted = 0
    for i in range(40):
        decision = backend.acquire_sync(
            "shared", QUOTA, 1, place=_place("batch", held=10), now_us=T0 + i * 1000
        )
        admitted += decision.admission is not None
    assert admitted == 30
    assert backend.acquire_sync(
        "shared", QUOTA, 1, place=_place("urgent", 10), now_us=T0 + 50_000
    ).admission
    backend.close_sync()


def test_token_bucket_places_are_served_in_order(redis_server: RedisServer) -> None:
    """On a token bucket the place ahead takes the next emission: the one behind is
    told the one after."""
    prefix = f"gcra-{uuid.uuid4().hex}"
    specs: tuple[LimitSpec, ...] = (TokenBucket(Rate(10, 1.0), burst=1),)
    first, second = (
        RedisBackend(redis_server.url, prefix=prefix),
        RedisBackend(redis_server.url, prefix=prefix),
    )
    assert first.acquire_sync("b", specs, 1, place=_place("one"), now_us=T0).admission
    assert first.acquire_sync(
        "b", specs, 1, place=_place("one"), now_us=T0 + 1
    ).wait == pytest.approx(0.1, abs=1e-5)
    assert second.acquire_sync(
        "b", specs, 1, place=_place("two"), now_us=T0 + 2
    ).wait == pytest.approx(0.2, abs=1e-5)
    first.close_sync()
    second.close_sync()


# -- three real processes ---------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import json, sys, time
    import anyio
    from ratelimited_client import RateLimitedClient, RedisBackend

    url, redis_url, prefix, tenant = sys.argv[1:5]
    start, stop = float(sys.argv[5]), float(sys.argv[6])

    async def main():
        backend = RedisBackend(redis_url, prefix=prefix)
        done = []
        async with RateLimitedClient(
            base_url=url, rate="40/second", backend=backend,
            key=lambda request: "shared",
            tenant=lambda request: request.url.path.split("/")[1],
            tenant_weights={"c": 2}, slow_start=False,
        ) as client:
            async def worker(n):
                for i in range(400):  # bounded: a run of a few seconds needs < 200
                    response = await client.get(f"/{tenant}/{n}-{i}")
                    response.raise_for_status()
                    done.append(time.time() - start)
            await anyio.sleep(max(0.0, start - time.time()))
            # At its stop the tenant goes idle: what still waits leaves the queue.
            with anyio.move_on_after(stop - time.time()):
                async with anyio.create_task_group() as tg:
                    for n in range(30):
                        tg.start_soon(worker, n)
        await backend.aclose()
        print(json.dumps(done))

    anyio.run(main)
    """
)


def test_three_processes_share_a_quota_by_weights_over_real_sockets(
    redis_server: RedisServer, mock_api_server: MockAPIServerFactory
) -> None:
    """Three processes, one tenant each (weights 1:1:2), 30 concurrent requests each
    against a strict 40 a second that the mock enforces: 0 × 429, 10/10/20 a second
    (±10 %) while all three have work, and c alone gets the whole quota once a and b
    stop."""
    server = mock_api_server(limit=40, window=1.0)
    prefix = f"procs-{uuid.uuid4().hex}"
    start = time.time() + 2.0  # the processes' imports and connections first
    stops = {"a": start + 5.0, "b": start + 5.0, "c": start + 7.5}
    workers = {
        tenant: subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                server.url,
                redis_server.url,
                prefix,
                tenant,
                repr(start),
                repr(stop),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tenant, stop in stops.items()
    }
    done: list[tuple[float, str]] = []
    for tenant, worker in workers.items():
        out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err[-3000:]
        done += [(at, tenant) for at in json.loads(out.strip().splitlines()[-1])]
    stats = server.stats()
    assert stats.rejected == 0
    assert stats.max_received_in_window <= 40
    # All three with work: the three windows after the first two.
    shared = collections.Counter(t for at, t in done if 2.0 <= at < 5.0)
    assert 27 <= shared["a"] <= 33, shared
    assert 27 <= shared["b"] <= 33, shared
    assert 54 <= shared["c"] <= 66, shared
    # a and b stop at 5 s: from the next window on, c has the whole quota.
    alone = collections.Counter(t for at, t in done if 6.0 <= at < 7.0)
    assert alone["c"] >= 36, alone
    assert alone["a"] == alone["b"] == 0


# -- the blocking client and trio take their places too ----------------------------------


def test_blocking_clients_in_two_threads_share_by_weights(redis_server: RedisServer) -> None:
    """Two sync clients (two throttles, as two processes would be), tenants weighted
    1:2, eight threads each, on a shared 20 a second: 1:2 in the second second."""
    prefix = f"sync-{uuid.uuid4().hex}"
    started = time.monotonic()
    stop = started + 2.2
    sent: list[tuple[float, str]] = []
    lock = threading.Lock()

    def answer(request: httpx.Request) -> httpx.Response:
        with lock:
            sent.append((time.monotonic() - started, request.url.path.split("/")[1]))
        return httpx.Response(200)

    def run(client: SyncRateLimitedClient, tenant: str) -> None:
        for i in range(200):  # bounded: 2.2 s at 20 a second needs far fewer
            if time.monotonic() >= stop:
                return
            client.get(f"/{tenant}/{i}")

    clients = {
        tenant: SyncRateLimitedClient(
            base_url="http://api.test",
            transport=httpx.MockTransport(answer),
            rate="20/second",
            backend=RedisBackend(redis_server.url, prefix=prefix),
            tenant=lambda request: request.url.path.split("/")[1],
            tenant_weights={"c": 2},
            slow_start=False,
        )
        for tenant in ("a", "c")
    }
    threads = [
        threading.Thread(target=run, args=(client, tenant))
        for tenant, client in clients.items()
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for client in clients.values():
        client.close()
    second = collections.Counter(t for at, t in sent if 1.0 <= at < 2.0)
    assert 6 <= second["a"] <= 8, second
    assert 12 <= second["c"] <= 14, second
    assert most_in_a_window(sent) <= 20


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_async_clients_keep_their_tenants_places(
    redis_server: RedisServer, anyio_backend: str
) -> None:
    """The async client's head asks with its tenant and weight: the tenant's finish tag
    in Redis moves by cost / weight (gold: 0.25 a request); a tenant new to the line
    starts at the bucket's virtual time (gold's last start, 0.5), banking nothing."""
    prefix = f"async-{uuid.uuid4().hex}"
    backend = RedisBackend(redis_server.url, prefix=prefix)
    async with RateLimitedClient(
        base_url="http://api.test",
        transport=httpx.MockTransport(lambda request: httpx.Response(200)),
        rate="20/second",
        backend=backend,
        key=lambda request: "shared",
        tenant=lambda request: request.url.path.strip("/"),
        tenant_weights={"gold": 4},
    ) as client:
        for _ in range(3):
            await client.get("/gold")
        await client.get("/free")
    await backend.aclose()
    raw = redis.Redis.from_url(redis_server.url)
    tag = f"{{{prefix}:shared}}"
    assert float(raw.get(f"{tag}:finish:gold") or 0) == pytest.approx(0.75)
    assert float(raw.get(f"{tag}:finish:free") or 0) == pytest.approx(1.5)
    raw.close()
