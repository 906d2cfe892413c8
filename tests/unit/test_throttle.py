"""The throttle through RateLimitedClient, on virtual time (FakeClock), asyncio and trio."""

from __future__ import annotations

import functools
import itertools
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest

from ratelimited_client import (
    QueueFullError,
    Rate,
    RateLimitedClient,
    TokenBucket,
)
from ratelimited_client.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Coroutine

    Call = Callable[[], Coroutine[Any, Any, Any]]

pytestmark = pytest.mark.anyio


class Upstream(httpx.AsyncBaseTransport):
    """Records when each request reached it; can hold responses until released."""

    def __init__(self, clock: FakeClock, *, hold: bool = False) -> None:
        self.clock = clock
        self.hold = hold
        self.sent: list[tuple[float, str]] = []
        self.gates: dict[str, anyio.Event] = {}
        self.fail: set[str] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        name = f"{request.url.host}{request.url.path}"
        self.sent.append((self.clock.now(), name))
        if name in self.fail:
            raise httpx.ConnectError("refused", request=request)
        if self.hold:
            gate = self.gates[name] = anyio.Event()
            await gate.wait()
        if request.url.path == "/big":
            return httpx.Response(200, content=self._chunks())
        return httpx.Response(200, json={"path": name})

    @staticmethod
    async def _chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"x" * 10

    def times(self) -> list[float]:
        return [t for t, _ in self.sent]

    def names(self) -> list[str]:
        return [n for _, n in self.sent]


def make_client(clock: FakeClock, upstream: Upstream, **options: Any) -> RateLimitedClient:
    options.setdefault("retry", None)  # these tests watch the throttle, not the retries
    return RateLimitedClient(base_url="http://api.test", transport=upstream, clock=clock, **options)


async def start_in_order(tg: anyio.abc.TaskGroup, calls: list[Call]) -> None:
    """Start each call and let it block before starting the next, so arrival order is known."""
    for call in calls:
        tg.start_soon(call)
        await anyio.wait_all_tasks_blocked()


def gets(client: httpx.AsyncClient, paths: list[str]) -> list[Call]:
    def call(path: str) -> Call:
        return lambda: client.get(path)

    return [call(p) for p in paths]


async def test_bursts_use_the_whole_quota_then_wait_a_period(fake_clock: FakeClock) -> None:
    """Rate(3, 1 s), 8 requests: three at once, three a period later, in arrival order."""
    upstream = Upstream(fake_clock)
    async with make_client(fake_clock, upstream, rate=Rate(3, 1.0)) as client:
        async with anyio.create_task_group() as tg:
            await start_in_order(tg, gets(client, [f"/{i}" for i in range(8)]))
            await fake_clock.run_until_idle()
    assert upstream.names() == [f"api.test/{i}" for i in range(8)]
    expected = [0, 0, 0, 1, 1, 1, 2, 2]
    assert upstream.times() == pytest.approx(expected)
    stats = client.statistics()
    assert (stats.in_flight, stats.queued, stats.admitted) == (0, 0, 8)


async def test_latency_proof_bursts_start_a_period_after_the_responses(
    fake_clock: FakeClock,
) -> None:
    """latency_proof: a slot counts until its response arrived, then a whole period.
    (No slow start: both go at once, as configured, while no answer is in.)"""
    upstream = Upstream(fake_clock, hold=True)
    client = make_client(
        fake_clock, upstream, rate=Rate(2, 1.0), latency_proof=True, slow_start=False
    )
    async with client:
        async with anyio.create_task_group() as tg:
            await start_in_order(tg, gets(client, ["/a", "/b", "/c", "/d"]))
            assert upstream.names() == ["api.test/a", "api.test/b"]
            await fake_clock.advance(5.0)  # responses not in yet: nothing else may go
            assert len(upstream.sent) == 2
            upstream.gates["api.test/a"].set()
            await fake_clock.advance(0.5)
            upstream.gates["api.test/b"].set()
            await fake_clock.advance(1.0)  # t = 6.5: a's slot free since 6.0
            assert upstream.sent[2][1] == "api.test/c"
            assert upstream.sent[2][0] == pytest.approx(6.0)
            await fake_clock.advance(0.5)
            assert upstream.sent[3][1] == "api.test/d"
            assert upstream.sent[3][0] == pytest.approx(6.5)
            for gate in upstream.gates.values():
                gate.set()


