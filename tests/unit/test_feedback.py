"""The server's word on virtual time: pauses, jittered paced release, caps, learning, and
evidence read with its precision (a wait on a success is no directive; a count that
agrees with the limiter adds nothing; one that disagrees is the server's word)."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest

from ratelimited_client import (
    PrometheusMetrics,
    Rate,
    RateLimitedClient,
    RetryAfterTooLongError,
    TokenBucket,
)
from ratelimited_client._feedback import ServerFeedback
from ratelimited_client._signals import QuotaState, RateLimitSignal, parse_signal

if TYPE_CHECKING:
    from ratelimited_client._limiters import Ticket
    from ratelimited_client.testing import FakeClock

pytestmark = pytest.mark.anyio

Reply = Callable[[int, float], httpx.Response]


class Upstream(httpx.AsyncBaseTransport):
    """Answers with ``reply(n, now)`` for the n-th request; records send times."""

    def __init__(self, clock: FakeClock, reply: Reply, *, latency: float = 0.0) -> None:
        self.clock = clock
        self.reply = reply
        self.latency = latency  # the answer, decided on arrival, comes back this late
        self.sent: list[float] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        now = self.clock.now()
        self.sent.append(now)
        response = self.reply(len(self.sent), now)
        if self.latency:
            await self.clock.sleep_until(now + self.latency)
        return response


def make_client(clock: FakeClock, upstream: Upstream, **options: Any) -> RateLimitedClient:
    options.setdefault("retry", None)  # these tests watch the bucket, not the retries
    client = RateLimitedClient(
        base_url="http://api.test", transport=upstream, clock=clock, **options
    )
    client._shared.throttle.rng = random.Random(1)
    return client


async def fire(client: RateLimitedClient, clock: FakeClock, n: int) -> list[int]:
    statuses: list[int] = []

    async def one(i: int) -> None:
        statuses.append((await client.get(f"/{i}")).status_code)

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)
            await anyio.wait_all_tasks_blocked()
        await clock.run_until_idle()
    return statuses


async def test_retry_after_pauses_the_whole_bucket_then_releases_paced(
    fake_clock: FakeClock,
) -> None:
    """One 429 with Retry-After: 2 stops every queued request until t=2 (plus a little
    jitter), then the queue drains one per interval of the rate, not all at once."""

    def reply(n: int, now: float) -> httpx.Response:
        if n == 3:
            return httpx.Response(429, headers={"Retry-After": "2"})
        return httpx.Response(200)

    upstream = Upstream(fake_clock, reply)
    async with make_client(fake_clock, upstream, rate=Rate(10, 1.0), max_concurrency=1) as client:
        statuses = await fire(client, fake_clock, 8)
    assert statuses.count(429) == 1
    after = [t for t in upstream.sent if t > 0]
    assert after, "requests after the pause"
    assert min(after) >= 2.0  # nobody left before the server's time
    assert min(after) <= 2.0 + 0.2  # jitter is at most 10 % of the pause
    gaps = [b - a for a, b in itertools.pairwise(after)]
    assert all(gap >= 0.1 - 1e-9 for gap in gaps)  # paced at 10/s, no stampede


async def test_exhausted_remaining_pauses_until_reset_even_on_2xx(fake_clock: FakeClock) -> None:
    """remaining=0 with a reset on a 200 holds the next request until the reset."""

    def reply(n: int, now: float) -> httpx.Response:
        remaining = max(0, 2 - n)
        reset = max(0.0, 5.0 - now)
        return httpx.Response(
            200,
            headers={
                "X-RateLimit-Limit": "2",
                "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": f"{reset:.0f}",
            },
        )

    upstream = Upstream(fake_clock, reply)
    async with make_client(fake_clock, upstream, rate=Rate(100, 1.0)) as client:
        await fire(client, fake_clock, 3)
    assert upstream.sent[:2] == [0.0, 0.0]
    assert 5.0 <= upstream.sent[2] <= 5.5


async def test_remaining_caps_what_is_sent_before_reset(fake_clock: FakeClock) -> None:
    """remaining=3 on the first answer: three more at most until the reset at t=10."""

    def reply(n: int, now: float) -> httpx.Response:
        return httpx.Response(
            200,
            headers={
                "RateLimit-Limit": "100",
                "RateLimit-Remaining": str(max(0, 4 - n)),
                "RateLimit-Reset": f"{max(0.0, 10 - now):.0f}",
            },
        )

    upstream = Upstream(fake_clock, reply)
    async with make_client(fake_clock, upstream, rate=Rate(100, 1.0), max_concurrency=1) as client:
        await fire(client, fake_clock, 6)
    assert upstream.sent[:4] == [0.0, 0.0, 0.0, 0.0]
    assert all(t >= 10.0 for t in upstream.sent[4:])


async def test_wait_beyond_the_cap_fails_fast_for_every_caller(fake_clock: FakeClock) -> None:
    """Retry-After: 3600 (cap 300 s): RetryAfterTooLongError for later callers, at once."""

    def reply(n: int, now: float) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "3600"})

    upstream = Upstream(fake_clock, reply)
    async with make_client(fake_clock, upstream, rate=Rate(10, 1.0)) as client:
        first = await client.get("/a")
        assert first.status_code == 429
        with pytest.raises(RetryAfterTooLongError) as info:
            await client.get("/b")
        assert info.value.retry_after == pytest.approx(3600)
        assert info.value.limit == 300
        await fake_clock.advance(3601)
        assert (await client.get("/c")).status_code == 429
    assert len(upstream.sent) == 2


async def test_learns_the_limit_from_headers_on_first_contact(fake_clock: FakeClock) -> None:
    """No rate configured: one probe, then the limit the headers state, with no 429s."""
    window: list[float] = []

    def reply(n: int, now: float) -> httpx.Response:
        # In virtual time a slot freed at t + 1.0 and the server's now - t differ by
        # one float ulp at most; a real server's clock is never that exact.
        window[:] = [t for t in window if now - t < 1.0 - 1e-9]
        if len(window) >= 5:
            return httpx.Response(429, headers={"Retry-After": "1"})
        window.append(now)
        return httpx.Response(
            200,
            headers={
                "RateLimit-Policy": '"default";q=5;w=1',
                "RateLimit": f'"default";r={5 - len(window)};t=1',
            },
        )

    upstream = Upstream(fake_clock, reply)
    async with make_client(fake_clock, upstream) as client:
        statuses = await fire(client, fake_clock, 20)
        learned = client.statistics().buckets["http://api.test:80"].learned_rate
    assert statuses == [200] * 20
    assert learned == Rate(5, 1.0)


async def test_learns_from_429s_when_the_server_says_nothing_else(fake_clock: FakeClock) -> None:
    """A server that speaks only through 429: a handful at first contact, then none."""
    window: list[float] = []

    def reply(n: int, now: float) -> httpx.Response:
        window[:] = [t for t in window if now - t < 1.0]
        if len(window) >= 5:
            return httpx.Response(429, headers={"Retry-After": "1"})
        window.append(now)
        return httpx.Response(200)

    upstream = Upstream(fake_clock, reply)
    async with make_client(fake_clock, upstream) as client:
        statuses = await fire(client, fake_clock, 40)
    rejected = [i for i, s in enumerate(statuses) if s == 429]
    assert len(rejected) <= 3
    assert statuses[-25:] == [200] * 25


async def test_random_503s_pause_but_teach_no_rate(fake_clock: FakeClock) -> None:
    """Every fifth answer a 503 + Retry-After (overload, not a quota): the bucket
    pauses each time, but no limit is learned from it."""

    def reply(n: int, now: float) -> httpx.Response:
        if n % 5 == 0:
            return httpx.Response(503, headers={"Retry-After": "1"})
        return httpx.Response(200)

    upstream = Upstream(fake_clock, reply)
    async with make_client(fake_clock, upstream) as client:
        statuses = await fire(client, fake_clock, 20)
        assert client.statistics().buckets["http://api.test:80"].learned_rate is None
    assert statuses.count(503) == 4


async def test_origin_wide_pause_holds_every_bucket_of_that_origin(fake_clock: FakeClock) -> None:
    """A 503 with Retry-After (maintenance) pauses all buckets on that host, not others."""

    def reply(n: int, now: float) -> httpx.Response:
        if n == 1:
            return httpx.Response(503, headers={"Retry-After": "10"})
        return httpx.Response(200)

    upstream = Upstream(fake_clock, reply)
    async with make_client(
        fake_clock, upstream, rate=Rate(100, 1.0), key=lambda r: r.url.path
    ) as client:
        assert (await client.get("/a")).status_code == 503
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.get, "/b")  # another bucket, same origin: waits
            tg.start_soon(client.get, "http://elsewhere.test/c")  # another origin: goes
            await anyio.wait_all_tasks_blocked()
            assert upstream.sent == [0.0, 0.0]
            await fake_clock.run_until_idle()
    assert 10.0 <= upstream.sent[2] <= 11.0


async def test_request_scoped_429_does_not_pause_the_bucket(fake_clock: FakeClock) -> None:
    """Stripe's lock_timeout 429 concerns one object: the next request goes at once."""

    def reply(n: int, now: float) -> httpx.Response:
        if n == 1:
            return httpx.Response(429, json={"error": {"code": "lock_timeout"}})
        return httpx.Response(200)

    upstream = Upstream(fake_clock, reply)
    async with make_client(fake_clock, upstream, rate=Rate(100, 1.0)) as client:
        assert (await client.get("/a")).status_code == 429
        assert (await client.get("/b")).status_code == 200
    assert upstream.sent == [0.0, 0.0]
    assert client.statistics().buckets["http://api.test:80"].paused_for == 0


