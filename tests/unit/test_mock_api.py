"""The mock upstream's limiter and stats, driven through ASGI with an injected clock."""

from __future__ import annotations

import json
import math

import httpx
import pytest

from ratelimited_client.testing import MockAPI, MockAPIConfig
from ratelimited_client.testing._mock_api import _DroppedConnection

pytestmark = pytest.mark.anyio


class Clock:
    """A settable clock for the app."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def client_for(app: MockAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mock")


async def hit(client: httpx.AsyncClient, clock: Clock, at: float) -> httpx.Response:
    clock.t = at
    return await client.get("/x")


async def test_fixed_windows_stay_aligned_to_the_first_arrival() -> None:
    """Window starts are computed from the first arrival (never summed up window by
    window, which drifts): over 300 windows of 0.1 s each admits exactly its limit."""
    clock = Clock()
    app = MockAPI(MockAPIConfig(limit=2, window=0.1, algorithm="fixed"), clock=clock)
    async with client_for(app) as client:
        statuses: list[int] = []
        for n in range(300):
            for offset in (0.0 if n == 0 else 0.001, 0.05, 0.098):
                statuses.append((await hit(client, clock, n * 0.1 + offset)).status_code)
    per_window = [statuses[i : i + 3] for i in range(0, len(statuses), 3)]
    assert per_window == [[200, 200, 429]] * 300


@pytest.mark.parametrize(
    ("algorithm", "times", "statuses", "retry_after"),
    [
        # sliding: 2 per 1 s, counted from each admitted arrival
        (
            "sliding",
            [0.0, 0.5, 0.9, 1.0, 1.2, 1.5],
            [200, 200, 429, 200, 429, 200],
            [None, None, "1", None, "1", None],
        ),
        # fixed: windows [0,1), [1,2): the boundary resets the count
        (
            "fixed",
            [0.0, 0.1, 0.2, 1.0, 1.1, 1.9],
            [200, 200, 429, 200, 200, 429],
            [None, None, "1", None, None, "1"],
        ),
        # token bucket: 2 tokens, 2 per second refill
        (
            "token_bucket",
            [0.0, 0.0, 0.0, 0.5, 0.5, 2.0],
            [200, 200, 429, 200, 429, 200],
            [None, None, "1", None, "1", None],
        ),
    ],
)
async def test_each_algorithm_admits_and_rejects_on_schedule(
    algorithm: str, times: list[float], statuses: list[int], retry_after: list[str | None]
) -> None:
    """Each server algorithm admits exactly what it should; 429s carry Retry-After."""
    clock = Clock()
    app = MockAPI(MockAPIConfig(limit=2, window=1.0, algorithm=algorithm), clock=clock)  # type: ignore[arg-type]
    async with client_for(app) as client:
        responses = [await hit(client, clock, t) for t in times]
    assert [r.status_code for r in responses] == statuses
    assert [r.headers.get("retry-after") for r in responses] == retry_after
    stats = app.stats()
    assert stats.received == len(times)
    assert stats.rejected == statuses.count(429)
    assert app.arrivals() == list(zip(times, statuses, strict=True))


async def test_429_body_gives_the_exact_wait() -> None:
    """The 429 body carries the precise wait; the header rounds it up to whole seconds."""
    clock = Clock()
    app = MockAPI(MockAPIConfig(limit=1, window=2.5), clock=clock)
    async with client_for(app) as client:
        await hit(client, clock, 0.0)
        rejected = await hit(client, clock, 0.25)
    assert rejected.json() == {"error": "rate_limited", "retry_after": pytest.approx(2.25)}
    assert rejected.headers["retry-after"] == "3"


async def test_retry_after_can_be_omitted() -> None:
    """retry_after=False: 429 without the header (a server that does not say)."""
    clock = Clock()
    app = MockAPI(MockAPIConfig(limit=1, retry_after=False), clock=clock)
    async with client_for(app) as client:
        await hit(client, clock, 0.0)
        rejected = await hit(client, clock, 0.1)
    assert rejected.status_code == 429
    assert "retry-after" not in rejected.headers


async def test_max_in_window_counts_half_open_windows() -> None:
    """Arrivals at 0, 0.5, 0.999, 1.0 (window 1): at most 3 fall in any [t, t+1)."""
    clock = Clock()
    app = MockAPI(MockAPIConfig(limit=100, window=1.0), clock=clock)
    async with client_for(app) as client:
        for t in (0.0, 0.5, 0.999, 1.0):
            await hit(client, clock, t)
    stats = app.stats()
    assert stats.max_received_in_window == 3
    assert stats.max_admitted_in_window == 3
    assert (stats.first_arrival, stats.last_arrival) == (0.0, 1.0)


async def test_received_max_counts_rejected_arrivals_too() -> None:
    """max_received_in_window sees every arrival; max_admitted only the admitted ones."""
    clock = Clock()
    app = MockAPI(MockAPIConfig(limit=2, window=1.0), clock=clock)
    async with client_for(app) as client:
        for _ in range(5):
            await hit(client, clock, 0.0)
    stats = app.stats()
    assert (stats.max_received_in_window, stats.max_admitted_in_window) == (5, 2)


async def test_stats_and_reset_routes() -> None:
    """GET /__stats reports as JSON and is not counted; POST /__reset clears everything."""
    clock = Clock()
    app = MockAPI(MockAPIConfig(limit=1, window=10.0), clock=clock)
    async with client_for(app) as client:
        await hit(client, clock, 0.0)
        await hit(client, clock, 1.0)
        stats = (await client.get("/__stats")).json()
        assert (stats["received"], stats["admitted"], stats["rejected"]) == (2, 1, 1)
        assert stats["algorithm"] == "sliding"
        assert (await client.post("/__reset")).status_code == 204
        assert (await hit(client, clock, 2.0)).status_code == 200  # limiter state cleared too
    assert app.stats().received == 1


async def test_request_bodies_are_drained_and_echoed_metadata_is_right() -> None:
    """A POST with a body is read fully and answered with its method and path."""
    app = MockAPI(MockAPIConfig(limit=5))
    async with client_for(app) as client:
        response = await client.post("/docs/7", content=b"x" * 100_000)
    assert response.json() == {"ok": True, "method": "POST", "path": "/docs/7", "n": 1}
    assert json.loads(response.content)["n"] == 1


async def test_lifespan_is_answered() -> None:
    """Startup and shutdown complete, so uvicorn's lifespan='on' works."""
    app = MockAPI()
    sent: list[dict[str, str]] = []
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, str]:
        return next(messages)

    async def send(message: dict[str, str]) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)  # type: ignore[arg-type]
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": True}, "limit"),
        ({"window": 0}, "window"),
        ({"window": float("nan")}, "window"),
        ({"algorithm": "leaky"}, "algorithm"),
        ({"latency": (0.2, 0.1)}, "latency"),
        ({"latency": (-1, 0)}, "latency"),
        ({"latency": 0.1}, "latency"),
    ],
)
def test_config_validation_names_the_option(options: dict[str, object], name: str) -> None:
    """Bad mock configuration fails at construction naming the option."""
    with pytest.raises(ValueError, match=name):
        MockAPIConfig(**options)  # type: ignore[arg-type]