async def test_default_mode_dates_each_slot_at_its_response(fake_clock: FakeClock) -> None:
    """A slow request (say, it opened a connection) may have reached the server late:
    its slot is counted from its response, not from when it was sent."""
    upstream = Upstream(fake_clock, hold=True)
    async with make_client(fake_clock, upstream, rate=Rate(2, 1.0)) as client:
        async with anyio.create_task_group() as tg:
            await start_in_order(tg, gets(client, ["/fast", "/slow", "/c", "/d"]))
            upstream.gates["api.test/fast"].set()  # answered at once
            await fake_clock.advance(0.3)
            upstream.gates["api.test/slow"].set()  # answered at 0.3: may have arrived then
            await fake_clock.advance(0.0)
            upstream.hold = False
            await fake_clock.run_until_idle()
    assert upstream.times() == pytest.approx([0, 0, 1, 1.3])


async def test_cancelled_waiter_frees_its_place_and_consumes_nothing(
    fake_clock: FakeClock,
) -> None:
    """Cancelling a queued request: it is never sent, and the next one takes its turn."""
    upstream = Upstream(fake_clock)
    async with make_client(fake_clock, upstream, rate=Rate(1, 1.0)) as client:
        scopes = {name: anyio.CancelScope() for name in "abcd"}

        def call(name: str) -> Call:
            async def run() -> None:
                with scopes[name]:
                    await client.get(f"/{name}")

            return run

        async with anyio.create_task_group() as tg:
            await start_in_order(tg, [call(n) for n in "abcd"])
            assert client.statistics().queued == 3
            scopes["c"].cancel()
            await anyio.wait_all_tasks_blocked()
            assert client.statistics().queued == 2
            await fake_clock.run_until_idle()
    assert upstream.names() == ["api.test/a", "api.test/b", "api.test/d"]
    assert upstream.times() == pytest.approx([0, 1, 2])
    stats = client.statistics()
    assert (stats.queued, stats.in_flight, stats.admitted) == (0, 0, 3)


async def test_cancelling_the_sleeping_head_passes_the_turn_on(fake_clock: FakeClock) -> None:
    """The head (the one sleeping on the timer) is cancelled: the next goes at its time."""
    upstream = Upstream(fake_clock)
    async with make_client(fake_clock, upstream, rate=Rate(1, 1.0)) as client:
        head = anyio.CancelScope()

        async def cancelled_head() -> None:
            with head:
                await client.get("/head")

        async with anyio.create_task_group() as tg:
            await start_in_order(
                tg, [lambda: client.get("/first"), cancelled_head, lambda: client.get("/next")]
            )
            await fake_clock.advance(0.5)
            head.cancel()
            await fake_clock.run_until_idle()
    assert upstream.names() == ["api.test/first", "api.test/next"]
    assert upstream.times() == pytest.approx([0, 1])


async def test_max_queued_refuses_at_once_and_queues_nothing(fake_clock: FakeClock) -> None:
    """With max_queued=2 the fourth concurrent request fails at once; none is lost."""
    upstream = Upstream(fake_clock)
    async with make_client(fake_clock, upstream, rate=Rate(1, 1.0), max_queued=2) as client:
        async with anyio.create_task_group() as tg:
            await start_in_order(tg, gets(client, ["/a", "/b", "/c"]))
            with pytest.raises(QueueFullError, match=r"max_queued=2") as info:
                await client.get("/d")
            assert (info.value.max_queued, info.value.queued) == (2, 2)
            stats = client.statistics()
            assert (stats.queued, stats.rejected) == (2, 1)
            await fake_clock.run_until_idle()
    assert upstream.names() == ["api.test/a", "api.test/b", "api.test/c"]


async def test_max_queued_zero_allows_only_immediate_requests(fake_clock: FakeClock) -> None:
    """max_queued=0: a request either goes now or is refused."""
    upstream = Upstream(fake_clock)
    async with make_client(fake_clock, upstream, rate=Rate(2, 1.0), max_queued=0) as client:
        await client.get("/a")
        await client.get("/b")
        with pytest.raises(QueueFullError):
            await client.get("/c")
        await fake_clock.advance(1.0)
        await client.get("/c")
    assert upstream.names() == ["api.test/a", "api.test/b", "api.test/c"]


async def test_max_concurrency_caps_in_flight_and_serves_in_order(
    fake_clock: FakeClock,
) -> None:
    """Two slots, five requests across two hosts: two in flight, the rest FIFO."""
    upstream = Upstream(fake_clock, hold=True)
    async with RateLimitedClient(
        transport=upstream, clock=fake_clock, max_concurrency=2, learn=False
    ) as client:
        urls = ["http://a.test/1", "http://b.test/2", "http://a.test/3", "http://b.test/4"]
        async with anyio.create_task_group() as tg:
            await start_in_order(tg, gets(client, [*urls, "http://a.test/5"]))
            assert upstream.names() == ["a.test/1", "b.test/2"]
            stats = client.statistics()
            assert (stats.in_flight, stats.queued) == (2, 3)
            upstream.gates["b.test/2"].set()
            await anyio.wait_all_tasks_blocked()
            assert upstream.names()[-1] == "a.test/3"
            for name in ("a.test/1", "a.test/3", "b.test/4", "a.test/5"):
                upstream.gates[name].set()  # one slot at a time: the next in line goes
                await anyio.wait_all_tasks_blocked()
    assert upstream.names() == ["a.test/1", "b.test/2", "a.test/3", "b.test/4", "a.test/5"]
    assert client.statistics().in_flight == 0