async def test_cached_answers_are_ignored(fake_clock: FakeClock) -> None:
    """remaining=0 on a response with Age > 0 does not pause anything."""

    def reply(n: int, now: float) -> httpx.Response:
        headers = {"Age": "30", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "60"}
        return httpx.Response(200, headers=headers)

    upstream = Upstream(fake_clock, reply)
    async with make_client(fake_clock, upstream, rate=Rate(100, 1.0)) as client:
        await client.get("/a")
        await client.get("/b")
    assert upstream.sent == [0.0, 0.0]


async def test_every_learned_quota_holds_and_the_strictest_is_reported(
    fake_clock: FakeClock,
) -> None:
    """A per-second and a daily quota (X's 24-hour cap): both are learned; the daily binds."""

    def reply(n: int, now: float) -> httpx.Response:
        return httpx.Response(
            200,
            headers={
                "RateLimit-Policy": '"default";q=5;w=1',
                "RateLimit": f'"default";r={4 - (n - 1) % 5};t=1',
                "x-app-limit-24hour-limit": "8",
            },
        )

    upstream = Upstream(fake_clock, reply)
    async with make_client(fake_clock, upstream, max_queued=100) as client:
        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(client.get, f"/{i}")
                await anyio.wait_all_tasks_blocked()
            await fake_clock.advance(30.0)
            assert len(upstream.sent) == 8  # the daily quota holds the last two
            tg.cancel_scope.cancel()
        bucket = client.statistics().buckets["http://api.test:80"]
    assert bucket.learned_rate == Rate(8, 86400.0)


