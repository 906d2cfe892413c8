"""The throttle's fast path against the limiters' own decisions.

``Throttle.acquire`` repeats ``GCRALimiter.try_take`` inline and ``settle_permit`` repeats
``settle_dated``, and takes any other limiter (sliding windows, several rates)
through ``try_acquire``, to save calls on the path most requests take. These
tests hold the fast path to a reference limiter on random schedules: a request
the limiter would admit now is admitted at once, one it would not is admitted
exactly when the limiter says, and the state after settling is the same.
"""

from __future__ import annotations

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratelimited_client import Rate, SlidingWindow, TokenBucket
from ratelimited_client._limiters import (
    CompositeLimiter,
    GCRALimiter,
    Limiter,
    SlidingWindowLimiter,
    Ticket,
)
from ratelimited_client._throttle import Permit, SyncThrottle, Throttle
from ratelimited_client.testing import FakeClock

# (gap before the request, its cost, seconds until its answer)
Step = tuple[float, int, float]
steps = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.0, 0.001, 0.05, 0.1, 0.25, 0.5, 1.0]),
        st.integers(min_value=1, max_value=3),
        st.sampled_from([0.0, 0.01, 0.2, 0.6]),
    ),
    min_size=1,
    max_size=25,
)
specs = st.tuples(st.integers(1, 10), st.sampled_from([0.5, 1.0, 2.0]), st.integers(3, 6))


def run_schedule(
    spec: tuple[int, float, int], schedule: list[Step], backend: str, kind: str = "bucket"
) -> int:
    """Replay ``schedule``; every admission is checked against the limiter on the way.
    ``kind``: one token bucket, one sliding window, or two sliding windows at once.
    Returns the number of requests admitted."""
    limit, period, burst = spec
    reference: Limiter
    if kind == "bucket":
        rates: tuple[TokenBucket | SlidingWindow, ...] = (
            TokenBucket(Rate(limit, period), burst=burst),
        )
        reference = GCRALimiter(Rate(limit, period), burst)
    elif kind == "window":
        rates = (SlidingWindow(Rate(max(limit, 3), period)),)
        reference = SlidingWindowLimiter(Rate(max(limit, 3), period))
    else:
        short, long = Rate(max(limit, 3), period), Rate(max(limit, 3) * 2, period * 3)
        rates = (SlidingWindow(short), SlidingWindow(long))
        reference = CompositeLimiter([SlidingWindowLimiter(short), SlidingWindowLimiter(long)])

    async def main() -> int:
        clock = FakeClock()
        throttle = Throttle(rates, clock=clock, slow_start=False)
        answers: list[tuple[float, Permit, Ticket]] = []
        for gap, cost, latency in schedule:
            # Answers due before this request arrive first, in order, each at its time.
            at = clock.now() + gap
            answers.sort(key=lambda a: a[0])
            while answers and answers[0][0] <= at:
                due, permit, ticket = answers.pop(0)
                # (An answer due while a request waited arrives once it is admitted.)
                await clock.advance(max(0.0, due - clock.now()))
                permit.release()
                reference.settle(ticket, clock.now())
            await clock.advance(at - clock.now())
            wait = reference.wait_time(clock.now(), cost)
            asked = clock.now()
            got: list[Permit] = []

            async def ask(cost: float = cost, got: list[Permit] = got) -> None:
                got.append(await throttle.acquire("k", cost))

            async with anyio.create_task_group() as tg:
                tg.start_soon(ask)
                await anyio.wait_all_tasks_blocked()
                if wait == 0:
                    assert got, "the limiter admits now; the throttle made it wait"
                else:
                    assert not got, f"admitted {wait:g} s before the limiter allows"
                    await clock.advance(wait)
                    await anyio.wait_all_tasks_blocked()
                    if not got:
                        # ``asked + wait`` may land a float ulp short of the slot's
                        # time (2.2e-16 s seen): a hair more is the same instant.
                        await clock.advance(1e-9)
                        await anyio.wait_all_tasks_blocked()
                    assert got, "not admitted when the limiter allowed"
            assert got[0].sent_at == pytest.approx(asked + wait)
            assert reference.wait_time(clock.now(), cost) == 0
            ticket = reference.acquire(clock.now(), cost, pending=False)
            answers.append((clock.now() + latency, got[0], ticket))
            bucket = throttle._buckets["k"]
            if isinstance(reference, GCRALimiter):
                assert bucket.fast_limiter is not None
                assert bucket.fast_limiter.tat == pytest.approx(reference.tat)
            else:
                assert bucket.fast_other is bucket.limiter is not None
                assert bucket.limiter.used(clock.now()) == reference.used(clock.now())
        return throttle.statistics().admitted

    return anyio.run(main, backend=backend)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs, schedule=steps, backend=st.sampled_from(["asyncio", "trio"]))
def test_fast_path_admits_exactly_what_the_token_bucket_admits(
    spec: tuple[int, float, int], schedule: list[Step], backend: str
) -> None:
    assert run_schedule(spec, schedule, backend) == len(schedule)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=specs,
    schedule=steps,
    backend=st.sampled_from(["asyncio", "trio"]),
    kind=st.sampled_from(["window", "windows"]),
)
def test_fast_path_admits_exactly_what_sliding_windows_admit(
    spec: tuple[int, float, int], schedule: list[Step], backend: str, kind: str
) -> None:
    assert run_schedule(spec, schedule, backend, kind) == len(schedule)


def test_fast_path_is_taken_when_nothing_else_can_say_no() -> None:
    """An uncontended token bucket takes the fast path (no ticket objects)."""

    async def main() -> None:
        throttle = Throttle(
            (TokenBucket(Rate(5, 1.0), burst=5),), clock=FakeClock(), slow_start=False
        )
        permit = await throttle.acquire("k")
        assert permit.fast_limiter is not None
        assert permit.tickets == ()
        permit.release()
        latency_proof = Throttle(
            (TokenBucket(Rate(5, 1.0), burst=5),), clock=FakeClock(), latency_proof=True
        )
        slow = await latency_proof.acquire("k")
        assert slow.fast_limiter is None
        assert slow.tickets != ()
        slow.release()
        # Sliding windows take it too, through try_acquire: one ticket for the composite.
        windows = Throttle(
            (SlidingWindow(Rate(5, 1.0)), SlidingWindow(Rate(50, 60.0))),
            clock=FakeClock(),
            slow_start=False,
        )
        permit = await windows.acquire("k")
        bucket = windows._buckets["k"]
        assert bucket.fast
        assert bucket.fast_other is bucket.limiter
        assert [limiter for limiter, _ in permit.tickets] == [bucket.limiter]
        permit.release()

    anyio.run(main)


def test_sync_fast_path_matches_the_token_bucket() -> None:
    clock = FakeClock()
    throttle = SyncThrottle((TokenBucket(Rate(2, 1.0), burst=2),), clock=clock, slow_start=False)
    reference = GCRALimiter(Rate(2, 1.0), 2)
    permits = [throttle._fast_admit(throttle._bucket("k"), 1.0, None, 0.0) for _ in range(3)]
    assert [p is not None for p in permits] == [True, True, False]
    assert reference.try_take(0.0, 1.0)
    assert reference.try_take(0.0, 1.0)
    assert not reference.try_take(0.0, 1.0)
    bucket = throttle._buckets["k"]
    assert bucket.fast_limiter is not None
    assert bucket.fast_limiter.tat == reference.tat
