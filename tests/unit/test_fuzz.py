"""Property tests over everything a user or a server can hand the library.

* ``Rate.parse`` and the rate types take any text or object: a valid rate or a
  ``ValueError``/``TypeError``, nothing else, and a valid rate is finite.
* Every option of the transports and of ``RetryPolicy`` takes any value: the
  object is built, or construction fails with ``ConfigurationError`` (a
  ``ValueError``) or ``TypeError`` — never later, never anything else.
* Whatever a response said, the wait the bucket computes afterwards is finite,
  non-negative and within its cap (``max_wait`` plus the jitter of a pause).
  (Header parsing alone is fuzzed in ``test_signal_fuzz.py``.)
"""

from __future__ import annotations

import math
import random
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratelimited_client import (
    ConfigurationError,
    Rate,
    RateLimitedTransport,
    RetryPolicy,
    SlidingWindow,
    SyncRateLimitedTransport,
    TokenBucket,
)
from ratelimited_client._feedback import ServerFeedback
from ratelimited_client._signals import parse_signal

ANYTHING: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["10/second", "5/2s", "100/minute", "1/h", "0/s", "-1/s", "1e309/s", "x/y"]),
    st.lists(st.sampled_from(["10/s", "nope", 3, None]), max_size=3),
    st.dictionaries(st.sampled_from(["writes", 1]), st.sampled_from(["1/s", 0, "bad"])),
    st.builds(object),
    st.builds(RetryPolicy),
    st.builds(lambda: Rate(3, 1.0)),
)


RATE_TEXT = st.from_regex(r"\s*-?[0-9.e+]{0,8}\s*/\s*[0-9.]{0,4}\s*[a-z]{0,7}")


@given(text=st.text(max_size=40) | RATE_TEXT)
def test_rate_parse_gives_a_finite_rate_or_a_value_error(text: str) -> None:
    try:
        rate = Rate.parse(text)
    except ValueError:
        return
    assert rate.limit > 0
    assert math.isfinite(rate.period)
    assert rate.period > 0
    assert math.isfinite(rate.per_second)
    assert rate.per_second > 0


@given(limit=ANYTHING, period=ANYTHING, burst=ANYTHING)
def test_rate_types_refuse_bad_values_with_value_or_type_errors(
    limit: Any, period: Any, burst: Any
) -> None:
    try:
        rate = Rate(limit, period)
    except (ValueError, TypeError):
        return
    assert math.isfinite(rate.per_second)
    assert rate.per_second > 0
    for build in (lambda: SlidingWindow(rate), lambda: TokenBucket(rate, burst=burst)):
        try:
            build()
        except (ValueError, TypeError):
            pass


OPTIONS = [
    "rate",
    "bucket_rates",
    "max_concurrency",
    "max_queued",
    "key",
    "latency_proof",
    "retry",
    "learn",
    "dialects",
    "metrics",
    "clock",
    "backend",
]


@settings(max_examples=300)
@given(name=st.sampled_from(OPTIONS), value=ANYTHING, sync=st.booleans())
def test_every_option_is_checked_at_construction(name: str, value: Any, sync: bool) -> None:
    cls = SyncRateLimitedTransport if sync else RateLimitedTransport
    try:
        transport: Any = cls(**{name: value})
    except ConfigurationError as error:
        message = str(error)
    except TypeError:
        return
    else:
        assert transport.statistics().in_flight == 0
        return
    assert name in message


RETRY_FIELDS = [
    "attempts",
    "backoff",
    "max_backoff",
    "jitter",
    "statuses",
    "retry_network_errors",
    "max_retry_after",
    "budget",
    "budget_floor",
    "budget_window",
    "deadline",
    "idempotency_header",
    "auto_idempotency_key",
]


@given(name=st.sampled_from(RETRY_FIELDS), value=ANYTHING)
def test_every_retry_option_is_checked_at_construction(name: str, value: Any) -> None:
    try:
        policy = RetryPolicy(**{name: value})
    except ConfigurationError as error:
        assert_names(error, name)
        return
    except TypeError:
        return
    for attempt in range(1, 6):
        wait = policy.backoff_for(attempt, policy.backoff)
        assert math.isfinite(wait)
        assert 0.0 <= wait <= policy.max_backoff


def assert_names(error: ConfigurationError, name: str) -> None:
    assert name in str(error)


HEADER_NAMES = st.sampled_from(
    [
        "retry-after",
        "ratelimit",
        "ratelimit-policy",
        "ratelimit-reset",
        "ratelimit-remaining",
        "ratelimit-limit",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "x-ratelimit-reset-after",
        "x-rate-limit-reset",
        "date",
    ]
)
HEADER_VALUES = st.one_of(
    st.sampled_from(
        ["0", "-1", "1e308", "nan", "inf", "5", "0.5", "99999999999", "Thu, 01 Jan 1970"]
    ),
    st.sampled_from(['"q";r=0;t=1e9', '"q";q=0;w=-5', "limit=0, remaining=0, reset=1e400"]),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=25),
)


@settings(max_examples=300)
@given(
    answers=st.lists(
        st.tuples(
            st.sampled_from([200, 429, 503]),
            st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=5),
            st.floats(min_value=0.0, max_value=5.0),
        ),
        min_size=1,
        max_size=6,
    ),
    learning=st.booleans(),
    max_wait=st.sampled_from([1.0, 60.0, 300.0]),
    later=st.floats(min_value=0.0, max_value=1000.0),
)
def test_no_answer_makes_a_bucket_wait_wrongly(
    answers: list[tuple[int, list[tuple[str, str]], float]],
    learning: bool,
    max_wait: float,
    later: float,
) -> None:
    feedback = ServerFeedback(
        configured_rate=None if learning else Rate(10, 1.0),
        learning=learning,
        rng=random.Random(0),
        max_wait=max_wait,
    )
    now = 1000.0
    for status, headers, gap in answers:
        now += gap
        signal = parse_signal(
            status,
            httpx.Headers([(n, v) for n, v in headers]),
            received_at=now,
            wall_now=1.7e9,
            max_wait=max_wait,
        )
        feedback.observe(signal, sent_at=now - 0.01, others_in_flight=0)
        for at in (now, now + later):
            wait = feedback.wait_time(at, 1.0, 0)
            assert not math.isnan(wait)
            assert wait >= 0.0
            if feedback.too_long_until > at:
                continue  # the throttle refuses with RetryAfterTooLongError, never waits
            # A pause is at most max_wait, plus its jitter (at most a quarter more); a
            # rate learned from the server paces at most one of its periods apart.
            learned = feedback.learned_rate
            cap = max(max_wait * 1.25, learned.period * 1.1 if learned is not None else 0.0)
            assert wait <= cap + 1e-9, (wait, status, headers, learned)
    assert feedback.pause_until < math.inf


def test_fuzz_strategies_reach_both_outcomes() -> None:
    """The option fuzz is not vacuous: some values pass, some are refused."""
    assert isinstance(RateLimitedTransport(rate="10/second"), RateLimitedTransport)
    with pytest.raises(ConfigurationError, match="max_concurrency"):
        RateLimitedTransport(max_concurrency=-1)