def _openai_answer(received_at: float, remaining: int, full: float) -> RateLimitSignal:
    quota = QuotaState(
        name="requests",
        dialect="openai",
        limit=20,
        remaining=remaining,
        reset_at=received_at + full,
        reset_kind="full_refill",
    )
    return RateLimitSignal(
        status=200,
        received_at=received_at,
        quotas=(quota,),
        retry=None,
        throttled=False,
        dialects=("openai",),
        cached=False,
    )


def test_a_rebuilt_learned_limiter_counts_the_requests_in_flight() -> None:
    """The learned limiter is rebuilt when a later answer shortens the window estimate
    (here 0.612 s → 0.51 s) while ten requests are still on their way. The new limiter
    counts them: of the 20 in the window, 2 answered + 10 in flight leave 8, not 18,
    once the caps from the answers have expired."""
    feedback = ServerFeedback(
        configured_rate=None, learning=True, rng=random.Random(1), max_wait=60.0
    )
    feedback.observe(_openai_answer(0.010, 19, 0.030), sent_at=0.0, others_in_flight=0)
    assert feedback.learned_rate == Rate(20, 0.612)  # 30 ms × 20 / 1 used, + 2 %
    tickets = [feedback.on_admit(0.011, 1.0) for _ in range(11)]
    assert feedback.learned is not None
    assert tickets[0] is not None
    feedback.learned.settle(tickets[0], 0.020)  # the 2nd answer: rebuilds at 0.51 s
    feedback.observe(_openai_answer(0.020, 18, 0.050), sent_at=0.011, others_in_flight=10)
    assert feedback.learned_rate == Rate(20, 0.51)
    now = 0.2  # every cap has expired; only the learned limit holds
    assert feedback.wait_time(now, 1.0, outstanding=10) == 0.0
    later: list[Ticket | None] = []
    while feedback.wait_time(now, 1.0, outstanding=10 + len(later)) == 0.0 and len(later) < 30:
        later.append(feedback.on_admit(now, 1.0))
    assert len(later) == 8
    assert feedback.wait_time(now, 1.0, outstanding=18) == pytest.approx(0.010 + 0.51 - now)
    # The ten in flight are answered: each is dated then, as before the rebuild.
    for ticket in tickets[1:] + later:
        assert ticket is not None
        feedback.learned.settle(ticket, 0.25)
    assert feedback.learned.used(0.25) == 20
    assert feedback.learned.live == set()