async def test_streamed_response_holds_its_slot_until_closed(fake_clock: FakeClock) -> None:
    """max_concurrency counts a streamed response until it is closed."""
    upstream = Upstream(fake_clock)
    async with make_client(fake_clock, upstream, max_concurrency=1, learn=False) as client:
        async with client.stream("GET", "/big") as response:
            assert response.status_code == 200
            assert client.statistics().in_flight == 1
            with anyio.move_on_after(0.05):  # real seconds: the slot is really taken
                await client.get("/blocked")
            assert len(upstream.sent) == 1
        assert client.statistics().in_flight == 0
        await client.get("/after")
    assert upstream.names() == ["api.test/big", "api.test/after"]


async def test_cancelled_in_flight_request_frees_every_slot(fake_clock: FakeClock) -> None:
    """Cancelling an in-flight request gives back concurrency and dates its quota slot."""
    upstream = Upstream(fake_clock, hold=True)
    async with make_client(
        fake_clock, upstream, rate=Rate(1, 1.0), max_concurrency=1, latency_proof=True
    ) as client:
        scope = anyio.CancelScope()

        async def doomed() -> None:
            with scope:
                await client.get("/doomed")

        async with anyio.create_task_group() as tg:
            await start_in_order(tg, [doomed, lambda: client.get("/next")])
            await fake_clock.advance(0.2)
            scope.cancel()
            await anyio.wait_all_tasks_blocked()
            assert client.statistics().in_flight == 0
            upstream.hold = False
            await fake_clock.run_until_idle()
    assert upstream.names() == ["api.test/doomed", "api.test/next"]
    assert upstream.times() == pytest.approx([0.0, 1.2])


async def test_transport_errors_release_their_slots(fake_clock: FakeClock) -> None:
    """A request that fails in the transport leaves nothing held; the error passes through."""
    upstream = Upstream(fake_clock)
    upstream.fail.add("api.test/down")
    async with make_client(fake_clock, upstream, rate=Rate(5, 1.0), max_concurrency=1) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/down")
        stats = client.statistics()
        assert (stats.in_flight, stats.queued) == (0, 0)
        assert stats.buckets["http://api.test:80"].used == 1  # the attempt still counted
        await client.get("/up")


async def test_costs_are_charged_from_request_extensions(fake_clock: FakeClock) -> None:
    """ratelimit_cost=3 twice under 5 per second: the second waits for room."""
    upstream = Upstream(fake_clock)
    async with make_client(fake_clock, upstream, rate=Rate(5, 1.0)) as client:

        def costly(path: str) -> Call:
            return lambda: client.get(path, extensions={"ratelimit_cost": 3})

        async with anyio.create_task_group() as tg:
            await start_in_order(tg, [costly("/x"), costly("/y"), lambda: client.get("/z")])
            await fake_clock.run_until_idle()
    # /z (cost 1) waits behind /y: FIFO, no overtaking even when it would fit.
    assert upstream.times() == pytest.approx([0, 1, 1])


@pytest.mark.parametrize("cost", [0, -1, float("nan"), float("inf"), "3", True])
async def test_invalid_cost_is_a_clear_error(fake_clock: FakeClock, cost: object) -> None:
    """A nonsensical cost names the extension and sends nothing."""
    upstream = Upstream(fake_clock)
    async with make_client(fake_clock, upstream, rate=Rate(5, 1.0)) as client:
        with pytest.raises(ValueError, match="ratelimit_cost"):
            await client.get("/x", extensions={"ratelimit_cost": cost})
    assert upstream.sent == []


async def test_cost_above_the_quota_is_refused_not_queued_forever(fake_clock: FakeClock) -> None:
    """A cost no window could ever hold fails at once."""
    upstream = Upstream(fake_clock)
    async with make_client(fake_clock, upstream, rate=[Rate(10, 1.0), Rate(4, 1.0)]) as client:
        with pytest.raises(ValueError, match="exceeds"):
            await client.get("/x", extensions={"ratelimit_cost": 5})
        assert client.statistics().queued == 0


