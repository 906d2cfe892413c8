"""Which request waits: priorities in a bucket's queue, the promotion of old requests,
and the reserve for urgent ones. On virtual time (FakeClock), asyncio and trio; the
blocking throttle with threads; a property test that the quota holds whatever the
mix of priorities and cancellations."""

from __future__ import annotations

import functools
import threading
import time
from typing import Any

import anyio
import httpx
import pytest
import respx
from hypothesis import given, settings
from hypothesis import strategies as st

from ratelimited_client import (
    PRIORITY_EXTENSION,
    CallOptions,
    ConfigurationError,
    PriorityReserve,
    PrometheusMetrics,
    Rate,
    RateLimitedClient,
    priority,
    priority_scope,
)
from ratelimited_client._options import build_throttle
from ratelimited_client._throttle import SyncThrottle, Throttle
from ratelimited_client.testing import FakeClock, virtual_time

API = "https://api.test"
KEY = "bucket"


def _build(rate: Rate, clock: FakeClock | None, **options: Any) -> object:
    return build_throttle(
        rate=rate,
        max_concurrency=None,
        max_queued=None,
        latency_proof=False,
        learn=False,
        clock=clock,
        slow_start=False,
        **options,
    )


def _throttle(clock: FakeClock, rate: Rate, **options: Any) -> Throttle:
    built = _build(rate, clock, **options)
    assert isinstance(built, Throttle)
    return built


async def _request(
    throttle: Throttle,
    clock: FakeClock,
    log: list[tuple[float, str]],
    name: str,
    at: float,
    rank: int = 0,
) -> None:
    """Arrive at ``at``, wait for a slot at ``rank``, go (answered at once)."""
    await clock.sleep_until(at)
    permit = await throttle.acquire(KEY, priority=rank)
    log.append((clock.now(), name))
    permit.settle()
    permit.release()


def _times(log: list[tuple[float, str]]) -> dict[str, float]:
    return {name: round(at, 6) for at, name in log}


@pytest.mark.anyio
async def test_a_higher_priority_takes_the_next_slot_the_rest_keep_their_order() -> None:
    """1 a second; four of priority 0 queued from t=0, one of priority 10 at t=0.5: it
    takes the slot at t=1, the others follow in their order."""
    clock = FakeClock(autojump=True)
    throttle = _throttle(clock, Rate(1, 1.0))
    log: list[tuple[float, str]] = []
    async with anyio.create_task_group() as tasks:
        for i in range(4):
            tasks.start_soon(_request, throttle, clock, log, f"low{i}", i * 0.001)
        tasks.start_soon(_request, throttle, clock, log, "urgent", 0.5, 10)
    assert [name for _, name in log] == ["low0", "urgent", "low1", "low2", "low3"]
    assert _times(log) == {"low0": 0.0, "urgent": 1.0, "low1": 2.0, "low2": 3.0, "low3": 4.0}


@pytest.mark.anyio
async def test_levels_in_between_and_equal_priorities_in_arrival_order() -> None:
    clock = FakeClock(autojump=True)
    throttle = _throttle(clock, Rate(1, 1.0))
    log: list[tuple[float, str]] = []
    arrivals = [("first", 0), ("a5", 5), ("b1", 1), ("c5", 5), ("d-3", -3), ("e1", 1)]
    async with anyio.create_task_group() as tasks:
        for i, (name, rank) in enumerate(arrivals):
            tasks.start_soon(_request, throttle, clock, log, name, i * 0.01, rank)
    assert [name for _, name in log] == ["first", "a5", "c5", "b1", "e1", "d-3"]


@pytest.mark.anyio
async def test_a_request_waiting_past_the_promotion_age_goes_before_an_endless_stream() -> None:
    """Priority 10 arrives faster than the rate, without end (for 12 s); the one of
    priority 0 queued at t=0.001 goes at the first slot after its 2.5 s: t=3."""
    clock = FakeClock(autojump=True)
    throttle = _throttle(clock, Rate(1, 1.0), promote_after=2.5)
    log: list[tuple[float, str]] = []
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_request, throttle, clock, log, "batch", 0.001)
        for i in range(24):
            tasks.start_soon(_request, throttle, clock, log, f"urgent{i}", i * 0.5, 10)
    assert _times(log)["batch"] == 3.0
    # Before it: the urgent ones that found the slots free or took them in its 2.5 s.
    assert [name for _, name in log[:4]] == ["urgent0", "urgent1", "urgent2", "batch"]
    # Strict priorities (no promotion): it waits for the whole stream.
    clock = FakeClock(autojump=True)
    throttle = _throttle(clock, Rate(1, 1.0), promote_after=None)
    log = []
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_request, throttle, clock, log, "batch", 0.001)
        for i in range(24):
            tasks.start_soon(_request, throttle, clock, log, f"urgent{i}", i * 0.5, 10)
    assert log[-1][1] == "batch"


