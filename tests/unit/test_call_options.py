"""Per-call options: validated like every option, carried in ``extensions``, and one
call's settings without a second client (the same quota, budget and hooks)."""

from __future__ import annotations

import anyio
import httpx
import pytest
import respx

from ratelimited_client import (
    CALL_EXTENSION,
    CallOptions,
    ConfigurationError,
    DeadlineExceededError,
    Rate,
    RateLimitedClient,
    RetryPolicy,
    SyncRateLimitedClient,
    call_options,
)
from ratelimited_client.testing import virtual_time

API = "https://api.test"


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"attempts": 0}, "attempts"),
        ({"attempts": 2.5}, "attempts"),
        ({"attempts": True}, "attempts"),
        ({"deadline": 0}, "deadline"),
        ({"deadline": float("inf")}, "deadline"),
        ({"queue_wait": -1.0}, "queue_wait"),
        ({"queue_wait": "1"}, "queue_wait"),
    ],
)
def test_invalid_options_fail_naming_the_field(fields: dict[str, object], name: str) -> None:
    with pytest.raises(ConfigurationError, match=f"^{name} must be"):
        CallOptions(**fields)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=f"^{name} must be"):
        RateLimitedClient().with_options(**fields)  # type: ignore[arg-type]


def test_the_helper_and_the_view_carry_the_same_options() -> None:
    assert call_options(deadline=2.0) == {CALL_EXTENSION: CallOptions(deadline=2.0)}
    view = RateLimitedClient().with_options(attempts=1).with_options(queue_wait=0.5)
    assert view.call_options == CallOptions(attempts=1, queue_wait=0.5)
    # The policy of a call: the client's, with the call's attempts and deadline.
    base = RetryPolicy(attempts=5, backoff=0.2)
    policy = CallOptions(attempts=2, deadline=3.0).policy(base)
    assert policy is not None
    assert (policy.attempts, policy.deadline, policy.backoff) == (2, 3.0, 0.2)
    assert CallOptions(queue_wait=1.0).policy(base) is base
    assert CallOptions(queue_wait=1.0).policy(None) is None


@pytest.mark.anyio
async def test_one_call_gets_its_attempts_through_extensions_others_keep_the_clients() -> None:
    with respx.mock(base_url=API) as api:
        route = api.get("/x").mock(return_value=httpx.Response(503))
        with virtual_time():
            async with RateLimitedClient(
                base_url=API, retry=RetryPolicy(attempts=4, budget=1.0)
            ) as client:
                once = await client.get("/x", extensions=call_options(attempts=1))
                assert route.call_count == 1
                default = await client.get("/x")
                assert route.call_count == 1 + 4
    assert (once.status_code, default.status_code) == (503, 503)


@pytest.mark.anyio
async def test_a_clients_other_extensions_travel_beside_the_calls_options() -> None:
    """The view adds its options to the ``extensions`` a call passes (a cost here);
    a client with no retries at all still takes a call's attempts."""
    with respx.mock(base_url=API) as api:
        route = api.get("/x").mock(
            side_effect=[httpx.Response(503), httpx.Response(503), httpx.Response(200)]
        )
        with virtual_time():
            async with RateLimitedClient(
                base_url=API, retry=None, rate=Rate(100, 3600.0)
            ) as client:
                view = client.with_options(attempts=3)
                answer = await view.get("/x", extensions={"ratelimit_cost": 2})
                assert client.statistics().buckets["https://api.test:443"].used == 6.0
    assert answer.status_code == 200
    assert route.call_count == 3


@pytest.mark.anyio
async def test_a_queued_call_past_its_queue_wait_takes_nothing() -> None:
    """One connection slot, held by an answer that does not come: the second call,
    with ``queue_wait=0.2``, leaves the queue after 0.2 s (real time: nothing sleeps on
    a clock while it waits), nothing taken; the held call goes on."""
    release = anyio.Event()

    async def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/slow":
            await release.wait()
        return httpx.Response(200)

    transport = httpx.MockTransport(answer)
    async with RateLimitedClient(base_url=API, transport=transport, max_concurrency=1) as client:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.get, "/slow")
            await anyio.wait_all_tasks_blocked()
            with anyio.fail_after(10), pytest.raises(DeadlineExceededError, match="queue_wait"):
                await client.with_options(queue_wait=0.2).get("/x")
            stats = client.statistics()
            assert (stats.admitted, stats.queued, stats.in_flight) == (1, 0, 1)
            release.set()
        assert (await client.get("/x")).status_code == 200
        assert client.statistics().admitted == 2


@pytest.mark.anyio
async def test_a_wait_known_to_outlast_the_queue_wait_fails_at_once() -> None:
    """The quota's next slot a minute away and ``queue_wait=5``: no waiting for
    nothing (virtual time does not move); the next call on the default settings waits
    its turn."""
    with respx.mock(base_url=API) as api, virtual_time() as vt:
        api.get("/x").mock(return_value=httpx.Response(200))
        async with RateLimitedClient(base_url=API, rate=Rate(1, 60.0)) as client:
            await client.get("/x")
            with pytest.raises(DeadlineExceededError, match="queue_wait=5 s"):
                await client.get("/x", extensions=call_options(queue_wait=5.0))
            assert vt.now == 0.0
            assert client.statistics().admitted == 1
            await client.get("/x")
    assert [sent.at for sent in vt.sent] == [0.0, 60.0]


def test_the_sync_client_leaves_the_queue_at_its_queue_wait() -> None:
    """Threads keep real time: the second call gives up after 0.2 s of the minute it
    would have waited."""
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    with SyncRateLimitedClient(base_url=API, transport=transport, rate=Rate(1, 60.0)) as client:
        client.get("/x")
        with pytest.raises(DeadlineExceededError, match=r"queue_wait=0\.2 s"):
            client.with_options(queue_wait=0.2).get("/x")
        stats = client.statistics()
        assert (stats.admitted, stats.queued) == (1, 0)