async def test_buckets_are_per_origin_and_overridable(fake_clock: FakeClock) -> None:
    """Each origin has its own quota; a ratelimit_key extension or key function regroups."""
    upstream = Upstream(fake_clock)
    async with RateLimitedClient(transport=upstream, clock=fake_clock, rate=Rate(1, 1.0)) as client:
        await client.get("http://a.test/1")
        await client.get("https://a.test/2")
        await client.get("http://b.test/3")
        assert upstream.times() == [0, 0, 0]
        assert set(client.statistics().buckets) == {
            "http://a.test:80",
            "https://a.test:443",
            "http://b.test:80",
        }
        async with anyio.create_task_group() as tg:
            for host in ("c", "d"):
                url = f"http://{host}.test/"
                tg.start_soon(functools.partial(client.get, url, extensions={"ratelimit_key": "k"}))
            await fake_clock.run_until_idle()
    assert sorted(upstream.times()[3:]) == pytest.approx([0, 1])


async def test_key_function_maps_requests_to_buckets(fake_clock: FakeClock) -> None:
    """A key function can put every /search call in its own bucket."""
    upstream = Upstream(fake_clock)

    def by_route(request: httpx.Request) -> str:
        return "search" if request.url.path.startswith("/search") else "core"

    async with make_client(fake_clock, upstream, rate=Rate(1, 1.0), key=by_route) as client:
        await client.get("/search/a")
        await client.get("/docs/1")
        assert set(client.statistics().buckets) == {"search", "core"}
    assert upstream.times() == [0, 0]


async def test_token_bucket_spaces_requests_after_its_burst(fake_clock: FakeClock) -> None:
    """TokenBucket(2/s, burst 2) through the client: two at once, then one per half second."""
    upstream = Upstream(fake_clock)
    async with make_client(fake_clock, upstream, rate=TokenBucket(Rate(2, 1.0), burst=2)) as client:
        async with anyio.create_task_group() as tg:
            await start_in_order(tg, gets(client, [f"/{i}" for i in range(5)]))
            await fake_clock.run_until_idle()
    times = upstream.times()
    assert times[:2] == [0, 0]
    assert [b - a for a, b in itertools.pairwise(times[1:])] == pytest.approx([0.5] * 3)


async def test_idle_buckets_are_forgotten(fake_clock: FakeClock) -> None:
    """Per-key state does not grow without bound: idle buckets are swept."""
    upstream = Upstream(fake_clock)
    async with make_client(
        fake_clock, upstream, rate=Rate(1, 1.0), key=lambda r: r.url.path
    ) as client:
        for i in range(600):
            await client.get(f"/{i}")
            if i % 100 == 99:
                await fake_clock.advance(2.0)
        assert len(client.statistics().buckets) <= 300
    assert len(upstream.sent) == 600


async def test_no_limits_means_no_waiting(fake_clock: FakeClock) -> None:
    """rate=None, learn=False and no caps: requests go straight through."""
    upstream = Upstream(fake_clock)
    async with make_client(fake_clock, upstream, learn=False) as client:
        for i in range(50):
            await client.get(f"/{i}")
        assert client.statistics().buckets["http://api.test:80"].used == 0
    assert upstream.times() == [0] * 50


def test_one_throttle_serves_asyncio_then_trio() -> None:
    """State carries across event loops: the quota used on asyncio still binds on trio."""
    clock = FakeClock()
    upstream = Upstream(clock)
    client = RateLimitedClient(
        base_url="http://api.test",
        transport=upstream,
        clock=clock,
        rate=Rate(2, 10.0),
        max_queued=0,
    )

    async def two() -> None:
        await client.get("/1")

    anyio.run(two, backend="asyncio")
    anyio.run(two, backend="trio")

    async def third() -> None:
        with pytest.raises(QueueFullError):
            await client.get("/3")

    anyio.run(third, backend="trio")
    assert upstream.names() == ["api.test/1", "api.test/1"]


async def test_a_failure_telling_the_shared_backend_returns_the_slot() -> None:
    """After an answer the shared backend is told (re-date, pauses, learned rate); if
    that is cancelled or fails for another reason than the backend being away, the
    slot and the connection still go back."""
    closed: list[bool] = []

    class Body(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b"x" * 100_000

        async def aclose(self) -> None:
            closed.append(True)

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Body())

    async with RateLimitedClient(
        base_url="http://api.test", transport=httpx.MockTransport(handle), retry=None
    ) as client:
        throttle = client._shared.throttle
        await client.get("/first")  # the bucket, made while no backend is set
        closed.clear()

        async def broken(permit: object, pauses: object) -> None:
            raise RuntimeError("backend bug")

        throttle.backend = object()  # type: ignore[assignment]  # only its presence is read
        throttle.after_answer = broken  # type: ignore[attr-defined]
        with pytest.raises(RuntimeError, match="backend bug"):
            await client.get("/x")
        assert client.statistics().in_flight == 0
        assert closed == [True]