@pytest.mark.anyio
async def test_the_reserve_keeps_room_for_urgent_requests_while_a_batch_saturates() -> None:
    """4 a second, a quarter of it for priority >= 10: the batch goes 3 a second, and an
    urgent request finds its slot free at once."""
    clock = FakeClock(autojump=True)
    throttle = _throttle(
        clock, Rate(4, 1.0), priority_reserve=PriorityReserve(share=0.25, priority=10)
    )
    log: list[tuple[float, str]] = []
    async with anyio.create_task_group() as tasks:
        for i in range(9):
            tasks.start_soon(_request, throttle, clock, log, f"batch{i}", 0.0)
        tasks.start_soon(_request, throttle, clock, log, "urgent", 1.5, 10)
    times = _times(log)
    assert times["urgent"] == 1.5  # no wait
    batch = sorted(t for name, t in times.items() if name.startswith("batch"))
    # The urgent one's slot counts until t=2.5: the batch leaves the reserve free beside it.
    assert batch == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.5]


@pytest.mark.anyio
async def test_statistics_and_metrics_show_the_reserve_in_use() -> None:
    """8 a second, a quarter kept for >= 10 (2 units): the batch's six leave it free;
    one urgent request takes half of it, a second all of it, until their slots go."""
    clock = FakeClock(autojump=True)
    throttle = _throttle(
        clock, Rate(8, 1.0), priority_reserve=PriorityReserve(share=0.25, priority=10)
    )
    metrics = PrometheusMetrics()
    metrics.on_attach(throttle)

    def seen() -> tuple[float | None, float, str]:
        bucket = throttle.statistics().buckets[str(KEY)]
        text = metrics.render().decode()
        line = next(x for x in text.splitlines() if x.startswith("ratelimited_client_reserve_in"))
        return bucket.reserve, bucket.reserve_in_use, line.rsplit(" ", 1)[1]

    permits = [await throttle.acquire(KEY) for _ in range(6)]
    assert seen() == (2.0, 0.0, "0.0")
    permits.append(await throttle.acquire(KEY, priority=10))
    assert seen() == (2.0, 1.0, "1.0")
    permits.append(await throttle.acquire(KEY, priority=10))
    assert seen() == (2.0, 2.0, "2.0")
    for permit in permits:
        permit.settle()
        permit.release()
    await clock.sleep_until(clock.now() + 1.01)
    assert seen() == (2.0, 0.0, "0.0")
    assert 'ratelimited_client_reserve_units{bucket="' in metrics.render().decode()


@pytest.mark.anyio
async def test_a_cancelled_head_or_waiter_hands_the_turn_on() -> None:
    clock = FakeClock(autojump=True)
    throttle = _throttle(clock, Rate(1, 1.0))
    log: list[tuple[float, str]] = []

    async def given_up(name: str, at: float, rank: int, until: float) -> None:
        with clock.cancel_scope(until):
            await _request(throttle, clock, log, name, at, rank)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_request, throttle, clock, log, "first", 0.0)
        tasks.start_soon(_request, throttle, clock, log, "low", 0.001)
        tasks.start_soon(given_up, "urgent-gone", 0.2, 10, 0.7)  # head, then gone at 0.7
        tasks.start_soon(given_up, "waiting-gone", 0.3, 5, 0.5)  # in line, gone at 0.5
        tasks.start_soon(_request, throttle, clock, log, "later", 0.4, 1)
    assert _times(log) == {"first": 0.0, "later": 1.0, "low": 2.0}
    assert throttle.statistics().buckets[KEY].waiting == 0


def test_the_blocking_throttle_serves_the_higher_priority_first() -> None:
    throttle = _build(Rate(1, 0.2), None, sync=True)
    assert isinstance(throttle, SyncThrottle)
    order: list[str] = []
    lock = threading.Lock()

    def go(name: str, rank: int) -> None:
        permit = throttle.acquire_sync(KEY, priority=rank)
        with lock:
            order.append(name)
        permit.settle()
        permit.release()

    go("first", 0)
    threads = [threading.Thread(target=go, args=(f"low{i}", 0)) for i in range(3)]
    for thread in threads:
        thread.start()
        time.sleep(0.01)
    urgent = threading.Thread(target=go, args=("urgent", 10))
    urgent.start()
    for thread in [*threads, urgent]:
        thread.join(timeout=5)
    assert order == ["first", "urgent", "low0", "low1", "low2"]