# -- evidence, read with its precision ----------------------------------------------

WALL = 1_790_000_000.0  # the server's epoch at virtual t = 0
BUCKET = "http://api.test:80"


def slowapi_like(limit: int, window: float, *, others: int = 0) -> Reply:
    """A moving window of ``limit`` per ``window`` s answering as slowapi does: the
    reset one second late, ``Retry-After`` on every answer, a ``Date`` in whole
    seconds. ``others`` requests of somebody else's are already in the window at 0."""
    admitted: list[float] = [0.0] * others

    def reply(n: int, now: float) -> httpx.Response:
        admitted[:] = [t for t in admitted if now - t < window]
        status = 429 if len(admitted) >= limit else 200
        if status == 200:
            admitted.append(now)
        oldest = admitted[0] if admitted else now
        return httpx.Response(
            status,
            headers={
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": str(limit - len(admitted)),
                "X-RateLimit-Reset": repr(WALL + oldest + window + 1.0),
                "Retry-After": str(math.ceil(oldest + window + 1.0 - now)),
                "Date": formatdate(math.floor(WALL + now), usegmt=True),
            },
        )

    return reply


def test_a_wait_on_a_success_is_no_directive() -> None:
    """Retry-After (and its kin) on a 2xx is ignored and flagged; on 429, 503 it holds."""
    for headers in ({"Retry-After": "1"}, {"retry-after-ms": "800"}, {"Retry-After": "30"}):
        ok = parse_signal(200, headers, received_at=0.0, wall_now=WALL)
        assert ok.retry is None
        assert ok.ignored_wait
    for status in (429, 503):
        rejected = parse_signal(status, {"Retry-After": "1"}, received_at=0.0, wall_now=WALL)
        assert rejected.retry is not None
        assert rejected.retry.delay == 1.0
        assert not rejected.ignored_wait


async def test_retry_after_on_every_success_never_pauses_the_bucket(
    fake_clock: FakeClock,
) -> None:
    """A server that stamps Retry-After: 5 on every 200: 30 requests all leave at t=0,
    each ignored answer counted (statistics and the Prometheus counter)."""

    def reply(n: int, now: float) -> httpx.Response:
        return httpx.Response(200, headers={"Retry-After": "5"})

    upstream = Upstream(fake_clock, reply)
    metrics = PrometheusMetrics()
    async with make_client(fake_clock, upstream, rate=Rate(100, 1.0), metrics=metrics) as client:
        statuses = await fire(client, fake_clock, 30)
        stats = client.statistics().buckets[BUCKET]
    assert statuses == [200] * 30
    assert upstream.sent == [0.0] * 30
    assert stats.ignored_waits == 30
    assert stats.paused_for == 0.0
    counted = metrics.registry.get_sample_value(
        "ratelimited_client_ignored_retry_after_total", {"bucket": BUCKET}
    )
    assert counted == 30


