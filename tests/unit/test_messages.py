"""What a user reads: messages and reprs that say what happened and what to change."""

from __future__ import annotations

import re

import httpx
import httpx2
import pytest

import ratelimited_client.httpx2
from ratelimited_client import (
    ConfigurationError,
    DeadlineExceededError,
    QueueFullError,
    Rate,
    RateLimitedClient,
    RetryAfterTooLongError,
    RetryPolicy,
    SyncRateLimitedClient,
)


def test_statuses_take_any_set_of_error_statuses() -> None:
    """A plain set type-checks (``mypy --strict`` runs over this file) and is kept as
    a frozenset; a success status, a non-status or a bare number is refused, naming
    what is wrong."""
    assert RetryPolicy(statuses={429, 503}).statuses == frozenset({429, 503})
    assert hash(RetryPolicy(statuses={429})) == hash(RetryPolicy(statuses=frozenset({429})))
    with pytest.raises(ConfigurationError, match=r"error statuses \(400-599\), got 200 in"):
        RetryPolicy(statuses={200, 429})
    with pytest.raises(ConfigurationError, match="got 302"):
        RetryPolicy(statuses=[302])  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="a set of HTTP error statuses, got 429"):
        RetryPolicy(statuses=429)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [(5, 1), (5, 1.5)])
def test_a_rate_as_a_tuple_is_refused_with_the_spelling_that_works(
    value: tuple[float, float],
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        RateLimitedClient(rate=value)  # type: ignore[arg-type]
    limit, period = value
    assert f"Rate({limit}, {period!r})" in str(raised.value)
    assert f"'{limit}/{period:g}s'" in str(raised.value)
    assert Rate.parse(f"{limit}/{period:g}s") == Rate(int(limit), period)


def test_counts_are_spelt_for_one_and_for_many() -> None:
    assert str(QueueFullError(max_queued=1, queued=1)).startswith("1 request is already")
    assert str(QueueFullError(max_queued=5, queued=5)).startswith("5 requests are already")


def test_a_wait_too_long_names_the_setting_that_allows_it() -> None:
    message = str(RetryAfterTooLongError(retry_after=3600.0, limit=300.0))
    assert "3600.0 s" in message
    assert "300 s allowed" in message
    assert "RetryPolicy(max_retry_after=...)" in message


def test_a_learned_period_reads_as_a_measurement() -> None:
    assert repr(Rate(20, 1.0400832210000033)) == "Rate(limit=20, period=1.04008)"
    assert Rate(20, 1.0400832210000033).period == 1.0400832210000033  # the value is whole


def test_a_client_says_where_it_sends() -> None:
    assert repr(RateLimitedClient(base_url="http://127.0.0.1:8080")).startswith(
        "<RateLimitedClient base_url='http://127.0.0.1:8080' <Throttle"
    )
    assert repr(RateLimitedClient()).startswith("<RateLimitedClient <Throttle")
    with SyncRateLimitedClient(base_url="http://127.0.0.1:1/v1/") as sync:
        assert "base_url='http://127.0.0.1:1/v1/'" in repr(sync)
    other = ratelimited_client.httpx2.RateLimitedClient(base_url=httpx2.URL("http://127.0.0.1:2"))
    assert "base_url='http://127.0.0.1:2'" in repr(other)


def test_a_deadline_error_states_the_deadline_as_configured() -> None:
    """A wait the throttle knows will outlast the call's deadline fails at once; the
    error gives the deadline configured (0.5 s), not the time left when it was
    found (0.499847 s), and is the public class itself."""
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    with SyncRateLimitedClient(
        base_url="http://127.0.0.1:1",
        transport=transport,
        rate=Rate(1, 60.0),
        retry=RetryPolicy(deadline=0.5),
    ) as client:
        client.get("/a")
        with pytest.raises(DeadlineExceededError) as raised:
            client.get("/b")
    assert type(raised.value) is DeadlineExceededError
    assert raised.value.deadline == 0.5
    # The slot is 60 s after the first request's answer, a moment before this one.
    assert re.match(
        r"deadline of 0\.5 s: the throttle's next slot is (59\.9\d\d|60\.000) s away",
        str(raised.value),
    ), str(raised.value)


@pytest.mark.anyio
async def test_the_async_client_states_it_the_same_way() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    async with RateLimitedClient(
        base_url="http://127.0.0.1:1",
        transport=transport,
        rate=Rate(1, 60.0),
        retry=RetryPolicy(deadline=0.5),
    ) as client:
        await client.get("/a")
        with pytest.raises(DeadlineExceededError) as raised:
            await client.get("/b")
    assert type(raised.value) is DeadlineExceededError
    assert raised.value.deadline == 0.5
