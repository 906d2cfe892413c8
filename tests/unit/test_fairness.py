"""Fair shares between tenants of one quota: weighted start-time fair queuing across
the tenants' queues, a tenant alone on the whole quota, and a tenant's own cap
inside the shared one. On virtual time (FakeClock), asyncio and trio; the blocking
throttle with threads; a property test that the quota and every cap hold."""

from __future__ import annotations

import collections
import functools
import threading
from typing import Any

import anyio
import httpx
import pytest
import respx
from hypothesis import given, settings
from hypothesis import strategies as st
from test_priorities import _build, _throttle

from ratelimited_client import (
    TENANT_EXTENSION,
    ConfigurationError,
    PrometheusMetrics,
    Rate,
    RateLimitedClient,
    priority,
)
from ratelimited_client._throttle import SyncThrottle, Throttle
from ratelimited_client.testing import FakeClock, virtual_time

API = "https://api.test"
KEY = "shared"


async def _backlog(
    throttle: Throttle,
    clock: FakeClock,
    tenant: str,
    count: int,
    log: list[tuple[float, str]],
    start: float = 0.0,
) -> None:
    """``count`` requests of ``tenant`` queued at ``start``, all at once."""
    await clock.sleep_until(start)

    async def one() -> None:
        permit = await throttle.acquire(KEY, tenant=tenant)
        log.append((clock.now(), tenant))
        permit.settle()
        permit.release()

    async with anyio.create_task_group() as tasks:
        for _ in range(count):
            tasks.start_soon(one)


def _per_tenant(log: list[tuple[float, str]], start: float, end: float) -> dict[str, int]:
    return dict(collections.Counter(t for at, t in log if start <= at < end))


async def _contend(
    throttle: Throttle, clock: FakeClock, backlogs: dict[str, int]
) -> list[tuple[float, str]]:
    """A first window spent by a warm-up (so that everyone after it queues), then each
    tenant's backlog queued at t=0.001; every admission as (time, tenant)."""
    log: list[tuple[float, str]] = []
    limit = 40  # the rate of every throttle here
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_backlog, throttle, clock, "warm-up", limit, log)
        for tenant, count in backlogs.items():
            tasks.start_soon(_backlog, throttle, clock, tenant, count, log, 0.001)
    return [(at, tenant) for at, tenant in log if tenant != "warm-up"]


@pytest.mark.anyio
async def test_three_tenants_get_their_weighted_shares_of_a_saturated_quota() -> None:
    """Weights 1:1:2 on 40 a second, every tenant with more than it can get: 10, 10
    and 20 a second (exactly, on virtual time), over 10 s."""
    clock = FakeClock(autojump=True)
    throttle = _throttle(clock, Rate(40, 1.0), tenant_weights={"c": 2})
    log = await _contend(throttle, clock, {"a": 110, "b": 110, "c": 220})
    assert _per_tenant(log, 1.0, 11.0) == {"a": 100, "b": 100, "c": 200}
    for second in range(1, 11):
        assert _per_tenant(log, second, second + 1) == {"a": 10, "b": 10, "c": 20}


@pytest.mark.anyio
async def test_a_tenant_left_alone_gets_the_whole_quota_within_a_window() -> None:
    clock = FakeClock(autojump=True)
    throttle = _throttle(clock, Rate(40, 1.0), tenant_weights={"c": 2})
    log = await _contend(throttle, clock, {"a": 30, "b": 30, "c": 300})
    last_of_others = max(at for at, tenant in log if tenant != "c")
    assert last_of_others == 3.0  # 10 + 10 + 10 in the windows at 1, 2 and 3 s
    # From the next window on, c alone: the whole 40 a second.
    for second in range(int(last_of_others) + 1, 7):
        assert _per_tenant(log, second, second + 1) == {"c": 40}


@pytest.mark.anyio
async def test_an_idle_tenant_banks_no_credit() -> None:
    """b waited nothing for 3 s while a used the quota alone; when b comes, they share
    equally from then on: b does not get the 3 s back."""
    clock = FakeClock(autojump=True)
    throttle = _throttle(clock, Rate(10, 1.0))
    log: list[tuple[float, str]] = []
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_backlog, throttle, clock, "a", 100, log)
        tasks.start_soon(_backlog, throttle, clock, "b", 40, log, 2.5)
    assert _per_tenant(log, 0.0, 3.0) == {"a": 30}
    for second in range(3, 7):
        assert _per_tenant(log, second, second + 1) == {"a": 5, "b": 5}


@pytest.mark.anyio
async def test_a_tenants_own_cap_holds_inside_the_shared_quota_without_blocking_others() -> None:
    clock = FakeClock(autojump=True)
    throttle = _throttle(clock, Rate(40, 1.0), tenant_rates={"small": "5/second"})
    log = await _contend(throttle, clock, {"small": 30, "big": 200})
    for second in range(1, 5):
        # small at its cap, big takes everything else of the shared quota.
        assert _per_tenant(log, second, second + 1) == {"small": 5, "big": 35}


