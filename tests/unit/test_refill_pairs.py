"""A window learned from full-refill instants stated in whole seconds (Anthropic's
``anthropic-ratelimit-requests-reset``), by pairs of readings and free of the server's
clock: on virtual time, against a moving window and a token bucket, with the instant
rounded up, down or to the nearest second and the server's clock anywhere."""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import formatdate
from typing import TYPE_CHECKING

import anyio
import httpx
import pytest

from ratelimited_client._feedback import _REFILL_PAIR_MARGIN, _Refills

if TYPE_CHECKING:
    from ratelimited_client.testing import FakeClock

LIMIT = 20
WINDOW = 1.0
WALL = 1_790_000_000.0  # the server's epoch at virtual t = 0

Rounding = Callable[[float], float]
ROUNDINGS: dict[str, Rounding] = {"ceil": math.ceil, "floor": math.floor, "round": round}


class Server:
    """What the server counts, and the instant it states as full again, per request at
    server time ``s``: a moving window (the bundled mock's: ``used`` shares of a window
    from now) or a token bucket (``limit - tokens`` shares, its fraction included)."""

    def __init__(self, kind: str, limit: int = LIMIT, window: float = WINDOW) -> None:
        self.kind = kind
        self.limit = limit
        self.window = window
        self.log: deque[float] = deque()
        self.tokens = float(limit)
        self.last = -math.inf

    def take(self, s: float) -> tuple[int, float]:
        """Count one request at ``s``: ``(used, full_at)``, or raise if over."""
        share = self.window / self.limit
        if self.kind == "moving":
            while self.log and s - self.log[0] >= self.window:
                self.log.popleft()
            assert len(self.log) < self.limit, "the client went over the quota"
            self.log.append(s)
            return len(self.log), s + len(self.log) * share
        self.tokens = min(self.limit, self.tokens + (s - self.last) / share)
        self.last = s
        assert self.tokens >= 1.0, "the client went over the quota"
        self.tokens -= 1.0
        return self.limit - math.floor(self.tokens), s + (self.limit - self.tokens) * share


def burst(
    refills: _Refills,
    server: Server,
    local: float,
    *,
    offset: float,
    rounding: Rounding,
    rng: random.Random,
    spread: float = 0.03,
) -> None:
    """``LIMIT`` requests sent from ``local`` on (over ``spread`` seconds), each read
    back a few ms later; the server's clock is ``offset`` ahead of ours."""
    for sent in sorted(local + rng.uniform(0.0, spread) for _ in range(server.limit)):
        arrived = sent + rng.uniform(0.0005, 0.005)
        used, full_at = server.take(arrived + offset)
        received = arrived + rng.uniform(0.0005, 0.005)
        refills.add(server.limit, used, rounding(full_at), sent, received)


