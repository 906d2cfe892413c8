"""The pure limiter state machines, driven with explicit ``now`` values."""

from __future__ import annotations

import gc
import math
import random
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratelimited_client import Rate, SlidingWindow, TokenBucket
from ratelimited_client._limiters import (
    CompositeLimiter,
    GCRALimiter,
    Limiter,
    SlidingWindowLimiter,
    build_limiter,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

# -- helpers --------------------------------------------------------------------


def admit_greedily(
    limiter: Limiter, arrivals: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    """Serve (arrival, cost) requests FIFO, each at the earliest moment the limiter allows."""
    admitted: list[tuple[float, float]] = []
    t = 0.0
    for arrival, cost in arrivals:
        t = max(t, arrival)
        for _ in range(10_000):
            wait = limiter.wait_time(t, cost)
            if wait == 0:
                break
            assert math.isfinite(wait)
            t += wait
        else:  # pragma: no cover - would mean the limiter never admits
            pytest.fail("limiter never admitted")
        limiter.acquire(t, cost, pending=False)
        admitted.append((t, cost))
    return admitted


def max_in_window(admitted: list[tuple[float, float]], period: float) -> float:
    """Most cost admitted in any half-open interval [t, t + period)."""
    best = 0.0
    for start, _ in admitted:
        best = max(best, sum(c for t, c in admitted if start <= t < start + period))
    return best


arrival_patterns = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=3, allow_nan=False),  # gap since previous arrival
        st.integers(min_value=1, max_value=4),  # cost
    ),
    min_size=1,
    max_size=60,
)


def to_arrivals(pattern: Sequence[tuple[float, int]]) -> list[tuple[float, float]]:
    t = 0.0
    out = []
    for gap, cost in pattern:
        t += gap
        out.append((t, float(cost)))
    return out


# -- sliding window ---------------------------------------------------------------


def test_sliding_window_admits_a_full_burst_then_waits_a_whole_period() -> None:
    """Bursts up to the limit go at once; the next unit waits until the oldest expires."""
    limiter = SlidingWindowLimiter(Rate(5, 1.0))
    for _ in range(5):
        assert limiter.wait_time(0.0, 1) == 0.0
        limiter.acquire(0.0, 1, pending=False)
    assert limiter.wait_time(0.0, 1) == pytest.approx(1.0)
    assert limiter.wait_time(0.4, 1) == pytest.approx(0.6)
    assert limiter.used(0.999) == 5
    assert limiter.wait_time(1.0, 1) == 0.0  # expires exactly one period later
    assert limiter.used(1.0) == 0


def test_sliding_window_wait_accounts_for_costs() -> None:
    """A cost of 3 waits until enough earlier units have expired, not just one."""
    limiter = SlidingWindowLimiter(Rate(5, 10.0))
    for at in (0.0, 1.0, 2.0, 3.0):
        limiter.acquire(at, 1, pending=False)
    assert limiter.wait_time(3.0, 1) == 0.0
    assert limiter.wait_time(3.0, 3) == pytest.approx(8.0)  # needs the entries of t=0 and t=1
    assert limiter.wait_time(3.0, 6) == math.inf  # can never fit
    assert limiter.max_cost == 5


def test_sliding_window_pending_slots_block_until_settled() -> None:
    """Pending (latency-proof) slots hold their room until settled, then count a period."""
    limiter = SlidingWindowLimiter(Rate(2, 1.0))
    first = limiter.acquire(0.0, 1, pending=True)
    limiter.acquire(0.0, 1, pending=True)
    assert limiter.wait_time(0.1, 1) == math.inf  # no date yet: only a settle can help
    limiter.settle(first, 0.3)
    assert limiter.wait_time(0.3, 1) == pytest.approx(1.0)
    assert limiter.wait_time(1.3, 1) == 0.0
    assert limiter.used(1.3) == 1  # the other one is still pending