@pytest.mark.anyio
async def test_a_client_takes_priorities_from_extensions_call_options_and_views() -> None:
    with respx.mock(base_url=API) as api, virtual_time() as vt:
        api.get(url__regex=r"/\w+").mock(return_value=httpx.Response(200))
        async with RateLimitedClient(base_url=API, rate="1/second") as client:
            urgent = client.with_options(priority=10)

            async def at(moment: float, call: Any) -> None:
                await vt.clock.sleep_until(moment)
                await call()

            # They arrive a millisecond apart, in this order: the first goes, the rest queue.
            calls = [
                functools.partial(client.get, "/first"),
                functools.partial(client.get, "/batch"),
                functools.partial(client.get, "/ext", extensions=priority(3)),
                functools.partial(client.get, "/raw", extensions={PRIORITY_EXTENSION: 2}),
                functools.partial(urgent.get, "/view"),
            ]
            async with anyio.create_task_group() as tasks:
                for i, call in enumerate(calls):
                    tasks.start_soon(at, i * 0.001, call)
            stats = client.statistics().buckets[f"{API}:443"]
    assert [sent.path for sent in vt.sent] == ["/first", "/view", "/ext", "/raw", "/batch"]
    assert [round(sent.at, 6) for sent in vt.sent] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert stats.waiting_by_priority == {}


@pytest.mark.anyio
async def test_a_priority_scope_ranks_requests_built_elsewhere() -> None:
    """Inside ``priority_scope(10)`` requests without a priority of their own (a vendor
    SDK's) go before the queued batch; an explicit one still wins."""
    with respx.mock(base_url=API) as api, virtual_time() as vt:
        api.get(url__regex=r"/\w+").mock(return_value=httpx.Response(200))
        async with RateLimitedClient(base_url=API, rate="1/second") as client:

            async def scoped(path: str, at: float, **extensions: Any) -> None:
                await vt.clock.sleep_until(at)
                with priority_scope(10):
                    await client.get(path, extensions=extensions)

            async def plain(path: str, at: float) -> None:
                await vt.clock.sleep_until(at)
                await client.get(path)

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(plain, "/first", 0.0)
                tasks.start_soon(plain, "/batch", 0.001)
                tasks.start_soon(functools.partial(scoped, "/own", 0.002, ratelimit_priority=-1))
                tasks.start_soon(scoped, "/sdk", 0.003)
    assert [sent.path for sent in vt.sent] == ["/first", "/sdk", "/batch", "/own"]


def test_priorities_and_the_reserve_are_checked() -> None:
    with pytest.raises(ValueError, match="priority must be an integer"):
        priority(1.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"^priority must be an integer"):
        CallOptions(priority=True)
    with pytest.raises(ConfigurationError, match="share must be a fraction"):
        PriorityReserve(share=1.0, priority=10)
    with pytest.raises(ConfigurationError, match="priority must be an integer"):
        PriorityReserve(share=0.2, priority="high")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"^promote_after must be"):
        RateLimitedClient(promote_after=0)
    with pytest.raises(ConfigurationError, match=r"^priority_reserve must be"):
        RateLimitedClient(priority_reserve=0.25)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_a_bad_priority_extension_fails_the_request_clearly() -> None:
    with respx.mock(base_url=API) as api, virtual_time():
        api.get("/x").mock(return_value=httpx.Response(200))
        async with RateLimitedClient(base_url=API, rate="1/second") as client:
            await client.get("/x")  # the next one queues, and reads its priority
            with pytest.raises(ValueError, match="'ratelimit_priority' must be an integer"):
                await client.get("/x", extensions={PRIORITY_EXTENSION: "high"})


_ARRIVAL = st.tuples(
    st.floats(0.0, 5.0),  # when
    st.integers(-2, 3),  # priority
    st.one_of(st.none(), st.floats(0.0, 3.0)),  # gives up after (None: never)
)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(_ARRIVAL, min_size=1, max_size=30),
    st.one_of(st.none(), st.floats(0.5, 4.0)),
    st.booleans(),
)
def test_the_quota_holds_under_any_mix_of_priorities(
    arrivals: list[tuple[float, int, float | None]],
    promote_after: float | None,
    reserve: bool,
) -> None:
    """Any arrivals, priorities, promotion age, reserve and cancellations: never more
    than the limit in any window, and every request that did not give up went."""
    limit, window = 3, 1.0
    clock = FakeClock(autojump=True)
    throttle = _throttle(
        clock,
        Rate(limit, window),
        promote_after=promote_after,
        priority_reserve=PriorityReserve(share=0.34, priority=2) if reserve else None,
    )
    log: list[tuple[float, str]] = []

    async def arrive(i: int, at: float, rank: int, patience: float | None) -> None:
        if patience is None:
            await _request(throttle, clock, log, str(i), at, rank)
        else:
            with clock.cancel_scope(at + patience):
                await _request(throttle, clock, log, str(i), at, rank)

    async def run() -> None:
        async with anyio.create_task_group() as tasks:
            for i, (at, rank, patience) in enumerate(arrivals):
                tasks.start_soon(arrive, i, at, rank, patience)

    anyio.run(run)
    times = sorted(at for at, _ in log)
    for at in times:  # (a window's edge is exact to the clock's float rounding)
        assert sum(1 for t in times if at - window + 1e-9 < t <= at) <= limit
    patient = {str(i) for i, (_, _, patience) in enumerate(arrivals) if patience is None}
    assert patient <= {name for _, name in log}
    # (No bucket at all if every request gave up before it asked.)
    assert all(bucket.waiting == 0 for bucket in throttle.statistics().buckets.values())