async def test_penalty_mode_bans_after_repeated_rejections() -> None:
    """Limit 1/s, ban after 3 rejections in a window for 5 s: then everything is 429."""
    clock = Clock()
    app = MockAPI(MockAPIConfig(limit=1, window=1.0, penalty_after=3, penalty_for=5.0), clock=clock)
    async with client_for(app) as client:
        statuses = [(await hit(client, clock, t)).status_code for t in (0.0, 0.1, 0.2, 0.3)]
        assert statuses == [200, 429, 429, 429]  # the third rejection trips the ban
        banned = await hit(client, clock, 2.0)  # the window is free, but the client is banned
        assert banned.status_code == 429
        assert banned.headers["retry-after"] == "4"  # until 0.3 + 5
        assert (await hit(client, clock, 5.31)).status_code == 200
    stats = app.stats()
    assert (stats.penalties, stats.rejected_while_banned) == (1, 1)


async def test_injected_503s_come_with_and_without_retry_after() -> None:
    """fail_rate=1: every request is a 503, about half carrying Retry-After: 1."""
    app = MockAPI(MockAPIConfig(limit=100, fail_rate=1.0, seed=3))
    async with client_for(app) as client:
        responses = [await client.get("/x") for _ in range(40)]
    assert {r.status_code for r in responses} == {503}
    with_header = sum("retry-after" in r.headers for r in responses)
    assert 10 <= with_header <= 30
    assert app.stats().faults == 40
    assert app.stats().admitted == 0