def test_sliding_window_settle_redates_later_never_earlier() -> None:
    """Settling a dated slot moves it later (the request arrived late), never earlier."""
    limiter = SlidingWindowLimiter(Rate(1, 1.0))
    ticket = limiter.acquire(0.0, 1, pending=False)
    limiter.settle(ticket, 0.25)
    assert limiter.wait_time(0.5, 1) == pytest.approx(0.75)
    limiter.settle(ticket, 0.1)
    assert limiter.wait_time(0.5, 1) == pytest.approx(0.75)


def test_sliding_window_ignores_time_running_backwards() -> None:
    """A now earlier than one already seen is treated as the latest seen."""
    limiter = SlidingWindowLimiter(Rate(1, 1.0))
    limiter.acquire(10.0, 1, pending=False)
    assert limiter.wait_time(3.0, 1) == pytest.approx(1.0)
    assert not limiter.is_idle(10.5)
    assert limiter.is_idle(11.0)


@settings(max_examples=300, deadline=None)
@given(
    pattern=arrival_patterns,
    limit=st.integers(min_value=4, max_value=12),
    period=st.sampled_from([0.5, 1.0, 2.5]),
)
def test_sliding_window_property_never_over_and_never_late(
    pattern: list[tuple[int, int]], limit: int, period: float
) -> None:
    """For any arrivals and costs: no interval of one period holds more than the limit,
    and every request that waited could not have gone a moment earlier."""
    arrivals = to_arrivals(pattern)
    admitted = admit_greedily(SlidingWindowLimiter(Rate(limit, period)), arrivals)
    assert max_in_window(admitted, period) <= limit
    for i, ((arrival, cost), (t, _)) in enumerate(zip(arrivals, admitted, strict=True)):
        waited_for_quota = t > arrival and (i == 0 or t > admitted[i - 1][0])
        if waited_for_quota:
            # An instant before t, the units dated in [t - period, t) left it no room.
            in_window = sum(c for s, c in admitted[:i] if t - period - 1e-9 <= s < t)
            assert in_window + cost > limit


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32), limit=st.integers(min_value=1, max_value=40))
def test_sliding_window_long_runs_redate_and_forget_like_the_plain_log(
    seed: int, limit: int
) -> None:
    """Hundreds of admissions, each settled late by a random delay, some settled only
    after later ones: the compacted log counts exactly what a plain list of
    (re-dated) entries counts, and stays bounded by what one period holds."""
    rng = random.Random(seed)
    delays = [rng.uniform(0.0, 0.3) for _ in range(1500)]
    period = 1.0
    limiter = SlidingWindowLimiter(Rate(limit, period))
    reference: list[float] = []  # the date of every admission, re-dated in place
    waiting: list[tuple[object, int, float]] = []  # tickets not settled yet
    t = 0.0
    for i, delay in enumerate(delays):
        t += 0.02
        used = limiter.used(t)
        counted = sum(1 for at in reference if at > t - period)
        # The log reads re-dated entries conservatively: never below the plain count.
        assert used >= counted
        if limiter.wait_time(t, 1.0) == 0:
            assert used + 1 <= limit
            waiting.append((limiter.acquire(t, 1.0, pending=False), len(reference), t + delay))
            reference.append(t)
        # Settle in arrival order of the answers, not of the admissions.
        for ticket, index, answered in sorted(waiting, key=lambda w: w[2]):
            if answered <= t or i == len(delays) - 1:
                limiter.settle(ticket, answered)
                reference[index] = max(reference[index], answered)
        waiting = [w for w in waiting if not (w[2] <= t or i == len(delays) - 1)]
        assert len(limiter._at) - limiter._windows[0].head <= limit
        assert len(limiter._at) <= 2 * max(limit, 256) + 1


