"""Fuzz: no header, value, status or body ever makes parse_signal raise or mis-wait."""

from __future__ import annotations

import math
from typing import Any

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from ratelimited_client import parse_signal
from ratelimited_client._signals import MAX_RESET

KNOWN = [
    "retry-after",
    "retry-after-ms",
    "x-ms-retry-after-ms",
    "x-ratelimit-retry-after",
    "date",
    "age",
    "ratelimit",
    "ratelimit-policy",
    "beta-ratelimit",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "ratelimit-resettime",
    "ratelimit-name",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-ratelimit-used",
    "x-ratelimit-resource",
    "x-ratelimit-reset-after",
    "x-ratelimit-bucket",
    "x-ratelimit-global",
    "x-ratelimit-scope",
    "x-rate-limit-limit",
    "x-rate-limit-remaining",
    "x-rate-limit-reset",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-limit",
    "anthropic-ratelimit-requests-reset",
    "x-shopify-shop-api-call-limit",
    "x-should-retry",
    "stripe-should-retry",
    "x-hubspot-ratelimit-interval-milliseconds",
    "zendesk-ratelimit-tickets-index",
    "x-ms-ratelimit-remaining-resource",
    "x-app-limit-24hour-reset",
]

TRICKY = st.sampled_from(
    [
        "",
        "0",
        "-1",
        "-0",
        "1e100",
        "1e308",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "1.5",
        "120, 30",
        "9" * 40,
        "Fri, 31 Dec 1999 23:59:59 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
        "Wed, 31 Dec 9999 23:59:59 GMT",
        "2026-01-01T00:02Z",
        "9999-12-31T23:59:59Z",
        "6m0s",
        "1h2m3.5s",
        "99999999999h",
        "1.5.5s",
        '"p";r=1;t=99999999999',
        '"p";q=-5;w=0',
        "limit=10, remaining=-3, reset=1e9",
        ":!!!:",
        "40/0",
        "a;1,b;1e400",
        "total=; remaining=x",
        "true",
        "\u00b5s",
        "\u2603",
    ]
)
VALUES = st.one_of(TRICKY, st.text(max_size=40), st.integers().map(str), st.floats().map(str))
NAMES = st.one_of(st.sampled_from(KNOWN), st.text(min_size=1, max_size=20))
JSON: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                ["error", "code", "retry_after", "global", "type", "message", "policyName"]
            ),
            children,
            max_size=3,
        )
    ),
    max_leaves=8,
)


def _wire(text: str) -> bytes:
    """As a server would send it: bytes on the wire, UTF-8 where it is not ASCII."""
    return "".join(c for c in text if c.isprintable()).encode()


@settings(max_examples=600, deadline=None)
@given(
    status=st.sampled_from([200, 301, 403, 429, 500, 503, 529]) | st.integers(100, 599),
    headers=st.lists(st.tuples(NAMES, VALUES), max_size=12),
    body=JSON,
    max_wait=st.sampled_from([0.0, 1.0, 300.0, 3600.0]),
    skew=st.floats(min_value=-1e6, max_value=1e6),
)
def test_never_raises_and_never_waits_wrongly(
    status: int, headers: list[tuple[str, str]], body: Any, max_wait: float, skew: float
) -> None:
    """Any input: no exception; every wait finite, >= 0 and within its cap."""
    clean = [
        (name.encode(), _wire(value))
        for name, value in headers
        if name.isascii()
        and name.isprintable()
        and name.strip()
        and ":" not in name
        and not any(c in name for c in ' \t()<>@,;\\"/[]?={}')
    ]
    received_at = 5000.0
    signal = parse_signal(
        status,
        httpx.Headers(clean),
        body=body,
        received_at=received_at,
        wall_now=1.7e9 + skew,
        max_wait=max_wait,
    )
    retry = signal.retry
    if retry is not None:
        if retry.delay is not None:
            assert math.isfinite(retry.delay)
            assert 0.0 <= retry.delay <= max_wait
        if retry.requested is not None:
            assert math.isfinite(retry.requested)
            assert retry.requested >= 0
            assert retry.over_cap == (retry.requested > max_wait)
    for quota in signal.quotas:
        if quota.reset_at is not None:
            assert math.isfinite(quota.reset_at)
            assert 0.0 <= quota.reset_at - received_at <= MAX_RESET
        for value in (quota.limit, quota.remaining, quota.window):
            assert value is None or (math.isfinite(value) and value >= 0)