async def test_injected_drops_cut_the_answer_mid_body() -> None:
    """drop_rate=1: the answer starts, then the connection is gone."""
    app = MockAPI(MockAPIConfig(limit=100, drop_rate=1.0))
    async with client_for(app) as client:
        with pytest.raises(_DroppedConnection):  # ASGITransport re-raises what uvicorn catches
            await client.get("/x")
    assert app.stats().faults == 1


async def test_documents_store_and_openapi_description() -> None:
    """The document service behind the limit, and its OpenAPI description outside it."""
    clock = Clock()
    app = MockAPI(MockAPIConfig(limit=100, window=1.0), clock=clock)
    async with client_for(app) as client:
        spec = (await client.get("/openapi.json")).json()
        created = await client.post("/documents", json={"title": "Q3", "body": "numbers"})
        bad = await client.post("/documents", json={"body": "no title"})
        listed = await client.get("/documents")
        one = await client.get("/documents/1")
        missing = await client.get("/documents/99")
    assert spec["openapi"].startswith("3.0")
    assert set(spec["paths"]) == {"/documents", "/documents/{document_id}"}
    assert created.status_code == 201
    assert created.json()["id"] == 1
    assert bad.status_code == 422
    assert listed.json()["count"] == 1
    assert one.json()["title"] == "Q3"
    assert missing.status_code == 404
    assert app.stats().received == 5  # the description is not counted


async def test_writes_have_their_own_stricter_window() -> None:
    clock = Clock()
    app = MockAPI(MockAPIConfig(limit=5, window=1.0, write_limit=2), clock=clock)
    async with client_for(app) as client:
        writes = [
            (await client.post("/documents", json={"title": "t"})).status_code for _ in range(3)
        ]
        reads = [(await client.get("/documents")).status_code for _ in range(6)]
    assert writes == [201, 201, 429]
    assert reads == [200] * 5 + [429]
    stats = app.stats()
    assert (stats.writes_received, stats.writes_rejected, stats.max_writes_in_window) == (3, 1, 3)
    assert stats.max_received_in_window == 6  # reads only
    assert (stats.received, stats.rejected) == (9, 2)
    with pytest.raises(ValueError, match="write_limit"):
        MockAPIConfig(write_limit=0)


async def test_the_model_vendors_endpoints_answer_what_their_sdks_require() -> None:
    """The fields the OpenAI and Anthropic SDKs require under strict validation, the
    model echoed; a body without a model is their 400; the quota's headers in the
    vendor's dialect."""
    app = MockAPI(MockAPIConfig(limit=10, window=1.0, dialect="anthropic"))
    async with client_for(app) as client:
        asked = {"model": "m-1", "messages": [{"role": "user", "content": "hi"}]}
        chat = (await client.post("/v1/chat/completions", json=asked)).json()
        assert chat["object"] == "chat.completion"
        assert chat["model"] == "m-1"
        assert chat["choices"][0]["message"]["role"] == "assistant"
        assert {"id", "created", "choices"} <= chat.keys()
        response = (await client.post("/v1/responses", json={"model": "m-1"})).json()
        assert response["object"] == "response"
        assert {"id", "created_at", "output", "parallel_tool_calls", "tool_choice", "tools"} <= (
            response.keys()
        )
        answer = await client.post("/v1/messages", json={**asked, "max_tokens": 8})
        message = answer.json()
        assert (message["type"], message["role"], message["model"]) == (
            "message",
            "assistant",
            "m-1",
        )
        # "hi": one token of prompt; a completion of 30-100 % of max_tokens (8).
        assert message["usage"]["input_tokens"] == 1
        assert 2 <= message["usage"]["output_tokens"] <= 8
        assert chat["usage"]["total_tokens"] == (
            chat["usage"]["prompt_tokens"] + chat["usage"]["completion_tokens"]
        )
        assert response["usage"]["total_tokens"] >= 2
        assert answer.headers["anthropic-ratelimit-requests-limit"] == "10"
        bad = await client.post("/v1/messages", content=b"{}")
        assert bad.status_code == 400
        assert bad.json()["error"]["type"] == "invalid_request_error"


