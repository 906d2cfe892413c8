"""RetryPolicy on virtual time with seeded jitter: every rule of the retry layer."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest

from ratelimited_client import (
    ConfigurationError,
    DeadlineExceededError,
    Rate,
    RateLimitedClient,
    RetryAfterTooLongError,
    RetryEvent,
    RetryPolicy,
)
from ratelimited_client._retry import RetryBudget

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

    from ratelimited_client.testing import FakeClock

pytestmark = pytest.mark.anyio

Reply = "Callable[[int, httpx.Request], httpx.Response]"


class Upstream(httpx.AsyncBaseTransport):
    """Answers the n-th request with ``reply(n, request)`` (which may raise)."""

    def __init__(self, clock: FakeClock, reply: Callable[[int, httpx.Request], httpx.Response]):
        self.clock = clock
        self.reply = reply
        self.sent: list[float] = []
        self.keys: list[str | None] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(self.clock.now())
        self.keys.append(request.headers.get("Idempotency-Key"))
        await request.aread()
        return self.reply(len(self.sent), request)


def policy(**fields: Any) -> RetryPolicy:
    fields.setdefault("random", random.Random(7))
    return RetryPolicy(**fields)


def client_for(clock: FakeClock, upstream: Upstream, **options: Any) -> RateLimitedClient:
    return RateLimitedClient(
        base_url="http://api.test", transport=upstream, clock=clock, learn=False, **options
    )


async def call(clock: FakeClock, fn: Callable[[], Any]) -> Any:
    """Run one request while virtual time moves on until it is done."""
    result: dict[str, Any] = {}

    async def run() -> None:
        try:
            result["value"] = await fn()
        except Exception as exc:  # noqa: BLE001 - handed back to the test
            result["error"] = exc

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await clock.run_until_idle()
    if "error" in result:
        raise result["error"]
    return result["value"]


def status_sequence(*statuses: int, headers: dict[str, str] | None = None) -> Any:
    def reply(n: int, request: httpx.Request) -> httpx.Response:
        status = statuses[min(n, len(statuses)) - 1]
        return httpx.Response(status, headers=headers if status != 200 else None)

    return reply


# -- the policy value ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"attempts": 0}, "attempts"),
        ({"attempts": 1.5}, "attempts"),
        ({"backoff": -1}, "backoff"),
        ({"max_backoff": float("inf")}, "max_backoff"),
        ({"backoff": 5, "max_backoff": 1}, "max_backoff"),
        ({"jitter": "random"}, "jitter"),
        ({"statuses": {429, 700}}, "statuses"),
        ({"max_retry_after": float("nan")}, "max_retry_after"),
        ({"budget": -0.1}, "budget"),
        ({"budget_window": 0}, "budget_window"),
        ({"deadline": 0}, "deadline"),
        ({"random": 3}, "random"),
    ],
)
def test_invalid_policy_fails_naming_the_field(fields: dict[str, Any], name: str) -> None:
    """Every field is validated at construction."""
    with pytest.raises(ConfigurationError, match=name):
        RetryPolicy(**fields)


def test_policy_is_immutable_and_defaults_are_safe() -> None:
    """Frozen, hashable by value, with the documented defaults."""
    default = RetryPolicy()
    assert (default.attempts, default.jitter, default.max_retry_after) == (4, "full", 300.0)
    assert default.statuses == frozenset({408, 429, 502, 503, 504})
    assert RetryPolicy() == RetryPolicy()
    with pytest.raises(AttributeError):
        default.attempts = 9  # type: ignore[misc]


@pytest.mark.parametrize(
    ("jitter", "bounds"),
    [
        ("none", [(1, 1), (2, 2), (4, 4), (8, 8), (8, 8)]),
        ("full", [(0, 1), (0, 2), (0, 4), (0, 8), (0, 8)]),
        ("equal", [(0.5, 1), (1, 2), (2, 4), (4, 8), (4, 8)]),
    ],
)
def test_backoff_shapes(jitter: str, bounds: list[tuple[float, float]]) -> None:
    """Exponential from 1 s, capped at 8 s, jittered within the documented ranges."""
    rule = policy(backoff=1.0, max_backoff=8.0, jitter=jitter)
    for attempt, (low, high) in enumerate(bounds, start=1):
        for _ in range(50):
            assert low <= rule.backoff_for(attempt, 1.0) <= high


def test_decorrelated_jitter_and_seeded_randomness() -> None:
    """Decorrelated stays in [base, 3 x previous] under the cap; a seed repeats exactly."""
    rule = policy(backoff=1.0, max_backoff=10.0, jitter="decorrelated")
    previous = 1.0
    for attempt in range(1, 20):
        wait = rule.backoff_for(attempt, previous)
        assert 1.0 <= wait <= min(10.0, max(1.0, 3 * previous))
        previous = wait
    a = [policy(random=random.Random(1)).backoff_for(n, 1) for n in range(1, 6)]
    b = [policy(random=random.Random(1)).backoff_for(n, 1) for n in range(1, 6)]
    assert a == b


# -- the loop ------------------------------------------------------------------------------


async def test_retries_with_exponential_backoff_then_succeeds(fake_clock: FakeClock) -> None:
    """503, 503, 200 with 1 s base and no jitter: attempts at t = 0, 1, 3."""
    upstream = Upstream(fake_clock, status_sequence(503, 503, 200))
    async with client_for(fake_clock, upstream, retry=policy(backoff=1.0, jitter="none")) as c:
        response = await call(fake_clock, lambda: c.get("/x"))
    assert response.status_code == 200
    assert upstream.sent == [0.0, 1.0, 3.0]


async def test_gives_up_after_attempts_returning_the_last_response(fake_clock: FakeClock) -> None:
    """Four 503s: the fourth comes back to the caller, nothing raised."""
    events: list[RetryEvent] = []
    rule = policy(attempts=4, backoff=0.5, jitter="none", on_give_up=events.append)
    upstream = Upstream(fake_clock, status_sequence(503))
    async with client_for(fake_clock, upstream, retry=rule) as c:
        response = await call(fake_clock, lambda: c.get("/x"))
    assert response.status_code == 503
    assert len(upstream.sent) == 4
    assert events[-1].reason == "attempts exhausted"
    assert events[-1].attempt == 4


async def test_retry_after_wins_over_a_shorter_backoff(fake_clock: FakeClock) -> None:
    """429 with Retry-After: 5 and a 0.1 s backoff: the retry leaves at 5 s, not before."""
    seen: list[RetryEvent] = []
    rule = policy(backoff=0.1, on_retry=seen.append)
    upstream = Upstream(fake_clock, status_sequence(429, 200, headers={"Retry-After": "5"}))
    async with client_for(fake_clock, upstream, retry=rule) as c:
        response = await call(fake_clock, lambda: c.get("/x"))
    assert response.status_code == 200
    assert 5.0 <= upstream.sent[1] <= 5.6  # the bucket's release adds up to 10 % jitter
    assert seen[0].wait == pytest.approx(5.0)
    assert (seen[0].attempt, seen[0].status, seen[0].reason) == (1, 429, "status 429")


async def test_retry_after_beyond_the_cap_raises_without_sleeping(fake_clock: FakeClock) -> None:
    """Retry-After: 3600 with max_retry_after 60: RetryAfterTooLongError at once,
    and the next caller of the bucket fails fast too."""
    upstream = Upstream(fake_clock, status_sequence(429, headers={"Retry-After": "3600"}))
    rule = policy(max_retry_after=60.0)
    async with client_for(fake_clock, upstream, retry=rule) as c:
        with pytest.raises(RetryAfterTooLongError) as info:
            await c.get("/x")
        assert info.value.retry_after == 3600
        assert fake_clock.now() == 0.0
        with pytest.raises(RetryAfterTooLongError):
            await c.get("/y")
        assert c.statistics().in_flight == 0
    assert len(upstream.sent) == 1


@pytest.mark.parametrize(
    ("method", "status", "retried"),
    [
        ("GET", 503, True),
        ("PUT", 502, True),
        ("POST", 503, False),  # the server may have acted on it
        ("POST", 429, True),  # a 429 was not acted on
        ("PATCH", 504, False),
        ("GET", 404, False),
        ("GET", 500, False),
    ],
)
async def test_idempotency_rules_for_statuses(
    fake_clock: FakeClock, method: str, status: int, retried: bool
) -> None:
    """Non-idempotent methods are retried only on 429; others on the retryable statuses."""
    upstream = Upstream(fake_clock, status_sequence(status, 200))
    async with client_for(fake_clock, upstream, retry=policy(backoff=0.1)) as c:
        response = await call(fake_clock, lambda: c.request(method, "/x", content=b"{}"))
    assert (response.status_code == 200) is retried
    assert len(upstream.sent) == (2 if retried else 1)


def raising(error: type[Exception], times: int = 1) -> Any:
    def reply(n: int, request: httpx.Request) -> httpx.Response:
        if n <= times:
            raise error("boom", request=request)  # type: ignore[call-arg]
        return httpx.Response(200)

    return reply


@pytest.mark.parametrize(
    ("method", "error", "headers", "retried"),
    [
        ("POST", httpx.ConnectError, {}, True),  # never reached the server
        ("POST", httpx.ReadTimeout, {}, False),  # may have acted: not without a key
        ("POST", httpx.ReadTimeout, {"Idempotency-Key": "k1"}, True),
        ("GET", httpx.ReadTimeout, {}, True),
        ("GET", httpx.RemoteProtocolError, {}, True),  # a dropped connection
    ],
)
async def test_idempotency_rules_for_network_errors(
    fake_clock: FakeClock,
    method: str,
    error: type[Exception],
    headers: dict[str, str],
    retried: bool,
) -> None:
    """A POST after a read timeout is retried only with an idempotency key."""
    upstream = Upstream(fake_clock, raising(error))
    async with client_for(fake_clock, upstream, retry=policy(backoff=0.1)) as c:
        if retried:
            response = await call(fake_clock, lambda: c.request(method, "/x", headers=headers))
            assert response.status_code == 200
        else:
            with pytest.raises(error):
                await call(fake_clock, lambda: c.request(method, "/x", headers=headers))
    assert len(upstream.sent) == (2 if retried else 1)


async def test_automatic_idempotency_key_is_the_same_on_every_attempt(
    fake_clock: FakeClock,
) -> None:
    """auto_idempotency_key: a POST gets one key, repeated on its retry; GET gets none."""
    upstream = Upstream(fake_clock, raising(httpx.ReadTimeout))
    rule = policy(backoff=0.1, auto_idempotency_key=True)
    async with client_for(fake_clock, upstream, retry=rule) as c:
        await call(fake_clock, lambda: c.post("/x", json={"a": 1}))
        await call(fake_clock, lambda: c.get("/y"))
    first, second, third = upstream.keys
    assert first is not None
    assert first == second
    assert third is None


async def test_streaming_body_is_never_retried(fake_clock: FakeClock) -> None:
    """A body that cannot be replayed: the 503 comes straight back."""

    async def body() -> AsyncIterator[bytes]:
        yield b"chunk"

    upstream = Upstream(fake_clock, status_sequence(503, 200))
    async with client_for(fake_clock, upstream, retry=policy()) as c:
        response = await call(fake_clock, lambda: c.put("/x", content=body()))
    assert response.status_code == 503
    assert len(upstream.sent) == 1


@pytest.mark.parametrize(
    ("headers", "body", "status", "retried"),
    [
        ({"x-should-retry": "false"}, None, 503, False),
        ({"x-should-retry": "true"}, None, 500, True),
        ({"Stripe-Should-Retry": "true"}, None, 409, True),
        ({}, {"error": {"code": "insufficient_quota"}}, 429, False),
    ],
    ids=["server-says-no", "server-says-yes", "stripe-says-yes", "terminal-429"],
)
async def test_the_server_word_on_retrying_wins(
    fake_clock: FakeClock, headers: dict[str, str], body: Any, status: int, retried: bool
) -> None:
    """should-retry overrides the status rules; a terminal 429 is final."""

    def reply(n: int, request: httpx.Request) -> httpx.Response:
        if n == 1:
            return httpx.Response(status, headers=headers, json=body)
        return httpx.Response(200)

    upstream = Upstream(fake_clock, reply)
    async with client_for(fake_clock, upstream, retry=policy(backoff=0.1)) as c:
        response = await call(fake_clock, lambda: c.get("/x"))
    assert (response.status_code == 200) is retried


async def test_budget_caps_extra_load_on_a_failing_upstream(fake_clock: FakeClock) -> None:
    """A 100 % failing upstream: 200 calls send at most 20 % (+ the floor) more requests."""
    upstream = Upstream(fake_clock, status_sequence(503))
    rule = policy(attempts=4, backoff=0.01, budget=0.2, budget_floor=0.0, budget_window=1000.0)
    async with client_for(fake_clock, upstream, retry=rule) as c:
        for i in range(200):
            path = f"/{i}"
            await call(fake_clock, lambda: c.get(path))  # noqa: B023 - awaited at once
    extra = len(upstream.sent) - 200
    assert 0 < extra <= 40  # without the budget: 600
    assert extra == pytest.approx(40, abs=2)


def test_budget_forgets_requests_that_left_its_window() -> None:
    """A client that never retries does not keep every request it ever made: what is
    older than the window is dropped as new ones are recorded, and the budget it
    allows is still that of the window."""
    budget = RetryBudget(ratio=0.2, floor=0.0, window=10.0)
    for i in range(100_000):
        budget.record_request(i * 0.01)  # 100 a second for 1,000 s
    assert len(budget._requests) == 1000
    assert budget.left(999.99) == pytest.approx(0.2 * 1000)


async def test_budget_floor_allows_retries_when_traffic_is_low(fake_clock: FakeClock) -> None:
    """One lone call still gets its retries from the per-second floor."""
    upstream = Upstream(fake_clock, status_sequence(503, 503, 200))
    rule = policy(backoff=0.1, budget=0.0, budget_floor=1.0)
    async with client_for(fake_clock, upstream, retry=rule) as c:
        response = await call(fake_clock, lambda: c.get("/x"))
    assert response.status_code == 200


async def test_deadline_includes_waiting_in_the_throttle(fake_clock: FakeClock) -> None:
    """Rate 1 per 10 s and a 5 s deadline: the second call fails at once, sends nothing."""
    upstream = Upstream(fake_clock, status_sequence(200))
    rule = policy(deadline=5.0)
    async with client_for(fake_clock, upstream, retry=rule, rate=Rate(1, 10.0)) as c:
        await c.get("/first")
        with pytest.raises(DeadlineExceededError, match="next slot"):
            await c.get("/second")
        assert fake_clock.now() == 0.0
        assert c.statistics().queued == 0
    assert len(upstream.sent) == 1


async def test_deadline_stops_retrying_when_the_wait_cannot_fit(fake_clock: FakeClock) -> None:
    """503 with Retry-After: 8 and a 5 s deadline: no retry, the 503 is returned at once."""
    upstream = Upstream(fake_clock, status_sequence(503, 200, headers={"Retry-After": "8"}))
    events: list[RetryEvent] = []
    rule = policy(deadline=5.0, on_give_up=events.append)
    async with client_for(fake_clock, upstream, retry=rule) as c:
        response = await c.get("/x")  # no virtual time passes: it must not wait at all
    assert response.status_code == 503
    assert [e.reason for e in events] == ["deadline"]
    assert len(upstream.sent) == 1


async def test_deadline_cancels_a_call_that_runs_over(fake_clock: FakeClock) -> None:
    """A call whose attempts and waits pass the deadline ends with DeadlineExceededError."""

    class Slow(Upstream):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            self.sent.append(self.clock.now())
            await self.clock.sleep_until(self.clock.now() + 10.0)
            return httpx.Response(200)

    upstream = Slow(fake_clock, status_sequence(200))
    async with client_for(fake_clock, upstream, retry=policy(deadline=3.0)) as c:
        with pytest.raises(DeadlineExceededError, match="passed"):
            await call(fake_clock, lambda: c.get("/x"))
        assert fake_clock.now() == pytest.approx(3.0)
        assert c.statistics().in_flight == 0


async def test_cancelled_during_backoff_leaves_nothing_behind(fake_clock: FakeClock) -> None:
    """Cancel a call while it waits to retry: no retry is sent, every slot is back."""
    upstream = Upstream(fake_clock, status_sequence(503, 200))
    async with client_for(fake_clock, upstream, retry=policy(backoff=5, jitter="none")) as c:
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(c.get, "/x")
                await fake_clock.advance(1.0)
                scope.cancel()
        await fake_clock.advance(10.0)
        stats = c.statistics()
        assert (stats.in_flight, stats.queued) == (0, 0)
    assert len(upstream.sent) == 1


async def test_retried_responses_are_closed(fake_clock: FakeClock) -> None:
    """The 503 that is retried is closed, so max_concurrency=1 does not deadlock."""
    closed: list[bool] = []

    class Body(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b"busy"

        async def aclose(self) -> None:
            closed.append(True)

    def reply(n: int, request: httpx.Request) -> httpx.Response:
        return httpx.Response(503 if n == 1 else 200, stream=Body())

    upstream = Upstream(fake_clock, reply)
    async with client_for(fake_clock, upstream, retry=policy(backoff=0.1), max_concurrency=1) as c:
        response = await call(fake_clock, lambda: c.get("/x"))
    assert response.status_code == 200
    assert len(closed) >= 2


async def test_a_failing_hook_never_breaks_a_request(fake_clock: FakeClock) -> None:
    """on_retry that raises is logged; the call goes on."""

    def broken(event: RetryEvent) -> None:
        raise RuntimeError("metrics backend down")

    upstream = Upstream(fake_clock, status_sequence(503, 200))
    async with client_for(fake_clock, upstream, retry=policy(backoff=0.1, on_retry=broken)) as c:
        response = await call(fake_clock, lambda: c.get("/x"))
    assert response.status_code == 200


def test_a_sync_streaming_body_is_never_retried_either() -> None:
    """The sync client: a generator body (an iterator stream, no ``__aiter__``) was
    taken as replayable, and its retry sent an exhausted stream. Now the 503 comes
    straight back, sent once, its body whole."""
    from ratelimited_client import SyncRateLimitedClient

    received: list[bytes] = []

    def handle(request: httpx.Request) -> httpx.Response:
        received.append(request.read())
        return httpx.Response(503 if len(received) == 1 else 200)

    def body() -> Iterator[bytes]:
        yield b"chunk"

    with SyncRateLimitedClient(
        base_url="http://api.test",
        transport=httpx.MockTransport(handle),
        retry=RetryPolicy(attempts=3, backoff=0.01),
    ) as client:
        response = client.put("/x", content=body())
    assert response.status_code == 503
    assert received == [b"chunk"]


async def test_one_attempt_keeps_the_policys_deadline_and_wait_cap() -> None:
    """``RetryPolicy(attempts=1)`` retries nothing, but its deadline and its cap on a
    server's wait hold as for any policy (one attempt used to skip both)."""
    from ratelimited_client import DeadlineExceededError, RetryAfterTooLongError

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/banned":
            return httpx.Response(429, headers={"Retry-After": "3600"})
        return httpx.Response(200)

    policy = RetryPolicy(attempts=1, deadline=1.0, max_retry_after=60.0)
    async with RateLimitedClient(
        base_url="http://api.test",
        transport=httpx.MockTransport(handle),
        retry=policy,
        rate=Rate(1, 60.0),
        key=lambda request: request.url.path,
    ) as client:
        assert (await client.get("/a")).status_code == 200
        with anyio.fail_after(5), pytest.raises(DeadlineExceededError):
            await client.get("/a")  # its slot is a minute away; the deadline a second
        with anyio.fail_after(5), pytest.raises(RetryAfterTooLongError):
            await client.get("/banned")


def test_one_attempt_keeps_the_deadline_and_wait_cap_in_the_sync_client() -> None:
    from ratelimited_client import (
        DeadlineExceededError,
        RetryAfterTooLongError,
        SyncRateLimitedClient,
    )

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/banned":
            return httpx.Response(429, headers={"Retry-After": "3600"})
        return httpx.Response(200)

    with SyncRateLimitedClient(
        base_url="http://api.test",
        transport=httpx.MockTransport(handle),
        retry=RetryPolicy(attempts=1, deadline=1.0, max_retry_after=60.0),
        rate=Rate(1, 60.0),
        key=lambda request: request.url.path,
    ) as client:
        assert client.get("/a").status_code == 200
        with pytest.raises(DeadlineExceededError):
            client.get("/a")
        with pytest.raises(RetryAfterTooLongError):
            client.get("/banned")
