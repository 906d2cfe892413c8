"""Quotas in two currencies: requests and tokens. A model call reserves its estimated
tokens before it goes and settles to the usage its answer reports.

The ledger's arithmetic on given times; the meter's estimates and usage readings;
the client end to end over ``respx`` on a virtual clock (asyncio and trio) and the
blocking client; a property test that admitted units never exceed the limit."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import pytest
import respx
from hypothesis import given, settings
from hypothesis import strategies as st

from ratelimited_client import (
    UNITS_EXTENSION,
    ConfigurationError,
    Hooks,
    ModelTokens,
    PrometheusMetrics,
    RateLimitedClient,
    SyncRateLimitedClient,
    UnitsSettled,
    UnitsTooLargeError,
)
from ratelimited_client._signals import QuotaState
from ratelimited_client._throttle._units import BucketUnits, UnitLedger
from ratelimited_client.testing import virtual_time

API = "https://api.test"
CHAT = "/v1/chat/completions"


# -- the ledger, on given times ---------------------------------------------------------


def test_an_over_estimate_comes_back_at_the_answer_and_an_under_estimate_is_charged() -> None:
    ledger = UnitLedger("tokens", 1000.0, 60.0, configured=True)
    over = ledger.reserve(600)
    under = ledger.reserve(300)
    assert ledger.used(0.0) == 900
    assert ledger.wait_time(0.0, 200) == math.inf  # the rest is held by requests in flight
    ledger.settle(over, 250, at=1.0)  # 350 back at once
    assert ledger.used(1.0) == 550
    assert ledger.wait_time(1.0, 450) == 0.0
    ledger.settle(under, 420, at=2.0)  # 120 more than reserved: charged
    assert ledger.used(2.0) == 670
    assert (ledger.reserved_total, ledger.settled_total) == (900, 670)
    # A second settle of the same reservation changes nothing.
    ledger.settle(over, 0, at=3.0)
    assert ledger.used(3.0) == 670


def test_units_are_dated_at_the_answer_and_expire_one_window_later() -> None:
    ledger = UnitLedger("tokens", 1000.0, 60.0, configured=True)
    first = ledger.reserve(800)
    # Answered 5 s later (the window moved meanwhile): counted from the answer, not the send.
    ledger.settle(first, 700, at=5.0)
    assert ledger.wait_time(10.0, 400) == pytest.approx(55.0)  # until 5 + 60
    assert ledger.used(64.9) == 700
    assert ledger.used(65.0) == 0
    assert ledger.wait_time(65.0, 1000) == 0.0


def test_settles_in_any_order_keep_the_dates_in_order() -> None:
    ledger = UnitLedger("tokens", 1000.0, 10.0, configured=True)
    a, b, c = ledger.reserve(300), ledger.reserve(300), ledger.reserve(300)
    ledger.settle(c, 100, at=2.0)
    ledger.settle(a, 200, at=1.5)  # told later than c, at an earlier reading: dated with c
    ledger.settle(b, 300, at=3.0)
    assert ledger.used(3.0) == 600
    assert ledger.used(12.0) == 300  # c and a expired at 12; b at 13
    assert ledger.used(13.0) == 0


def test_a_failed_attempt_keeps_its_estimate_and_a_refusal_frees_it() -> None:
    ledger = UnitLedger("tokens", 1000.0, 60.0, configured=True)
    kept, refused = ledger.reserve(400), ledger.reserve(400)
    ledger.settle(kept, None, at=1.0)  # no usage known: the estimate stays
    ledger.settle(refused, 0.0, at=1.0)
    assert ledger.used(1.0) == 400
    assert ledger.settled_total == 400


def test_the_servers_remaining_adds_what_someone_else_spent() -> None:
    ledger = UnitLedger("tokens", 1000.0, 60.0, configured=True)
    ledger.settle(ledger.reserve(300), 300, at=1.0)
    in_flight = ledger.reserve(200)
    # Alone: the server counts at most what the ledger does, and reports at least the room.
    assert ledger.correct(600, now=2.0) == 0.0
    assert ledger.correct(500, now=2.0) == 0.0
    # 350 less than the ledger allows: another client spent them.
    assert ledger.correct(150, now=2.0) == pytest.approx(350)
    assert ledger.used(2.0) == pytest.approx(850)
    ledger.settle(in_flight, 200, at=3.0)
    assert ledger.used(62.0) == pytest.approx(200)  # the others' 350 expired at 62


def test_a_learned_limit_takes_the_minute_or_a_longer_refill() -> None:
    ledger = UnitLedger("tokens", None, 60.0, configured=False)
    assert ledger.wait_time(0.0, 10**9) == 0.0  # no limit known: counted, never waits
    quota = QuotaState(
        name="tokens", dialect="openai", unit="tokens", limit=60000, remaining=59000,
        reset_at=0.6, reset_kind="full_refill",
    )  # fmt: skip
    assert ledger.learn(quota, now=0.0)
    assert (ledger.limit, ledger.window) == (60000.0, 60.0)
    daily = QuotaState(
        name="tokens", dialect="openai", unit="tokens", limit=60000, remaining=0,
        reset_at=3600.0, reset_kind="full_refill",
    )  # fmt: skip
    assert ledger.learn(daily, now=0.0)
    assert ledger.window == 3600.0  # a refill further than a minute: a longer window
    configured = UnitLedger("tokens", 500.0, 10.0, configured=True)
    assert not configured.learn(quota, now=0.0)
    assert (configured.limit, configured.window) == (500.0, 10.0)


def test_a_request_that_can_never_fit_fails_naming_the_quota() -> None:
    units = BucketUnits({})
    units.check("bucket", {"tokens": 10**9})  # no limit known yet: nothing to compare
    units.ledgers["tokens"] = UnitLedger("tokens", 60000.0, 60.0, configured=True)
    with pytest.raises(UnitsTooLargeError, match=r"70000 tokens.*60000 tokens per 60 s") as e:
        units.check("bucket", {"tokens": 70000})
    assert (e.value.unit, e.value.amount, e.value.limit) == ("tokens", 70000, 60000)
    assert isinstance(e.value, ValueError)


# -- the property: admitted units never exceed the limit ---------------------------------

_STEP = st.one_of(
    st.tuples(st.just("send"), st.integers(1, 400), st.floats(0.0, 1.0)),
    st.tuples(st.just("answer"), st.integers(0, 50), st.floats(0.0, 1.0)),
    st.tuples(st.just("wait"), st.floats(0.0, 30.0), st.just(0.0)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_STEP, max_size=80), st.integers(1, 4))
def test_units_in_any_window_never_exceed_the_limit(steps: list[Any], servers: int) -> None:
    """Requests go only when the ledger says so, answers settle to at most the estimate
    (a completion never passes its ``max_tokens``), in any order, with corrections
    from the server's count. Counted as the server counts them, at the sending: in
    any window, the units used never pass the limit."""
    limit, window = 1000.0, 10.0
    ledger = UnitLedger("tokens", limit, window, configured=True)
    now = 0.0
    flying: list[tuple[Any, float, float]] = []  # (reservation, sent at, actual use)
    sent: list[tuple[float, float]] = []  # as the server counts: (sent at, used)
    for kind, amount, share in steps:
        if kind == "wait":
            now += amount
        elif kind == "send":
            if ledger.wait_time(now, amount) > 0:
                continue  # the throttle would make it wait
            used = math.floor(amount * share)
            flying.append((ledger.reserve(amount), now, used))
        elif flying:
            reservation, at, used = flying.pop(amount % len(flying))
            sent.append((at, used))
            ledger.settle(reservation, used, now)
            # The server's word with the answer (its count by sending times).
            counted = sum(u for t, u in sent if now - window < t <= now)
            if servers > 1:
                ledger.correct(limit - counted, now)
        for t, _ in sent:
            in_window = sum(u for s, u in sent if t - window < s <= t)
            assert in_window <= limit


# -- the meter ------------------------------------------------------------------------


def _chat(body: dict[str, Any], path: str = CHAT) -> httpx.Request:
    return httpx.Request("POST", API + path, json=body)


def _tokens(meter: ModelTokens, request: httpx.Request, unit: str) -> float | None:
    return (meter.estimate(request) or {}).get(unit)


def test_the_default_meter_estimates_openai_and_anthropic_calls() -> None:
    meter = ModelTokens()
    chat = {"model": "m", "messages": [{"role": "user", "content": "x" * 401}], "max_tokens": 50}
    assert meter.estimate(_chat(chat)) == {
        "tokens": 101 + 50,
        "input_tokens": 101,
        "output_tokens": 50,
    }
    parts = {
        "model": "claude",
        "system": "s" * 40,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "y" * 80}]}],
        "max_tokens": 200,
    }
    assert meter.estimate(_chat(parts, "/v1/messages")) == {
        "tokens": 30 + 200,
        "input_tokens": 30,
        "output_tokens": 200,
    }
    responses = {"model": "m", "input": "z" * 8, "max_output_tokens": 7, "n": 1}
    assert _tokens(meter, _chat(responses, "/v1/responses"), "tokens") == 2 + 7
    # Two choices generate twice; no max_tokens: the documented default.
    twice = {"messages": [{"content": "abcd"}], "max_completion_tokens": 10, "n": 2}
    assert _tokens(meter, _chat(twice), "output_tokens") == 20
    assert _tokens(ModelTokens(default_max_tokens=64), _chat({"messages": []}), "tokens") == 65
    assert meter.estimate(_chat({"input": "a" * 12}, "/v1/embeddings")) == {
        "tokens": 3,
        "input_tokens": 3,
    }
    # Not a model call, not JSON, not a POST: nothing.
    assert meter.estimate(_chat(chat, "/v1/models")) is None
    assert meter.estimate(httpx.Request("POST", API + CHAT, content=b"not json")) is None
    assert meter.estimate(httpx.Request("GET", API + CHAT)) is None


def test_the_default_meter_reads_usage_from_answers_and_streams() -> None:
    meter = ModelTokens()
    openai = {"usage": {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42}}
    assert meter.usage([openai]) == {"input_tokens": 12, "output_tokens": 30, "tokens": 42}
    # Anthropic's stream: input at the start, output (cumulative) at the end.
    start = {"type": "message_start", "message": {"usage": {"input_tokens": 9, "output_tokens": 1}}}
    delta = {"type": "message_delta", "usage": {"output_tokens": 17}}
    assert meter.usage([start, delta]) == {"input_tokens": 9, "output_tokens": 17, "tokens": 26}
    cached = {"usage": {"input_tokens": 5, "cache_creation_input_tokens": 100, "output_tokens": 1}}
    assert (meter.usage([cached]) or {}).get("input_tokens") == 105
    assert meter.usage([{"id": "x"}]) is None
    assert meter.usage([{"usage": {"prompt_tokens": "many"}}]) is None


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"chars_per_token": 0}, "chars_per_token"),
        ({"chars_per_token": float("nan")}, "chars_per_token"),
        ({"default_max_tokens": -1}, "default_max_tokens"),
        ({"default_max_tokens": 1.5}, "default_max_tokens"),
    ],
)
def test_the_meters_options_are_checked(options: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigurationError, match=f"^{name} must be"):
        ModelTokens(**options)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"unit_rates": {"tokens": (60000, 60)}}, r"unit_rates\['tokens'\]"),
        ({"unit_rates": {"requests": "5/s"}}, "unit_rates keys"),
        ({"unit_rates": {"tokens": ["1/s", "2/s"]}}, "must be one rate"),
        ({"unit_rates": "60000/minute"}, "unit_rates must map"),
        ({"meter": object()}, "^meter must have"),
    ],
)
def test_unit_options_fail_at_construction_naming_the_option(
    options: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        RateLimitedClient(**options)


# -- the client, end to end -------------------------------------------------------------


def _answer(prompt: int, completion: int, **headers: str) -> httpx.Response:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion}
    return httpx.Response(200, json={"usage": usage}, headers=headers)


def _ask(chars: int, max_tokens: int) -> dict[str, Any]:
    return {"model": "m", "messages": [{"content": "x" * chars}], "max_tokens": max_tokens}


class _Settled(Hooks):
    def __init__(self) -> None:
        self.events: list[UnitsSettled] = []

    def on_units_settled(self, event: UnitsSettled) -> None:
        self.events.append(event)


@pytest.mark.anyio
async def test_calls_wait_for_the_tokens_their_estimates_need() -> None:
    """1,000 tokens a minute, calls one after the other of 400 estimated (100 prompt
    + 300 max) that use 250: the first three find room (each answer gives back 150),
    the fourth finds 750 used and waits until the first answer's tokens expire, a
    minute after that answer."""
    settled = _Settled()
    with respx.mock(base_url=API) as api, virtual_time() as vt:
        api.post(CHAT).mock(side_effect=lambda request: _answer(100, 150))
        async with RateLimitedClient(
            base_url=API, unit_rates={"tokens": "1000/minute"}, metrics=settled
        ) as client:
            for _ in range(4):
                await client.post(CHAT, json=_ask(400, 300))
            stats = client.statistics().buckets[f"{API}:443"].units["tokens"]
    times = [sent.at for sent in vt.sent]
    assert times[:3] == [0.0, 0.0, 0.0]
    assert times[3] == pytest.approx(60.0)
    assert (stats.limit, stats.reserved, stats.settled) == (1000.0, 1600.0, 1000.0)
    assert [(e.unit, e.reserved, e.settled) for e in settled.events if e.unit == "tokens"] == [
        ("tokens", 400.0, 250.0)
    ] * 4


@pytest.mark.anyio
async def test_the_limit_is_learned_from_openai_headers_when_none_is_told() -> None:
    headers = {
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "750",
        "x-ratelimit-reset-tokens": "15s",
    }
    with respx.mock(base_url=API) as api, virtual_time() as vt:
        api.post(CHAT).mock(side_effect=lambda request: _answer(100, 150, **headers))
        async with RateLimitedClient(base_url=API) as client:
            for _ in range(5):
                await client.post(CHAT, json=_ask(400, 300))
            stats = client.statistics().buckets[f"{API}:443"].units["tokens"]
    assert (stats.limit, stats.window, stats.learned) == (1000.0, 60.0, True)
    # Learned at the first answer: the 4th and 5th wait for tokens to expire.
    assert [sent.at for sent in vt.sent][:3] == [0.0, 0.0, 0.0]
    assert [sent.at for sent in vt.sent][3] == pytest.approx(60.0)


@pytest.mark.anyio
async def test_anthropics_input_and_output_limits_are_learned_and_both_hold() -> None:
    """Anthropic states input and output tokens apart: each becomes a limit of its own.
    Calls of 100 input and 300 output tokens estimated, using 100 and 250: the output
    limit of 800 binds first (250 + 250 + 300 fit, the next 300 do not)."""
    reset = "2026-11-28T00:01:00Z"
    headers = {
        "anthropic-ratelimit-input-tokens-limit": "5000",
        "anthropic-ratelimit-input-tokens-remaining": "4900",
        "anthropic-ratelimit-input-tokens-reset": reset,
        "anthropic-ratelimit-output-tokens-limit": "800",
        "anthropic-ratelimit-output-tokens-remaining": "550",
        "anthropic-ratelimit-output-tokens-reset": reset,
        "date": "Sat, 28 Nov 2026 00:00:00 GMT",
    }
    usage = {"usage": {"input_tokens": 100, "output_tokens": 250}}
    with respx.mock(base_url=API) as api, virtual_time() as vt:
        api.post("/v1/messages").mock(
            side_effect=lambda request: httpx.Response(200, json=usage, headers=headers)
        )
        async with RateLimitedClient(base_url=API) as client:
            for _ in range(4):
                await client.post("/v1/messages", json=_ask(400, 300))
            units = client.statistics().buckets[f"{API}:443"].units
    assert (units["input_tokens"].limit, units["output_tokens"].limit) == (5000, 800)
    assert units["tokens"].limit is None  # not stated: counted, never waited for
    assert [sent.at for sent in vt.sent] == [0.0, 0.0, 0.0, pytest.approx(60.0)]


@pytest.mark.anyio
async def test_a_request_too_big_for_the_quota_fails_before_it_is_sent() -> None:
    with respx.mock(base_url=API, assert_all_called=False) as api, virtual_time():
        route = api.post(CHAT).mock(return_value=_answer(1, 1))
        async with RateLimitedClient(base_url=API, unit_rates={"tokens": "1000/minute"}) as c:
            with pytest.raises(UnitsTooLargeError, match="1100 tokens"):
                await c.post(CHAT, json=_ask(400, 1000))
    assert route.call_count == 0


@pytest.mark.anyio
async def test_a_refused_call_gives_its_tokens_back_and_a_failed_one_keeps_them() -> None:
    with respx.mock(base_url=API) as api, virtual_time():
        api.post(CHAT).mock(
            side_effect=[
                httpx.Response(400, json={"error": "bad"}),
                httpx.Response(500, json={"error": "oops"}),
            ]
        )
        async with RateLimitedClient(
            base_url=API, unit_rates={"tokens": "1000/minute"}, retry=None
        ) as client:
            await client.post(CHAT, json=_ask(400, 300))
            await client.post(CHAT, json=_ask(400, 300))
            stats = client.statistics().buckets[f"{API}:443"].units["tokens"]
    assert (stats.reserved, stats.settled, stats.used) == (800.0, 400.0, 400.0)


def _events(*events: dict[str, Any], done: bool = True) -> bytes:
    lines = [b"data: " + json.dumps(event).encode() + b"\n\n" for event in events]
    return b"".join(lines) + (b"data: [DONE]\n\n" if done else b"")


async def _chunks(body: bytes, size: int = 7) -> Any:
    for at in range(0, len(body), size):
        yield body[at : at + size]


@pytest.mark.anyio
async def test_a_streamed_answer_settles_at_its_last_usage_event_an_early_close_keeps_it() -> None:
    chunk = {"choices": [{"delta": {"content": "hi"}}]}
    usage = {"choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 20}}
    body = _events(chunk, chunk, usage)
    sse = {"content-type": "text/event-stream"}
    with respx.mock(base_url=API) as api, virtual_time():
        api.post(CHAT).mock(
            side_effect=lambda request: httpx.Response(200, headers=sse, stream=_Stream(body))
        )
        async with RateLimitedClient(base_url=API, unit_rates={"tokens": "1000/minute"}) as c:
            ask = {**_ask(400, 300), "stream": True}
            async with c.stream("POST", CHAT, json=ask) as response:
                held = c.statistics().buckets[f"{API}:443"].units["tokens"]
                assert held.in_flight == 400  # held until the stream ends
                async for _ in response.aiter_bytes():
                    pass
            done = c.statistics().buckets[f"{API}:443"].units["tokens"]
            async with c.stream("POST", CHAT, json=ask):
                pass  # closed before the usage came: the estimate stays
            early = c.statistics().buckets[f"{API}:443"].units["tokens"]
    assert (done.in_flight, done.used, done.settled) == (0.0, 120.0, 120.0)
    assert (early.in_flight, early.used, early.settled) == (0.0, 520.0, 520.0)


class _Stream(httpx.AsyncByteStream):
    def __init__(self, body: bytes) -> None:
        self._body = body

    async def __aiter__(self) -> Any:
        async for chunk in _chunks(self._body):
            yield chunk


@pytest.mark.anyio
async def test_a_requests_own_units_win_over_the_meter_and_get_prometheus_metrics() -> None:
    metrics = PrometheusMetrics()
    with respx.mock(base_url=API) as api, virtual_time():
        api.post("/jobs").mock(return_value=httpx.Response(200, json={"usage": {}}))
        api.post(CHAT).mock(side_effect=lambda request: _answer(10, 5))
        async with RateLimitedClient(
            base_url=API, unit_rates={"tokens": "1000/minute"}, metrics=metrics
        ) as client:
            await client.post("/jobs", extensions={UNITS_EXTENSION: {"tokens": 50}})
            await client.post(CHAT, json=_ask(40, 20))
            text = metrics.render().decode()
            with pytest.raises(ValueError, match="'tokens' must be a finite number"):
                await client.post("/jobs", extensions={UNITS_EXTENSION: {"tokens": -1}})
    bucket = f'bucket="{API}:443",unit="tokens"'
    assert f"ratelimited_client_units_reserved_total{{{bucket}}} 80.0" in text
    assert f"ratelimited_client_units_settled_total{{{bucket}}} 65.0" in text
    assert f"ratelimited_client_unit_limit{{{bucket}}} 1000.0" in text
    assert f"ratelimited_client_unit_headroom{{{bucket}}} 935.0" in text


def test_the_blocking_client_settles_a_stream_at_its_end() -> None:
    usage = {"type": "message_delta", "usage": {"output_tokens": 20}}
    start = {"type": "message_start", "message": {"usage": {"input_tokens": 100}}}
    body = _events(start, usage, done=False)
    sse = {"content-type": "text/event-stream"}
    with respx.mock(base_url=API) as api:
        api.post("/v1/messages").mock(
            side_effect=lambda request: httpx.Response(200, headers=sse, stream=_SyncStream(body))
        )
        with SyncRateLimitedClient(base_url=API, unit_rates={"tokens": "1000/minute"}) as c:
            with c.stream("POST", "/v1/messages", json=_ask(400, 300)) as response:
                for _ in response.iter_bytes():
                    pass
            stats = c.statistics().buckets[f"{API}:443"].units
    assert (stats["tokens"].reserved, stats["tokens"].settled) == (400, 120)
    assert (stats["input_tokens"].settled, stats["output_tokens"].settled) == (100, 20)


class _SyncStream(httpx.SyncByteStream):
    def __init__(self, body: bytes) -> None:
        self._body = body

    def __iter__(self) -> Any:
        for at in range(0, len(self._body), 5):
            yield self._body[at : at + 5]


def test_the_blocking_client_reserves_and_settles_the_same() -> None:
    with respx.mock(base_url=API) as api:
        api.post(CHAT).mock(
            side_effect=[_answer(100, 150), httpx.Response(429, json={"error": "slow down"})]
        )
        with SyncRateLimitedClient(
            base_url=API, unit_rates={"tokens": "1000/minute"}, retry=None
        ) as client:
            client.post(CHAT, json=_ask(400, 300))
            client.post(CHAT, json=_ask(400, 300))  # refused: nothing used
            with pytest.raises(UnitsTooLargeError):
                client.post(CHAT, json=_ask(400, 2000))
            stats = client.statistics().buckets[f"{API}:443"].units["tokens"]
    assert (stats.reserved, stats.settled, stats.used) == (800.0, 250.0, 250.0)
