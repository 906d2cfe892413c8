"""A queue drains as soon as there is room: the head admitted admits the next in line
with it (``Throttle._grant``), in their order, each as it would admit itself.

Before, each waiter admitted itself as head a turn of the event loop after the one
before it; under a steady load as many requests arrived per turn, so a queue formed
once (slow start, a pause) never drained and every request took the queue's way.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

from ratelimited_client import Rate, SlidingWindow
from ratelimited_client._throttle import Permit, Throttle
from ratelimited_client.testing import FakeClock

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # grants are asyncio's: trio runs tasks woken together in any order


def three_in_a_second(clock: FakeClock, **options: Any) -> Throttle:
    return Throttle((SlidingWindow(Rate(3, 1.0)),), clock=clock, slow_start=False, **options)


async def test_the_head_admitted_admits_the_next_in_line_in_their_order() -> None:
    clock = FakeClock()
    throttle = three_in_a_second(clock)
    first = [await throttle.acquire("k") for _ in range(3)]  # the burst, at once
    admitted: list[tuple[int, float, int]] = []
    permits: list[Permit] = []

    async def ask(number: int) -> None:
        permit = await throttle.acquire("k")
        # Who else still waits in line as this one goes on.
        admitted.append((number, permit.sent_at, throttle._buckets["k"].live))
        permits.append(permit)

    async with anyio.create_task_group() as tg:
        for number in range(4):
            tg.start_soon(ask, number)
            await anyio.wait_all_tasks_blocked()
        assert throttle.statistics().queued == 4
        for permit in first:
            permit.release()
        await clock.advance(1.0)  # three more slots: the head and the next two go
        await anyio.wait_all_tasks_blocked()
        assert [(n, at) for n, at, _ in admitted] == [(0, 1.0), (1, 1.0), (2, 1.0)]
        # The first to go on found the line down to the one that must wait: the two
        # behind it were admitted with it, not a turn of the loop later each.
        assert [live for _, _, live in admitted] == [1, 1, 1]
        for permit in permits:
            permit.release()
        await clock.advance(1.0)
    assert admitted[3][:2] == (3, 2.0)
    stats = throttle.statistics()
    assert (stats.queued, stats.admitted) == (0, 7)


async def test_a_newcomer_takes_the_fast_path_once_the_line_is_gone() -> None:
    clock = FakeClock()
    throttle = Throttle(
        (SlidingWindow(Rate(100, 1.0)),), clock=clock, max_concurrency=2, slow_start=False
    )
    held = [await throttle.acquire("k") for _ in range(2)]
    got: list[Permit] = []

    async def ask() -> None:
        got.append(await throttle.acquire("k"))

    async with anyio.create_task_group() as tg:
        for _ in range(2):
            tg.start_soon(ask)
            await anyio.wait_all_tasks_blocked()
        for permit in held:
            permit.release()
        await anyio.wait_all_tasks_blocked()
        assert len(got) == 2
        assert throttle._buckets["k"].live == 0
        got.pop().release()
        # Nobody in line: a request now is admitted on the spot.
        assert throttle.admit_now("k", 1.0, None) is not None


async def test_a_waiter_cancelled_once_granted_gives_its_admission_back() -> None:
    clock = FakeClock()
    throttle = three_in_a_second(clock, max_concurrency=3)
    first = [await throttle.acquire("k") for _ in range(3)]
    tasks: list[asyncio.Task[None]] = []
    sent: list[int] = []

    async def ask(number: int) -> None:
        permit = await throttle.acquire("k")
        sent.append(number)
        if number == 0:
            # The head goes on first, the next two granted but not resumed yet: the
            # second is cancelled before it can (asyncio throws the cancellation in
            # where it waited, its admission in hand).
            tasks[1].cancel()
        permit.release()

    for number in range(3):
        tasks.append(asyncio.create_task(ask(number)))
        await anyio.wait_all_tasks_blocked()
    for permit in first:
        permit.release()
    await clock.advance(1.0)
    await asyncio.gather(*tasks, return_exceptions=True)
    assert tasks[1].cancelled()
    assert sent == [0, 2]
    stats = throttle.statistics()
    # Its slot and its place are given back; its unit of quota went, as a request
    # admitted and cancelled before sending takes one.
    assert (stats.queued, stats.in_flight, stats.admitted) == (0, 0, 6)
    assert throttle._buckets["k"].live == 0
