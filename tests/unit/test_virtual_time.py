"""Test mode (``testing.virtual_time``) and the clock that jumps by itself under it."""

from __future__ import annotations

import anyio
import httpx
import pytest
import respx

from ratelimited_client import Rate, RateLimitedClient, RetryPolicy, SyncRateLimitedClient
from ratelimited_client._clock import MONOTONIC
from ratelimited_client.testing import FakeClock, virtual_time

pytestmark = pytest.mark.anyio
API = "https://api.test"


async def test_an_autojump_clock_wakes_each_sleeper_at_its_deadline_in_order() -> None:
    clock = FakeClock(autojump=True)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, until: float) -> None:
        await clock.sleep_until(until)
        woke.append((name, clock.now()))
        if name == "a":  # a later sleep, started by a woken task
            await clock.sleep_until(until + 10.0)
            woke.append(("a again", clock.now()))

    with anyio.fail_after(5):  # real seconds: nothing here sleeps for real
        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper, "c", 30.0)
            tg.start_soon(sleeper, "a", 5.0)
            tg.start_soon(sleeper, "b", 20.0)
    assert woke == [("a", 5.0), ("a again", 15.0), ("b", 20.0), ("c", 30.0)]


async def test_a_cancelled_sleeper_hands_the_jumping_on() -> None:
    """The task moving time on is cancelled mid-sleep: another sleeper takes over,
    and time still reaches its deadline."""
    clock = FakeClock(autojump=True)
    woke: list[float] = []

    async def late() -> None:
        await clock.sleep_until(50.0)
        woke.append(clock.now())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            with anyio.CancelScope() as scope:
                tg.start_soon(late)
                await anyio.wait_all_tasks_blocked()
                scope.cancel()
                await clock.sleep_until(100.0)  # cancelled at once: never returns normally
    assert woke == [50.0]


async def test_clients_in_test_mode_take_its_clock_and_record_what_they_did() -> None:
    with respx.mock(base_url=API) as api:
        api.get("/x").mock(return_value=httpx.Response(200))
        with virtual_time() as vt:
            async with RateLimitedClient(base_url=API, rate=Rate(2, 10.0)) as client:
                for _ in range(5):
                    assert (await client.get("/x")).status_code == 200
    # Two per 10 s: 0, 0, 10, 10, 20 (virtual), and no real wait.
    assert [sent.at for sent in vt.sent] == [0.0, 0.0, 10.0, 10.0, 20.0]
    assert vt.statuses == [200] * 5


async def test_the_same_seed_gives_the_same_jitter() -> None:
    """Backoff jitter and the pauses' jitter come from the seed: the same run twice
    sends at the same virtual times; another seed, at others."""

    async def run(seed: int) -> list[float]:
        with respx.mock(base_url=API) as api:
            api.get("/x").mock(
                side_effect=[httpx.Response(503), httpx.Response(503), httpx.Response(200)]
            )
            with virtual_time(seed=seed) as vt:
                async with RateLimitedClient(base_url=API) as client:
                    await client.get("/x")
        return [sent.at for sent in vt.sent]

    first = await run(1)
    assert len(first) == 3
    assert first == await run(1)
    assert first != await run(2)


async def test_outside_test_mode_or_with_a_clock_given_nothing_changes() -> None:
    given = FakeClock()
    with virtual_time() as vt:
        async with RateLimitedClient(clock=given) as kept:
            assert kept._shared.throttle.clock is given
        with SyncRateLimitedClient() as sync:  # threads keep real time
            assert sync._shared.throttle.clock is MONOTONIC
    async with RateLimitedClient() as after:
        assert after._shared.throttle.clock is MONOTONIC
    assert vt.sent == []


async def test_the_policy_given_is_left_as_it_was() -> None:
    """Test mode seeds a copy of the client's retry policy, not the user's object."""
    policy = RetryPolicy(attempts=2)
    before = policy.random
    with virtual_time():
        async with RateLimitedClient(retry=policy) as client:
            assert client._shared.retry is not None
            assert client._shared.retry.random is not before
    assert policy.random is before