async def test_a_late_reset_that_agrees_with_the_limiter_costs_nothing(
    fake_clock: FakeClock,
) -> None:
    """Told 5/s against a slowapi-like moving window of 5/s (reset padded by 1 s, read
    against a whole-second Date): the server's counts agree with the limiter, so the
    limiter's clock decides: bursts at 0, 1, 2 s, not every 2-3 s; no 429."""
    upstream = Upstream(fake_clock, slowapi_like(5, 1.0))
    async with make_client(fake_clock, upstream, rate=Rate(5, 1.0)) as client:
        statuses = await fire(client, fake_clock, 15)
        stats = client.statistics().buckets[BUCKET]
    assert statuses == [200] * 15
    assert upstream.sent == [0.0] * 5 + [1.0] * 5 + [2.0] * 5
    assert stats.agreed_readings == 15


async def test_fewer_remaining_than_the_limiter_expects_is_the_servers_word(
    fake_clock: FakeClock,
) -> None:
    """Somebody else spent 2 of the 5: the first answer says 2 remaining where the
    limiter expects 4. The server wins: 3 go at 0, the rest wait for its reset."""
    upstream = Upstream(fake_clock, slowapi_like(5, 1.0, others=2))
    async with make_client(fake_clock, upstream, rate=Rate(5, 1.0)) as client:
        statuses = await fire(client, fake_clock, 6)
    assert statuses == [200] * 6
    assert upstream.sent[:3] == [0.0] * 3
    # Nothing more before the server's (padded) reset: 0 + 1 s window + 1 s pad.
    assert min(upstream.sent[3:]) >= 2.0


# -- first contact at a told rate, and a told rate the server rejects ----------------


def spaced(interval: float, *, burst: int = 0) -> Reply:
    """nginx ``limit_req`` on virtual time: a request is taken when at most ``burst``
    are ahead of the schedule of one per ``interval``; a rejection is a bare 429 and
    moves nothing."""
    due = [-math.inf]  # when the schedule is next clear

    def reply(n: int, now: float) -> httpx.Response:
        if now < due[0] - burst * interval - 1e-9:
            return httpx.Response(429)
        due[0] = max(due[0], now) + interval
        return httpx.Response(200)

    return reply


def rounds(sent: list[float]) -> list[int]:
    """How many requests left at each distinct time, in order."""
    return [len(list(group)) for _, group in itertools.groupby(sent)]


async def test_slow_start_doubles_the_requests_in_flight_per_round_trip(
    fake_clock: FakeClock,
) -> None:
    """Told 16/s, answers 10 ms away: 1, 2, 4, 8 in flight, one more round trip each,
    then the rest of the burst; the configured window holds throughout."""
    upstream = Upstream(fake_clock, lambda n, now: httpx.Response(200), latency=0.01)
    async with make_client(fake_clock, upstream, rate=Rate(16, 1.0)) as client:
        statuses = await fire(client, fake_clock, 32)
    assert statuses == [200] * 32
    assert rounds(upstream.sent)[:5] == [1, 2, 4, 8, 1]
    assert upstream.sent[:16] == pytest.approx(
        [0.0] + [0.01] * 2 + [0.02] * 4 + [0.03] * 8 + [0.04]
    )
    # Every slot is dated at its answer, a period on: never 16 in any second.
    assert all(b - a >= 1.0 for a, b in zip(upstream.sent, upstream.sent[16:], strict=False))


async def test_without_slow_start_the_burst_goes_at_once(fake_clock: FakeClock) -> None:
    upstream = Upstream(fake_clock, lambda n, now: httpx.Response(200), latency=0.01)
    async with make_client(fake_clock, upstream, rate=Rate(16, 1.0), slow_start=False) as client:
        await fire(client, fake_clock, 16)
    assert upstream.sent == [0.0] * 16


async def test_slow_start_lasts_a_second_at_most(fake_clock: FakeClock) -> None:
    """Answers 5 s away (a long completion): one goes at once, the rest of the burst a
    second later, not after the first answer."""
    upstream = Upstream(fake_clock, lambda n, now: httpx.Response(200), latency=5.0)
    async with make_client(fake_clock, upstream, rate=Rate(10, 60.0)) as client:
        await fire(client, fake_clock, 10)
    assert upstream.sent == [0.0] + [1.0] * 9