def chat_call(prompt_chars: int, max_tokens: int) -> dict[str, object]:
    return {
        "model": "m-1",
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "x" * prompt_chars}],
    }


async def test_the_token_quota_reserves_prompt_and_max_tokens_and_charges_usage() -> None:
    """1,000 tokens a minute; each call asks 100 prompt tokens (400 characters) and
    at most 200 more: it goes while what the window used plus 300 fits, is charged
    its prompt and a completion of 30-100 % of 200, and past the quota gets a 429
    whose Retry-After is when enough tokens leave the window. The OpenAI token
    headers say the same; the window never holds more than 1,000."""
    clock = Clock()
    config = MockAPIConfig(limit=100, window=1.0, dialect="openai", model_tokens=1000, seed=3)
    app = MockAPI(config, clock=clock)
    async with client_for(app) as client:
        used: list[int] = []
        answers = []
        for i in range(6):
            clock.t = i * 0.5
            answer = await client.post("/v1/chat/completions", json=chat_call(400, 200))
            answers.append(answer)
            if answer.status_code == 200:
                used.append(answer.json()["usage"]["total_tokens"])
        statuses = [a.status_code for a in answers]
        admitted = statuses.count(200)
        assert statuses == [200] * admitted + [429] * (6 - admitted)
        assert all(160 <= tokens <= 300 for tokens in used)
        assert sum(used) + 300 > 1000 >= sum(used[:-1]) + 300
        last = answers[admitted - 1]
        assert last.headers["x-ratelimit-limit-tokens"] == "1000"
        assert last.headers["x-ratelimit-remaining-tokens"] == str(1000 - sum(used))
        rejected = answers[admitted]
        # The first call's tokens leave the window at 60 s; it was 0.5 s * admitted ago.
        wait = rejected.json()["retry_after"]
        assert wait == pytest.approx(60.0 - admitted * 0.5)
        assert rejected.headers["retry-after"] == str(math.ceil(wait))
        clock.t = 60.0 + 0.01  # the first call's tokens have left the window
        assert (
            await client.post("/v1/chat/completions", json=chat_call(400, 200))
        ).status_code == 200
        stats = (await client.get("/__stats")).json()
    assert stats["model_tokens_rejected"] == 6 - admitted
    assert stats["max_model_tokens_in_window"] <= 1000
    assert stats["model_tokens_used"] >= sum(used)


async def test_a_call_bigger_than_the_token_quota_is_refused_for_good() -> None:
    app = MockAPI(MockAPIConfig(limit=10, window=1.0, dialect="anthropic", model_tokens=100))
    async with client_for(app) as client:
        answer = await client.post("/v1/messages", json=chat_call(40, 500))
        assert answer.status_code == 400
        assert answer.json()["error"]["type"] == "invalid_request_error"
        assert answer.headers["anthropic-ratelimit-tokens-limit"] == "100"
        small = await client.post("/v1/messages", json=chat_call(40, 50))
        assert small.status_code == 200
        assert int(small.headers["anthropic-ratelimit-tokens-remaining"]) == 100 - (
            small.json()["usage"]["input_tokens"] + small.json()["usage"]["output_tokens"]
        )


@pytest.mark.parametrize(
    ("options", "name"),
    [({"model_tokens": 0}, "model_tokens"), ({"model_tokens_window": 0.0}, "model_tokens_window")],
)
def test_token_quota_options_are_checked(options: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=f"^{name} must be"):
        MockAPIConfig(**options)  # type: ignore[arg-type]