def test_sliding_window_log_holds_nothing_for_the_garbage_collector() -> None:
    """A big window keeps every admission for a whole period: 20,000 of them add no
    object the collector has to walk (they used to be one object each)."""
    limiter = SlidingWindowLimiter(Rate(50_000, 60.0))
    gc.collect()
    before = len(gc.get_objects())
    tickets = [limiter.acquire(i * 0.001, 1.0, pending=False) for i in range(20_000)]
    for i, ticket in enumerate(tickets):
        limiter.settle(ticket, i * 0.001 + 0.0005)
    del tickets
    gc.collect()
    assert len(gc.get_objects()) - before < 50
    assert limiter.used(20.0) == 20_000


# -- token bucket (GCRA) --------------------------------------------------------------


def test_gcra_burst_then_even_spacing() -> None:
    """A bucket of 3 at 2/s: three at once, then one every half second."""
    limiter = GCRALimiter(Rate(2, 1.0), burst=3)
    times = [t for t, _ in admit_greedily(limiter, [(0.0, 1.0)] * 7)]
    assert times == pytest.approx([0, 0, 0, 0.5, 1.0, 1.5, 2.0])


def test_gcra_refills_while_idle_up_to_the_burst() -> None:
    """After a long idle spell the bucket is full again, and no fuller."""
    limiter = GCRALimiter(Rate(2, 1.0), burst=3)
    admit_greedily(limiter, [(0.0, 1.0)] * 3)
    times = [t for t, _ in admit_greedily(limiter, [(100.0, 1.0)] * 4)]
    assert times == pytest.approx([100, 100, 100, 100.5])
    assert limiter.max_cost == 3


def test_gcra_pending_units_hold_tokens_until_settled() -> None:
    """Latency-proof: an unsettled grant keeps its token; settling dates it at the response."""
    limiter = GCRALimiter(Rate(1, 1.0), burst=1)
    ticket = limiter.acquire(0.0, 1, pending=True)
    assert limiter.wait_time(0.0, 1) == math.inf  # burst 1 and one pending
    limiter.settle(ticket, 0.2)
    assert limiter.wait_time(0.2, 1) == pytest.approx(1.0)
    assert limiter.wait_time(1.2, 1) == 0.0


def test_gcra_settle_moves_the_schedule_past_a_late_arrival_only() -> None:
    """A grant that reached the server late pushes the schedule to its arrival plus one
    interval; a late arrival already inside the schedule changes nothing."""
    limiter = GCRALimiter(Rate(1, 1.0), burst=1)
    ticket = limiter.acquire(0.0, 1, pending=False)
    limiter.settle(ticket, 0.3)
    assert limiter.wait_time(0.5, 1) == pytest.approx(0.8)
    assert not limiter.is_idle(1.0)
    assert limiter.is_idle(1.3)
    backlog = GCRALimiter(Rate(1, 1.0), burst=3)
    tickets = [backlog.acquire(0.0, 1, pending=False) for _ in range(3)]
    backlog.settle(tickets[0], 0.3)  # schedule already runs to 3.0: no change
    assert backlog.wait_time(0.0, 1) == pytest.approx(1.0)


@settings(max_examples=200, deadline=None)
@given(
    pattern=arrival_patterns,
    limit=st.integers(min_value=4, max_value=12),
    burst=st.integers(min_value=4, max_value=8),
)
def test_gcra_property_bounded_by_burst_plus_rate(
    pattern: list[tuple[int, int]], limit: int, burst: int
) -> None:
    """In any interval of d seconds a token bucket admits at most burst + d * rate."""
    rate = Rate(limit, 1.0)
    admitted = admit_greedily(GCRALimiter(rate, burst), to_arrivals(pattern))
    for i, (start, _) in enumerate(admitted):
        for end, _ in admitted[i:]:
            total = sum(c for t, c in admitted if start <= t <= end)
            assert total <= burst + (end - start) * rate.per_second + 1e-6


# -- composite ----------------------------------------------------------------------


def test_composite_waits_for_the_strictest_child() -> None:
    """2 per second and 5 per 10 seconds: bursts of two until the slower quota binds."""
    limiter = build_limiter([SlidingWindow(Rate(2, 1.0)), SlidingWindow(Rate(5, 10.0))])
    assert isinstance(limiter, SlidingWindowLimiter)  # the windows share one log
    times = [t for t, _ in admit_greedily(limiter, [(0.0, 1.0)] * 7)]
    assert times == pytest.approx([0, 0, 1, 1, 2, 10, 10])
    assert limiter.max_cost == 2