@pytest.mark.parametrize("kind", ["moving", "bucket"])
@pytest.mark.parametrize("rounding", list(ROUNDINGS))
def test_the_pairs_bound_the_window_from_both_sides_whatever_the_clock(
    kind: str, rounding: str
) -> None:
    """Over 200 runs of 12 bursts each (the server's clock 0-1000 s off, the bursts a
    window and up to 0.6 of one apart), every bound holds after every reading: the
    upper one never below the window (so pacing at it never goes over), the lower one
    never above. And the readings settle it: within 12 % above the window by the last
    burst in most runs, within 25 % in every run."""
    finals: list[float] = []
    for seed in range(200):
        rng = random.Random(seed)
        refills, server = _Refills(), Server(kind)
        offset = rng.uniform(0.0, 1000.0)
        local = 0.0
        for _ in range(12):
            burst(refills, server, local, offset=offset, rounding=ROUNDINGS[rounding], rng=rng)
            assert not refills.broken
            assert refills.best >= WINDOW
            assert refills.lowest <= WINDOW
            local += WINDOW * (1.05 + rng.uniform(0.0, 0.6))
        finals.append(refills.best / WINDOW)
    finals.sort()
    assert finals[len(finals) // 2] <= 1.12
    assert finals[-1] <= 1.25


def test_the_grain_is_the_finest_the_instants_are_stated_in() -> None:
    """Instants with milliseconds are read to the millisecond: one burst bounds the
    window within 6 % (in whole seconds it could say no better than 2.2 windows)."""
    rng = random.Random(7)
    refills, server = _Refills(), Server("moving")
    burst(
        refills,
        server,
        0.0,
        offset=123.4567,
        rounding=lambda t: math.ceil(t * 1000) / 1000,
        rng=rng,
    )
    assert refills.grain == 0.001
    assert WINDOW <= refills.best <= 1.06 * WINDOW


def test_a_fixed_window_reporting_its_end_gives_the_pairs_up() -> None:
    """A fixed window of 20 per 60 s whose reset is the window's end (not a bucket's
    refill): one request every 0.5 s reads the same instant with more used each time,
    which no bucket explains. The pairs are given up: the other estimate stands."""
    refills = _Refills()
    for i in range(5):
        sent = 0.5 * i
        refills.add(20.0, i + 1.0, WALL + 60.0, sent, sent + 0.01)
    assert refills.broken
    assert refills.window(61.2) == 61.2


def test_an_unsettled_window_of_whole_grains_is_paced_off_the_beat() -> None:
    """Bounds still far apart (2.0 above, 0.5 below) and an upper bound of about two
    whole-second grains: each burst would come at the same point of the server's second
    as the one before and say nothing new, so the window is paced 0.3 s longer. Settled,
    or not a whole number of grains, it is the bound with its slack (float noise)."""
    refills = _Refills()
    refills.best, refills.lowest = 1.98, 0.5
    assert refills.window(None) == pytest.approx(2.3)
    assert refills.window(5.0) == pytest.approx(2.3)
    refills.lowest = 1.7
    assert refills.window(None) == pytest.approx(1.98 * _REFILL_PAIR_MARGIN)
    refills.best, refills.lowest = 1.6, 0.5
    assert refills.window(None) == pytest.approx(1.6 * _REFILL_PAIR_MARGIN)
    # Another estimate (the clock-based one) that is lower wins, and is paced off the
    # beat the same way.
    refills.best = 3.0
    assert refills.window(2.0) == pytest.approx(2.3)
    # A window of many grains (a minute read in whole seconds) is left as it is: one
    # grain in sixty costs less than the step.
    refills.best = 60.0
    assert refills.window(None) == pytest.approx(60.0 * _REFILL_PAIR_MARGIN)


def anthropic_like(date_lag: float) -> Callable[[int, float], httpx.Response]:
    """The bundled mock's strict 20 per second with Anthropic's headers, on virtual time:
    the reset an RFC 3339 instant rounded up to the second, the ``Date`` a second's
    grain and ``date_lag`` late (uvicorn caches it: up to a second)."""
    log: deque[float] = deque()

    def reply(n: int, now: float) -> httpx.Response:
        while log and now - log[0] >= WINDOW - 1e-9:
            log.popleft()
        if len(log) >= LIMIT:
            return httpx.Response(429, headers={"retry-after": "1"})
        log.append(now)
        full = datetime.fromtimestamp(math.ceil(WALL + now + len(log) * WINDOW / LIMIT), tz=UTC)
        return httpx.Response(
            200,
            headers={
                "anthropic-ratelimit-requests-limit": str(LIMIT),
                "anthropic-ratelimit-requests-remaining": str(LIMIT - len(log)),
                "anthropic-ratelimit-requests-reset": full.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "Date": formatdate(math.floor(WALL + now - date_lag), usegmt=True),
            },
        )

    return reply


@pytest.mark.anyio
@pytest.mark.parametrize("date_lag", [0.0, 0.5, 0.9])
async def test_not_told_whole_second_refills_are_learned_near_the_window(
    fake_clock: FakeClock, date_lag: float
) -> None:
    """200 requests at once, not told the quota, against 20 per second stated in whole
    seconds with a ``Date`` up to 0.9 s late: no 429, never 21 in a second, a learned
    window within 15 % of the truth, and the run within 1.25 × the least time (9 s)
    on virtual time. Read against the ``Date`` alone, these resets said up to 2 s."""
    from test_feedback import Upstream, make_client

    upstream = Upstream(fake_clock, anthropic_like(date_lag), latency=0.02)
    statuses: list[int] = []
    async with make_client(fake_clock, upstream) as client:

        async def one(i: int) -> None:
            statuses.append((await client.get(f"/{i}")).status_code)

        async with anyio.create_task_group() as tg:
            for i in range(200):
                tg.start_soon(one, i)
            await anyio.wait_all_tasks_blocked()
            await fake_clock.run_until_idle()
        learned = client.statistics().buckets["http://api.test:80"].learned_rate
    assert statuses == [200] * 200
    sent = upstream.sent
    assert max(sum(1 for t in sent if s <= t < s + WINDOW - 1e-9) for s in sent) <= LIMIT
    assert learned is not None
    assert learned.limit == LIMIT
    assert WINDOW <= learned.period <= 1.15 * WINDOW
    assert sent[-1] - sent[0] <= 1.25 * 9 * WINDOW