async def test_a_told_burst_the_server_rejects_is_corrected_to_its_spacing(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Told 10/s, the server takes one per 100 ms and no burst (nginx without ``burst``):
    two rejections at first contact, then the configured rate evenly spaced, a WARNING
    that names the shape to configure, and no 429 more."""
    upstream = Upstream(fake_clock, spaced(0.1), latency=0.002)
    metrics = PrometheusMetrics()
    with caplog.at_level("WARNING", logger="ratelimited_client"):
        client = make_client(fake_clock, upstream, rate=Rate(10, 1.0), metrics=metrics)
        async with client:
            statuses = await fire(client, fake_clock, 30)
            stats = client.statistics().buckets[BUCKET]
            gauge = metrics.registry.get_sample_value(
                "ratelimited_client_corrected_burst", {"bucket": BUCKET}
            )
    assert gauge == 1.0
    assert statuses.count(429) == 2
    assert statuses.count(200) == 28
    assert stats.corrected == TokenBucket(Rate(10, 1.0), burst=1)
    (notice,) = [r for r in caplog.records if getattr(r, "event", None) == "rate_corrected"]
    assert "one request per 0.1 s" in notice.getMessage()
    assert notice.levelname == "WARNING"
    gaps = [b - a for a, b in itertools.pairwise(upstream.sent[3:])]
    assert min(gaps) >= 0.1 - 1e-9
    # The least time for 28 taken: 27 gaps of 100 ms; plus the one pause (1 s and jitter).
    assert upstream.sent[-1] <= 27 * 0.1 * 1.05 + 1.1


async def test_a_smaller_burst_is_learned_as_a_smaller_burst(fake_clock: FakeClock) -> None:
    """Told 10/s, the server takes bursts of 4 (nginx ``burst=3 nodelay``): the bucket
    keeps 10/s with a burst of 4."""
    upstream = Upstream(fake_clock, spaced(0.1, burst=3), latency=0.002)
    async with make_client(fake_clock, upstream, rate=Rate(10, 1.0)) as client:
        statuses = await fire(client, fake_clock, 40)
        stats = client.statistics().buckets[BUCKET]
    assert stats.corrected == TokenBucket(Rate(10, 1.0), burst=4)
    assert statuses.count(429) <= 5


async def test_a_rejection_that_states_the_quota_corrects_nothing(fake_clock: FakeClock) -> None:
    """A 429 with ``X-RateLimit-*`` states the count: its caps and pause answer it; the
    configured shape stays (somebody else's traffic is no configuration error)."""
    upstream = Upstream(fake_clock, slowapi_like(5, 1.0, others=4), latency=0.002)
    async with make_client(fake_clock, upstream, rate=Rate(5, 1.0)) as client:
        statuses = await fire(client, fake_clock, 10)
        stats = client.statistics().buckets[BUCKET]
    assert 429 in statuses
    assert stats.corrected is None


async def test_a_rejection_with_nothing_taken_is_no_shape(fake_clock: FakeClock) -> None:
    """Told 5/s where the server takes 5 per 2 s: the rejected request had nothing
    taken in the period before it, so the rate, not the burst, is off: no correction
    (the pauses answer it)."""
    window: list[float] = []

    def reply(n: int, now: float) -> httpx.Response:
        window[:] = [t for t in window if now - t < 2.0]
        if len(window) >= 5:
            return httpx.Response(429)
        window.append(now)
        return httpx.Response(200)

    upstream = Upstream(fake_clock, reply, latency=0.002)
    async with make_client(fake_clock, upstream, rate=Rate(5, 1.0)) as client:
        await fire(client, fake_clock, 10)
        stats = client.statistics().buckets[BUCKET]
    assert stats.corrected is None


def test_a_loose_first_reading_of_a_reset_is_tightened_by_later_ones() -> None:
    """A fixed window whose reset (epoch, padded by a second) is read against a
    whole-second ``Date``: the first answer, 0.6 s into the server's second, reads
    the reset 0.6 s late; a later answer that states the same reset, with the
    server's clock known better by then, brings the learned window down with it."""
    from ratelimited_client._signals import ServerClock

    clock = ServerClock()
    server = WALL + 0.6  # the server's time at our t = 0
    reset = {"X-RateLimit-Limit": "100", "X-RateLimit-Reset": repr(WALL + 11.0)}
    feedback = ServerFeedback(
        configured_rate=None, learning=True, rng=random.Random(1), max_wait=300.0
    )
    for sent, remaining in ((0.0, 99), (0.49, 98)):
        received = sent + 0.01
        headers = {
            **reset,
            "X-RateLimit-Remaining": str(remaining),
            "Date": formatdate(math.floor(server + received), usegmt=True),
        }
        signal = parse_signal(200, headers, received_at=received, wall_now=0, server_clock=clock)
        feedback.on_admit(sent, 1.0)
        feedback.observe(signal, sent_at=sent, others_in_flight=0)
        assert feedback.learned_rate is not None
        if remaining == 99:
            assert feedback.learned_rate.period == pytest.approx(11.01)
    # The second reading: the server's clock known to 0.1 s; its window from the first
    # request's sending (0) to the reset as now read (10.5): 10.5 s, not 11.01 (the
    # truth, from the server's arrival, no earlier than 0: 10.4 s).
    assert feedback.learned_rate is not None
    assert feedback.learned_rate.period == pytest.approx(10.5)


def fixed_like(limit: int, window: float) -> Reply:
    """slowapi's fixed window on virtual time: it begins at the first request after the
    last one ended; the reset (epoch) a second late, the ``Date`` in whole seconds."""
    state = {"start": -math.inf, "count": 0}

    def reply(n: int, now: float) -> httpx.Response:
        if now >= state["start"] + window:
            state["start"], state["count"] = now, 0
        status = 429 if state["count"] >= limit else 200
        state["count"] += status == 200
        return httpx.Response(
            status,
            headers={
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": str(limit - state["count"]),
                "X-RateLimit-Reset": repr(WALL + state["start"] + window + 1.0),
                "Date": formatdate(math.floor(WALL + now), usegmt=True),
            },
        )

    return reply


async def test_a_long_window_read_from_padded_resets_is_searched_down(
    fake_clock: FakeClock,
) -> None:
    """A fixed window of 20 per 10 s whose reset says 11 s: not told, the client bursts
    (no window of pacing) and sends one early probe a window, between the reset and
    two seconds below it; taken, the learned window comes down toward 10 s."""
    upstream = Upstream(fake_clock, fixed_like(20, 10.0), latency=0.01)
    async with make_client(fake_clock, upstream) as client:
        statuses = await fire(client, fake_clock, 80)
        stats = client.statistics().buckets[BUCKET]
    assert statuses.count(429) <= 3
    learned = stats.learned_rate
    assert learned is not None
    assert learned.limit == 20
    assert 10.0 <= learned.period <= 10.5, learned
    # Bursts, not a window of pacing: the second window's probes (each taken lowers the
    # learned window), then the rest, all within a fraction of a second.
    second = sorted(upstream.sent)[20:40]
    assert 10.0 <= second[0] < second[-1] <= second[0] + 0.2


def test_a_further_429_under_a_learned_rate_keeps_four_fifths_of_it() -> None:
    """Learned from 429s alone: one request per 50 ms (nginx without a burst). A run
    of two successes a second apart, then a 429 (a request a hair early): the rate
    goes down to four fifths (one per 62.5 ms), not to what the run's length would
    say (one per two seconds, the pause included: a run of 300 took ten minutes)."""
    feedback = ServerFeedback(
        configured_rate=None, learning=True, rng=random.Random(1), max_wait=60.0
    )
    feedback._learned_rates["429"] = Rate(1, 0.05)
    feedback._run_start = 0.0
    for sent in (0.0, 1.0):
        feedback.on_admit(sent, 1.0)
        feedback._clean_answer(sent, sent + 0.01)
    feedback._learn_from_throttle(1.5, 1.0, 0, 1.5)
    assert feedback._learned_rates["429"] == Rate(1, 0.0625)
    # A burst learned the same way: four fifths of it, over the same window, however
    # few went in the run before the 429.
    feedback._learned_rates["429"] = Rate(20, 1.0)
    feedback._run_start = 2.0
    for sent in (2.0, 2.1, 2.2, 2.3, 2.4):
        feedback._clean_answer(sent, sent + 0.01)
    feedback._learn_from_throttle(9.0, 1.0, 0, 9.0)
    assert feedback._learned_rates["429"] == Rate(16, 1.0)