@settings(max_examples=200, deadline=None)
@given(pattern=arrival_patterns)
def test_composite_property_every_rate_holds(pattern: list[tuple[int, int]]) -> None:
    """Whatever the arrivals, each of several rates holds on its own period."""
    rates = [Rate(4, 1.0), Rate(9, 3.0), Rate(20, 10.0)]
    limiter = build_limiter([SlidingWindow(r) for r in rates])
    assert limiter is not None
    admitted = admit_greedily(limiter, to_arrivals(pattern))
    for rate in rates:
        assert max_in_window(admitted, rate.period) <= rate.limit


# (gap before the step, cost, pending or dated, seconds until it is settled)
window_steps = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.0, 0.01, 0.3, 0.7, 1.0, 2.9, 3.0, 6.0]),
        st.integers(min_value=1, max_value=4),
        st.booleans(),
        st.sampled_from([0.0, 0.05, 0.5, 1.5, 4.0]),
    ),
    min_size=1,
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(steps=window_steps, limits=st.tuples(st.integers(2, 6), st.integers(4, 12)))
def test_windows_sharing_one_log_decide_as_one_limiter_per_rate(
    steps: list[tuple[float, int, bool, float]], limits: tuple[int, int]
) -> None:
    """Several rates in one sliding-window limiter (one shared log) give, at every step,
    the waits, usage, room and idleness of a composite of one limiter per rate, through
    dated and pending admissions settled late and out of order."""
    rates = [Rate(limits[0], 1.0), Rate(limits[1], 3.0), Rate(limits[1] + 3, 3.0)]
    shared = SlidingWindowLimiter(*rates)
    reference = CompositeLimiter([SlidingWindowLimiter(rate) for rate in rates])
    assert shared.max_cost == reference.max_cost
    unsettled: list[tuple[float, object, object]] = []  # (when, shared's, reference's)
    t = 0.0
    for gap, cost, pending, latency in steps:
        t += gap
        for due, mine, theirs in sorted(unsettled, key=lambda u: u[0]):
            if due <= t:
                shared.settle(mine, due)
                reference.settle(theirs, due)
        unsettled = [u for u in unsettled if u[0] > t]
        wait = shared.wait_time(t, cost)
        assert wait == reference.wait_time(t, cost)
        assert shared.used(t) == reference.used(t)
        assert shared.room(t) == reference.room(t)
        assert shared.is_idle(t) == reference.is_idle(t)
        if wait == 0:
            unsettled.append(
                (
                    t + latency,
                    shared.acquire(t, cost, pending=pending),
                    reference.acquire(t, cost, pending=pending),
                )
            )
        elif not pending:
            assert shared.try_acquire(t, cost) is None
            assert reference.try_acquire(t, cost) is None


def test_composite_pending_and_settle_reach_every_child() -> None:
    """One acquisition takes a slot from each child, and settling dates them all."""
    limiter = build_limiter([SlidingWindow(Rate(1, 1.0)), TokenBucket(Rate(1, 2.0), burst=1)])
    assert limiter is not None
    ticket = limiter.acquire(0.0, 1, pending=True)
    assert limiter.wait_time(0.2, 1) == math.inf
    limiter.settle(ticket, 0.5)
    assert limiter.wait_time(0.5, 1) == pytest.approx(2.0)  # the token bucket's 2 s interval
    assert limiter.used(0.5) == pytest.approx(1.0)
    assert not limiter.is_idle(2.4)
    assert limiter.is_idle(2.5)


def test_build_limiter_for_no_rates_is_none() -> None:
    """No configured rate means no limiter at all."""
    assert build_limiter([]) is None
    assert isinstance(build_limiter([TokenBucket(Rate(5, 1))]), GCRALimiter)