@pytest.mark.anyio
async def test_the_client_takes_tenants_from_a_function_or_an_extension() -> None:
    with respx.mock(base_url=API) as api, virtual_time() as vt:
        api.get(url__regex=r"/\w+/\d+").mock(return_value=httpx.Response(200))
        async with RateLimitedClient(
            base_url=API,
            rate="4/second",
            tenant=lambda request: request.url.path.split("/")[1],
            tenant_weights={"gold": 3},
        ) as client:

            async def get(path: str, extensions: dict[str, Any]) -> None:
                await client.get(path, extensions=extensions)

            async with anyio.create_task_group() as tasks:
                for i in range(16):
                    tasks.start_soon(get, f"/gold/{i}", {})
                    tasks.start_soon(get, f"/free/{i}", {})
                    tasks.start_soon(get, f"/any/{i}", {TENANT_EXTENSION: "free"})
            stats = client.statistics().buckets[f"{API}:443"]
    later = [sent.path.split("/")[1] for sent in vt.sent if 1.0 <= sent.at < 5.0]
    # gold 3 : free 1 (its "/free" and "/any" requests together).
    assert collections.Counter("gold" if p == "gold" else "free" for p in later) == {
        "gold": 12,
        "free": 4,
    }
    assert stats.waiting_by_tenant == {}


@pytest.mark.anyio
async def test_metrics_count_admissions_and_waits_by_priority_and_tenant() -> None:
    metrics = PrometheusMetrics()
    with respx.mock(base_url=API) as api, virtual_time():
        api.get(url__regex=r"/\w+").mock(return_value=httpx.Response(200))
        async with RateLimitedClient(
            base_url=API,
            rate="1/second",
            metrics=metrics,
            tenant=lambda request: request.url.path.strip("/"),
        ) as client:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(client.get, "/acme")
                tasks.start_soon(functools.partial(client.get, "/globex", extensions=priority(5)))
                tasks.start_soon(client.get, "/acme")
        text = metrics.render().decode()
    bucket = f'bucket="{API}:443"'
    assert f'ratelimited_client_admitted_by_tenant_total{{{bucket},tenant="acme"}} 2.0' in text
    assert f'ratelimited_client_admitted_by_tenant_total{{{bucket},tenant="globex"}} 1.0' in text
    assert f'ratelimited_client_admitted_by_priority_total{{{bucket},priority="0"}} 2.0' in text
    assert f'ratelimited_client_admitted_by_priority_total{{{bucket},priority="5"}} 1.0' in text
    assert f'ratelimited_client_tenant_wait_seconds_count{{{bucket},tenant="acme"}} 2.0' in text


def test_the_blocking_throttle_shares_between_tenants() -> None:
    throttle = _build(Rate(4, 0.1), None, tenant_weights={"b": 3}, sync=True)
    assert isinstance(throttle, SyncThrottle)
    order: list[str] = []
    lock = threading.Lock()

    def go(tenant: str) -> None:
        permit = throttle.acquire_sync(KEY, tenant=tenant)
        with lock:
            order.append(tenant)
        permit.settle()
        permit.release()

    for _ in range(4):
        go("warm")  # the first window is spent: the rest queue
    threads = [threading.Thread(target=go, args=(t,)) for t in ["a"] * 12 + ["b"] * 12]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    # While both wait, b gets three of every four slots.
    both = order[4:20]
    assert collections.Counter(both) == {"a": 4, "b": 12}


def test_tenant_options_are_checked() -> None:
    with pytest.raises(ConfigurationError, match=r"^tenant must be a callable"):
        RateLimitedClient(tenant="acme")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"tenant_weights\['a'\] must be a positive"):
        RateLimitedClient(tenant_weights={"a": 0})
    with pytest.raises(ConfigurationError, match=r"^tenant_weights must map"):
        RateLimitedClient(tenant_weights=[("a", 1)])  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"tenant_rates\['a'\]"):
        RateLimitedClient(tenant_rates={"a": (5, 1)})  # type: ignore[dict-item]


_REQUEST = st.tuples(
    st.floats(0.0, 4.0),  # when
    st.sampled_from(["a", "b", "c", None]),  # tenant
    st.integers(0, 2),  # priority
)


@settings(max_examples=40, deadline=None)
@given(st.lists(_REQUEST, min_size=1, max_size=40), st.booleans())
def test_the_quota_and_every_cap_hold_under_any_mix_of_tenants(
    requests: list[tuple[float, str | None, int]], weighted: bool
) -> None:
    limit, window, cap = 4, 1.0, 2
    clock = FakeClock(autojump=True)
    throttle = _throttle(
        clock,
        Rate(limit, window),
        tenant_rates={"a": Rate(cap, window)},
        tenant_weights={"b": 3.0} if weighted else None,
        promote_after=2.0,
    )
    log: list[tuple[float, str | None]] = []

    async def arrive(at: float, tenant: str | None, rank: int) -> None:
        await clock.sleep_until(at)
        permit = await throttle.acquire(KEY, tenant=tenant, priority=rank)
        log.append((clock.now(), tenant))
        permit.settle()
        permit.release()

    async def run() -> None:
        async with anyio.create_task_group() as tasks:
            for request in requests:
                tasks.start_soon(arrive, *request)

    anyio.run(run)
    assert len(log) == len(requests)  # everyone went
    for at, _ in log:  # (a window's edge is exact to the clock's float rounding)
        in_window = [t for s, t in log if at - window + 1e-9 < s <= at]
        assert len(in_window) <= limit
        assert in_window.count("a") <= cap
