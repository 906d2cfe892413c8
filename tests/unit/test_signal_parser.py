"""parse_signal, table-driven: every dialect, and the reference's 24 edge cases.

Fixed clocks: the response arrives at monotonic 1000.0; the server's Date is
exactly WALL (so absolute times are exact) unless a case says otherwise.
"""

from __future__ import annotations

import ast
import math
import random
import subprocess
import sys
import textwrap
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import pytest

import ratelimited_client
from ratelimited_client import (
    DEFAULT_DIALECTS,
    QuotaState,
    RateLimitSignal,
    SignalContext,
    parse_signal,
)
from ratelimited_client._signals import (
    MAX_RESET,
    HeaderMap,
    PlainHeaders,
    ServerClock,
    parse_go_duration,
    scan_headers,
)

T = 1000.0  # received_at, monotonic
WALL = 1_767_225_600.0  # 2026-01-01T00:00:00Z, the server's (and client's) wall clock
DATE = formatdate(WALL, usegmt=True)


def read(
    status: int,
    headers: list[tuple[str, str]] | dict[str, str],
    body: Any = None,
    *,
    wall_now: float = WALL,
    max_wait: float = 300.0,
    with_date: bool = True,
) -> Any:
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers)
    if with_date:
        pairs.append(("Date", DATE))
    return parse_signal(
        status, pairs, body=body, received_at=T, wall_now=wall_now, max_wait=max_wait
    )


def only(signal: Any, **match: object) -> QuotaState:
    found: list[QuotaState] = [
        q for q in signal.quotas if all(getattr(q, k) == v for k, v in match.items())
    ]
    assert len(found) == 1, signal.quotas
    return found[0]


# -- Retry-After and its relatives -------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "delay", "source"),
    [
        ({"Retry-After": "120"}, 120.0, "retry-after"),
        ({"Retry-After": "1.5"}, 1.5, "retry-after"),
        ({"Retry-After": formatdate(WALL + 30, usegmt=True)}, 30.0, "retry-after(date)"),
        ({"Retry-After": "Thursday, 01-Jan-26 00:00:45 GMT"}, 45.0, "retry-after(date)"),
        ({"Retry-After": "Thu Jan  1 00:00:50 2026"}, 50.0, "retry-after(date)"),
        ({"retry-after-ms": "1500.5"}, 1.5005, "retry-after-ms"),
        ({"x-ms-retry-after-ms": "250"}, 0.25, "x-ms-retry-after-ms"),
        ({"Retry-After": "2", "retry-after-ms": "2500"}, 2.5, "retry-after-ms"),
        ({"Retry-After": "3", "retry-after-ms": "1000"}, 3.0, "retry-after"),
        ({"X-RateLimit-Retry-After": "7"}, 7.0, "x-ratelimit-retry-after"),
    ],
    ids=[
        "seconds",
        "decimal",
        "imf-fixdate",
        "rfc850",
        "asctime-naive-is-utc",
        "retry-after-ms",
        "x-ms-retry-after-ms",
        "largest-wins-ms",
        "largest-wins-seconds",
        "mailerlite",
    ],
)
def test_retry_after_forms(headers: dict[str, str], delay: float, source: str) -> None:
    """Every Retry-After form gives the same kind of directive; the largest wait wins."""
    signal = read(429, headers)
    assert signal.throttled
    assert signal.retry.delay == pytest.approx(delay)
    assert signal.retry.source == source
    assert signal.retry.scope == "bucket"
    assert signal.retry.not_before == pytest.approx(T + delay)


# -- the dialects ----------------------------------------------------------------------


def test_ietf_named_policies_08() -> None:
    """-08+: policy q/w joined by name to r/t; t is seconds from now."""
    signal = read(
        200,
        [
            ("RateLimit-Policy", '"permin";q=50;w=60, "perhr";q=1000;w=3600'),
            ("RateLimit", '"permin";r=12;t=41'),
        ],
    )
    permin = only(signal, name="permin")
    assert (permin.limit, permin.remaining, permin.window) == (50, 12, 60)
    assert permin.reset_at == T + 41
    assert permin.reset_kind == "more_available"
    perhr = only(signal, name="perhr")
    assert (perhr.limit, perhr.remaining, perhr.window) == (1000, None, 3600)
    assert signal.dialects == ("ietf",)


def test_ietf_named_with_units_partition_tokens_and_split_lines() -> None:
    """Bare tokens as names, qu, pk, a list split over two lines, unknown params ignored."""
    signal = read(
        200,
        [
            ("RateLimit-Policy", 'peruser;q=65535;qu="content-bytes";w=10;pk=:c2FtcGxl:'),
            ("RateLimit", "peruser;r=30000;t=6;pk=:c2FtcGxl:;acme-x=1"),
            ("RateLimit", '"other";r=0;t=2'),
        ],
    )
    peruser = only(signal, name="peruser")
    assert peruser.unit == "content_bytes"
    assert (peruser.limit, peruser.remaining, peruser.reset_at) == (65535, 30000, T + 6)
    assert peruser.partition == b"sample".hex()
    other = only(signal, name="other")
    assert other.exhausted
    assert other.reset_at == T + 2


def test_cloudflare_lowercase_and_jira_beta() -> None:
    """Cloudflare's Ratelimit spelling and Jira's Beta- prefix read the same way."""
    cloudflare = read(
        429,
        {
            "ratelimit": '"default";r=0;t=212',
            "ratelimit-policy": '"default";q=1200;w=300',
            "retry-after": "212",
        },
    )
    assert only(cloudflare, name="default").limit == 1200
    assert cloudflare.retry.delay == 212
    jira = read(
        200,
        {
            "Beta-RateLimit-Policy": '"tenant-app-quota";q=100100;w=3600',
            "Beta-RateLimit": '"tenant-app-quota";r=17842;t=2107',
        },
    )
    assert only(jira, name="tenant-app-quota").remaining == 17842


def test_ietf_07_dictionary() -> None:
    """-07: one dictionary with limit, remaining, reset; window from the policy."""
    signal = read(
        200,
        {"RateLimit": "limit=100, remaining=50, reset=5", "RateLimit-Policy": "100;w=10"},
    )
    quota = only(signal, dialect="ietf-07")
    assert (quota.limit, quota.remaining, quota.reset_at, quota.window) == (100, 50, T + 5, 10)


def test_ietf_split_trio_with_policy() -> None:
    """<= -06: the three fields, the window from RateLimit-Policy, reset as delta."""
    signal = read(
        200,
        {
            "RateLimit-Policy": "100;w=60",
            "RateLimit-Limit": "100",
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": "48",
        },
    )
    quota = only(signal, dialect="ietf-trio")
    assert (quota.limit, quota.remaining, quota.reset_at, quota.window) == (100, 0, T + 48, 60)
    assert signal.exhausted == (quota,)


def test_ietf_00_limit_with_policies_inline() -> None:
    """-00..-03: RateLimit-Limit: 10, 10;w=1 (the first is the limit)."""
    signal = read(200, {"RateLimit-Limit": "10, 10;w=1", "RateLimit-Remaining": "3"})
    quota = only(signal, dialect="ietf-trio")
    assert (quota.limit, quota.remaining, quota.window) == (10, 3, 1)


def test_gitlab_trio_with_epoch_reset() -> None:
    """GitLab's RateLimit-Reset is an epoch despite the name: read by magnitude."""
    signal = read(
        429,
        {
            "RateLimit-Limit": "60",
            "RateLimit-Name": "throttle_authenticated_api",
            "RateLimit-Observed": "67",
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(int(WALL + 30)),
            "RateLimit-ResetTime": formatdate(WALL + 30, usegmt=True),
            "Retry-After": "30",
        },
    )
    quota = only(signal, dialect="gitlab")
    assert quota.name == "throttle_authenticated_api"
    assert quota.reset_at == T + 30
    assert signal.retry.delay == 30


def test_gitlab_429_without_retry_after_waits_for_the_reset_time() -> None:
    """A GitLab 429 with no Retry-After and no numeric reset: RateLimit-ResetTime decides."""
    signal = read(
        429,
        {
            "RateLimit-Limit": "60",
            "RateLimit-Remaining": "0",
            "RateLimit-Name": "x",
            "RateLimit-ResetTime": formatdate(WALL + 20, usegmt=True),
        },
    )
    assert signal.retry.delay == pytest.approx(20)
    assert signal.retry.source == "reset"


def test_github_primary_limit_403() -> None:
    """GitHub: epoch reset, resource as name, a 403 with remaining 0 is a throttle."""
    body = {"message": "API rate limit exceeded for user ID 1."}
    signal = read(
        403,
        {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-used": "5000",
            "x-ratelimit-reset": str(int(WALL + 600)),
            "x-ratelimit-resource": "core",
        },
        body,
    )
    quota = only(signal, dialect="github")
    assert (quota.name, quota.limit, quota.reset_at) == ("core", 5000, T + 600)
    assert signal.throttled
    assert signal.retry.delay == 300  # capped: 600 s > max_wait
    assert signal.retry.over_cap
    assert signal.retry.requested == 600


def test_github_secondary_limit_without_retry_after_waits_a_minute() -> None:
    """A secondary limit with quota left and no Retry-After: at least 60 s."""
    body = {"message": "You have exceeded a secondary rate limit."}
    signal = read(
        403,
        {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4000",
            "x-ratelimit-reset": str(int(WALL + 3000)),
            "x-ratelimit-resource": "core",
        },
        body,
    )
    assert signal.throttled
    assert (signal.retry.delay, signal.retry.source) == (60, "github-secondary")


def test_openai_requests_and_tokens_families() -> None:
    """OpenAI: two quotas, Go-duration resets to full; retry-after-ms wins."""
    signal = read(
        429,
        {
            "x-ratelimit-limit-requests": "5000",
            "x-ratelimit-remaining-requests": "4999",
            "x-ratelimit-reset-requests": "12ms",
            "x-ratelimit-limit-tokens": "160000",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-tokens": "1m0.5s",
            "retry-after": "2",
            "retry-after-ms": "2500",
        },
        {"error": {"code": "rate_limit_exceeded"}},
    )
    requests = only(signal, name="requests")
    tokens = only(signal, name="tokens")
    assert (requests.unit, requests.reset_kind) == ("requests", "full_refill")
    assert requests.reset_at == pytest.approx(T + 0.012)
    assert (tokens.unit, tokens.exhausted, tokens.reset_at) == ("tokens", True, T + 60.5)
    assert signal.retry.delay == 2.5
    assert not signal.retry.terminal


def test_openai_insufficient_quota_is_terminal_and_minus_one_is_dropped() -> None:
    """insufficient_quota: terminal; Azure's -1 values mean "not applicable"."""
    signal = read(
        429,
        {
            "x-ratelimit-limit-tokens": "-1",
            "x-ratelimit-remaining-tokens": "-1",
            "x-ratelimit-reset-tokens": "0",
        },
        {"error": {"code": "insufficient_quota"}},
    )
    assert signal.quotas == ()
    assert signal.retry.terminal


def test_anthropic_families() -> None:
    """Anthropic: requests, tokens and input/output token families, RFC 3339 resets."""
    signal = read(
        429,
        {
            "retry-after": "13",
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "42",
            "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:59Z",
            "anthropic-ratelimit-input-tokens-limit": "40000",
            "anthropic-ratelimit-input-tokens-remaining": "0",
            "anthropic-ratelimit-input-tokens-reset": "2026-01-01T00:01:12Z",
        },
    )
    requests = only(signal, name="requests")
    assert (requests.limit, requests.remaining, requests.reset_at) == (50, 42, T + 59)
    tokens = only(signal, name="input-tokens")
    assert (tokens.unit, tokens.exhausted, tokens.approximate) == ("input_tokens", True, True)
    assert tokens.reset_at == T + 72
    assert signal.retry.delay == 13


def test_discord_bucket_reset_after_and_body() -> None:
    """Discord: Reset-After beats Reset; the body's float retry_after beats the header."""
    signal = read(
        429,
        {
            "Retry-After": "65",
            "X-RateLimit-Limit": "10",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{WALL + 99:.3f}",
            "X-RateLimit-Reset-After": "64.57",
            "X-RateLimit-Bucket": "abcd1234",
            "X-RateLimit-Scope": "user",
        },
        {"message": "You are being rate limited.", "retry_after": 64.57, "global": False},
    )
    quota = only(signal, dialect="discord")
    assert quota.name == "abcd1234"
    assert quota.reset_at == pytest.approx(T + 64.57)
    assert signal.retry.delay == 65  # the largest explicit wait
    assert signal.retry.scope == "bucket"


@pytest.mark.parametrize(
    ("headers", "body", "scope"),
    [
        ({"X-RateLimit-Global": "true"}, {"retry_after": 1.5, "global": True}, "origin"),
        ({"X-RateLimit-Scope": "shared"}, {"retry_after": 1.5}, "request"),
    ],
    ids=["global", "shared"],
)
def test_discord_scopes(headers: dict[str, str], body: dict[str, Any], scope: str) -> None:
    """Global pauses the origin; shared concerns only that request."""
    headers = {
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "1",
        "X-RateLimit-Bucket": "b",
        **headers,
    }
    signal = read(429, headers, body)
    assert signal.retry.scope == scope
    assert signal.retry.delay == 1.5


@pytest.mark.parametrize(
    ("headers", "name", "limit", "remaining", "reset_in"),
    [
        (
            {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "7", "X-RateLimit-Reset": "30"},
            "default",
            100,
            7,
            30.0,
        ),
        (
            {
                "X-RateLimit-Limit": "100",
                "X-RateLimit-Remaining": "7",
                "X-RateLimit-Reset": str(int((WALL + 40) * 1000)),
            },
            "default",
            100,
            7,
            40.0,
        ),
        (
            {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "7", "X-RateLimit-Reset": "6m0s"},
            "default",
            100,
            7,
            360.0,
        ),
        (
            {
                "X-RateLimit-Limit": "100",
                "X-RateLimit-Remaining": "7",
                "X-RateLimit-Reset": "2026-01-01T00:00:25Z",
            },
            "default",
            100,
            7,
            25.0,
        ),
        (
            {
                "X-RateLimit-Limit": "350",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": "2026-01-01T00:02Z",
                "RateLimit-Reason": "jira-burst-based",
            },
            "jira-burst-based",
            350,
            0,
            180.0,
        ),
        (
            {
                "x-rate-limit-limit": "900",
                "x-rate-limit-remaining": "847",
                "x-rate-limit-reset": str(int(WALL + 900)),
            },
            "default",
            900,
            847,
            900.0,
        ),
        (
            {
                "x-ratelimit-used": "12",
                "x-ratelimit-remaining": "588.0",
                "x-ratelimit-reset": "347",
            },
            "default",
            600,
            588,
            347.0,
        ),
    ],
    ids=["delta", "epoch-ms", "go-duration", "rfc3339", "jira-minute", "x-twitter", "reddit"],
)
def test_x_ratelimit_family(
    headers: dict[str, str], name: str, limit: float, remaining: float, reset_in: float
) -> None:
    """X-RateLimit-* / X-Rate-Limit-*: every reset encoding, by magnitude and shape."""
    quota = read(200, headers).quotas[0]
    assert (quota.name, quota.limit, quota.remaining) == (name, limit, remaining)
    assert quota.reset_at == pytest.approx(T + reset_in)


def test_x_daily_caps_and_usage_capped_is_terminal() -> None:
    """X: the 24-hour families are their own quotas; usage-capped never retries."""
    signal = read(
        429,
        {
            "x-rate-limit-limit": "900",
            "x-rate-limit-remaining": "0",
            "x-rate-limit-reset": str(int(WALL + 60)),
            "x-app-limit-24hour-limit": "1000",
            "x-app-limit-24hour-remaining": "0",
            "x-app-limit-24hour-reset": str(int(WALL + 7200)),
        },
        {"type": "https://api.twitter.com/2/problems/usage-capped"},
    )
    assert only(signal, name="24hour-app").reset_at == T + 7200
    assert signal.retry.terminal


def test_shopify_call_limit_and_float_retry_after() -> None:
    """Shopify REST: used/size; Retry-After as a float."""
    signal = read(429, {"X-Shopify-Shop-Api-Call-Limit": "40/40", "Retry-After": "2.0"})
    quota = only(signal, dialect="shopify")
    assert (quota.limit, quota.remaining) == (40, 0)
    assert signal.retry.delay == 2.0


def test_hubspot_rolling_daily_and_terminal_daily() -> None:
    """HubSpot: the interval is the window; policyName DAILY is terminal."""
    signal = read(
        429,
        {
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Max": "100",
            "X-HubSpot-RateLimit-Remaining": "0",
            "X-HubSpot-RateLimit-Daily": "250000",
            "X-HubSpot-RateLimit-Daily-Remaining": "0",
        },
        {"policyName": "DAILY"},
    )
    rolling = only(signal, name="rolling")
    assert (rolling.window, rolling.reset_at) == (10.0, T + 10.0)
    assert signal.retry.terminal


def test_zendesk_and_azure_shapes() -> None:
    """Zendesk's tickets-index key=value list; ARM's Policy;remaining comma list."""
    signal = read(
        200,
        {
            "X-Rate-Limit": "700",
            "X-Rate-Limit-Remaining": "699",
            "zendesk-ratelimit-tickets-index": "total=100; remaining=99; resets=41",
            "x-ms-ratelimit-remaining-resource": "Microsoft.Compute/A;197,Microsoft.Compute/B;1297",
            "x-ms-ratelimit-remaining-subscription-reads": "11999",
        },
    )
    assert only(signal, dialect="zendesk", name="default").limit == 700
    assert only(signal, name="tickets-index").reset_at == T + 41
    assert only(signal, name="resource:Microsoft.Compute/B").remaining == 1297
    assert only(signal, name="subscription-reads").remaining == 11999


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"x-should-retry": "false"}, None, False),
        ({"X-Should-Retry": "TRUE"}, None, True),
        ({"Stripe-Should-Retry": "true"}, None, True),
    ],
)
def test_should_retry_overrides(headers: dict[str, str], body: object, expected: bool) -> None:
    """The server's should-retry word is carried on the directive, even on a 500."""
    signal = read(500, headers, body)
    assert signal.retry.should_retry is expected
    assert not signal.throttled


def test_stripe_lock_timeout_is_request_scoped() -> None:
    """Stripe's lock_timeout 429 concerns one object: request scope, no bucket pause."""
    signal = read(429, {}, {"error": {"code": "lock_timeout"}})
    assert signal.retry.scope == "request"


# -- the reference's edge cases (shared/RATELIMIT-HEADERS.md §4.5) -------------------------


def test_edge_01_negative_values_mean_not_applicable() -> None:
    """#1: negative limit/remaining drop the quota; a negative delay becomes 0."""
    signal = read(
        429, {"X-RateLimit-Limit": "-1", "X-RateLimit-Remaining": "5", "Retry-After": "-5"}
    )
    assert signal.quotas == ()
    assert signal.retry.delay == 0


def test_edge_02_zero_values() -> None:
    """#2: Retry-After 0 is "now"; remaining 0 with a reset pauses; limit 0 is terminal."""
    assert read(429, {"Retry-After": "0"}).retry.delay == 0
    exhausted = read(
        200, {"RateLimit-Limit": "5", "RateLimit-Remaining": "0", "RateLimit-Reset": "9"}
    )
    assert exhausted.exhausted[0].reset_at == T + 9
    zero = read(429, {"RateLimit-Limit": "0", "RateLimit-Remaining": "0"})
    assert zero.retry.terminal


def test_edge_03_fractional_seconds_everywhere() -> None:
    """#3: decimals in Retry-After, Go durations and ms headers."""
    assert read(429, {"Retry-After": "2.0"}).retry.delay == 2.0
    assert parse_go_duration("2m59.56s") == pytest.approx(179.56)
    assert read(429, {"retry-after-ms": "1500.5"}).retry.delay == pytest.approx(1.5005)


def test_edge_04_reset_in_the_past_means_now() -> None:
    """#4: a reset already past (against Date) is clamped to "resets now"."""
    signal = read(
        200,
        {
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(WALL - 50)),
        },
    )
    assert signal.quotas[0].reset_at == T


def test_edge_05_waits_beyond_the_cap_are_flagged_not_slept() -> None:
    """#5: 1847 s against a 300 s cap: capped, flagged over_cap and terminal, requested kept."""
    retry = read(429, {"Retry-After": "1847"}).retry
    assert (retry.delay, retry.requested, retry.over_cap, retry.terminal) == (300, 1847, True, True)


@pytest.mark.parametrize("value", ["1e100", "nan", "inf", "-inf", "Sunday, 06-Nov-94 08:49:37 GMT"])
def test_edge_06_absurd_values_are_clamped_or_ignored(value: str) -> None:
    """#6: non-finite values are ignored; huge and far-past ones clamp to the cap or 0."""
    retry = read(429, {"Retry-After": value}).retry
    assert retry.delay is None or 0 <= retry.delay <= 300


def test_edge_07_duplicates_take_the_conservative_value() -> None:
    """#7: joined duplicates: max wait, min remaining, min limit, latest reset; dates unsplit."""
    signal = read(
        429,
        [
            ("Retry-After", "120, 30"),
            ("Retry-After", formatdate(WALL + 150, usegmt=True)),
            ("X-RateLimit-Limit", "100, 50"),
            ("X-RateLimit-Remaining", "9"),
            ("X-RateLimit-Remaining", "3"),
            ("X-RateLimit-Reset", "10, 20"),
        ],
    )
    assert signal.retry.delay == 150
    quota = signal.quotas[0]
    assert (quota.limit, quota.remaining, quota.reset_at) == (50, 3, T + 20)


def test_edge_08_comma_lists_inside_one_value_are_several_keys() -> None:
    """#8: ARM's Policy;n list and IETF lists give one quota per name."""
    signal = read(
        200, {"x-ms-ratelimit-remaining-resource": "A;1,B;2", "RateLimit": '"a";r=1, "b";r=2'}
    )
    assert {q.name for q in signal.quotas} == {"resource:A", "resource:B", "a", "b"}


def test_edge_09_header_and_token_case_do_not_matter() -> None:
    """#9: Ratelimit, X-Ratelimit-Used and TRUE read like their canonical spellings."""
    signal = read(
        429,
        {
            "X-RATELIMIT-LIMIT": "5",
            "x-ratelimit-remaining": "0",
            "X-Ratelimit-Bucket": "b",
            "X-RateLimit-Global": "True",
        },
        {"retry_after": 1},
    )
    assert signal.retry.scope == "origin"
    assert signal.quotas[0].limit == 5


def test_edge_10_same_names_different_meanings_read_by_magnitude() -> None:
    """#10: RateLimit-Reset 30 is a delta, 1767225630 an epoch: both 30 s away."""
    delta = read(200, {"RateLimit-Limit": "5", "RateLimit-Reset": "30"})
    epoch = read(200, {"RateLimit-Limit": "5", "RateLimit-Reset": str(int(WALL + 30))})
    assert delta.quotas[0].reset_at == epoch.quotas[0].reset_at == T + 30


def test_edge_11_a_403_without_evidence_is_not_throttling() -> None:
    """#11: GitHub 403 with quota left and no rate-limit message is an auth error."""
    signal = read(
        403,
        {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4000",
            "x-ratelimit-reset": str(int(WALL + 60)),
            "x-ratelimit-resource": "core",
        },
        {"message": "Resource not accessible by integration"},
    )
    assert not signal.throttled
    assert signal.retry is None


def test_edge_12_other_statuses_carry_throttling() -> None:
    """#12: 529 and 503 with Retry-After are capacity problems: origin scope."""
    for status in (503, 529):
        signal = read(status, {"Retry-After": "5"})
        assert signal.throttled
        assert signal.retry.scope == "origin"


def test_edge_13_body_only_signals_need_the_body() -> None:
    """#13: Discord's body retry_after is read when the body is given, ignored if not."""
    headers = {"X-RateLimit-Bucket": "b", "X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0"}
    assert read(429, headers, {"retry_after": 3.25}).retry.delay == 3.25
    assert read(429, headers).retry.delay is None


def test_edge_14_quota_gone_for_good_is_terminal() -> None:
    """#14: insufficient_quota, usage-capped and DAILY are terminal."""
    for body in (
        {"error": {"code": "insufficient_quota"}},
        {"type": "https://api.twitter.com/2/problems/usage-capped"},
        {"policyName": "DAILY"},
    ):
        assert read(429, {}, body).retry.terminal


def test_edge_15_a_429_that_is_not_a_quota_is_request_scoped() -> None:
    """#15: Stripe lock_timeout and Discord shared: request scope."""
    assert read(429, {}, {"error": {"code": "lock_timeout"}}).retry.scope == "request"


def test_edge_16_maintenance_503_with_a_date() -> None:
    """#16: 503 with an HTTP-date Retry-After: honoured, origin-wide; without one: nothing."""
    signal = read(503, {"Retry-After": formatdate(WALL + 90, usegmt=True)})
    assert (signal.retry.delay, signal.retry.scope) == (90, "origin")
    assert not read(503, {}).throttled


def test_edge_17_missing_headers_say_nothing() -> None:
    """#17: a response without rate-limit headers yields no quota and no directive."""
    signal = read(200, {"Content-Type": "application/json"})
    assert (signal.quotas, signal.retry, signal.throttled) == ((), None, False)


def test_edge_18_families_stay_separate() -> None:
    """#18: burst headers and an exhausted points quota are never merged."""
    signal = read(
        200,
        {
            "X-RateLimit-Limit": "400",
            "X-RateLimit-Remaining": "399",
            "Beta-RateLimit": '"tenant-app-quota";r=0;t=2107',
        },
    )
    assert {(q.name, q.remaining) for q in signal.quotas} == {
        ("default", 399),
        ("tenant-app-quota", 0),
    }


def test_edge_19_reset_kinds_are_recorded() -> None:
    """#19: OpenAI resets mean "full", IETF t "more available", GitHub "window end"."""
    assert (
        read(200, {"x-ratelimit-limit-requests": "5", "x-ratelimit-reset-requests": "1s"})
        .quotas[0]
        .reset_kind
        == "full_refill"
    )
    assert read(200, {"RateLimit": '"p";r=1;t=1'}).quotas[0].reset_kind == "more_available"
    assert (
        read(
            200,
            {
                "x-ratelimit-limit": "5",
                "x-ratelimit-resource": "core",
                "x-ratelimit-reset": str(int(WALL + 5)),
            },
        )
        .quotas[0]
        .reset_kind
        == "window_end"
    )


def test_edge_20_coarse_and_odd_time_formats() -> None:
    """#20: minute precision is the end of the minute; an unparseable reset is ignored."""
    minute = read(200, {"X-RateLimit-Limit": "5", "X-RateLimit-Reset": "2026-01-01T00:02Z"})
    assert minute.quotas[0].reset_at == T + 180
    lenient = read(
        200,
        {"X-RateLimit-Limit": "5", "X-RateLimit-Reset": "Thu Jan 01 2026 00:02:00 GMT+0000 (UTC)"},
    )
    assert lenient.quotas[0].reset_at == T + 120  # a JavaScript date still reads
    odd = read(
        200,
        {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "1", "X-RateLimit-Reset": "soon-ish"},
    )
    assert odd.quotas[0].reset_at is None
    assert odd.quotas[0].remaining == 1


def test_edge_21_relative_values_are_anchored_at_receipt() -> None:
    """#21: a delta counts from when the response arrived, never shortened by latency."""
    assert read(429, {"Retry-After": "10"}).retry.not_before == T + 10


def test_edge_22_redirects_with_retry_after_are_not_throttling() -> None:
    """#22: a 3xx Retry-After is carried as a delay, never as a throttle."""
    signal = read(307, {"Retry-After": "3"})
    assert not signal.throttled
    assert signal.retry.delay == 3


def test_edge_23_cached_responses_are_ignored() -> None:
    """#23: Age > 0: quota fields are ignored."""
    signal = read(
        200,
        {
            "Age": "12",
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": "9",
        },
    )
    assert signal.cached
    assert signal.quotas == ()


def test_edge_24_only_the_exhausted_policy_is_exhausted() -> None:
    """#24: with several policies, the directive waits for the exhausted one's reset."""
    signal = read(
        429,
        {
            "RateLimit-Policy": '"a";q=10;w=1, "b";q=100;w=60',
            "RateLimit": '"a";r=4;t=1, "b";r=0;t=42',
        },
    )
    assert [q.name for q in signal.exhausted] == ["b"]
    assert signal.retry.delay == 42


# -- clock skew, the no-Date case and custom dialects ---------------------------------------


@pytest.mark.parametrize("skew", [-600.0, 600.0])
def test_client_clock_skew_does_not_change_waits(skew: float) -> None:
    """The client's wall clock 10 minutes off: deadlines come from the server's Date."""
    headers = {
        "Retry-After": formatdate(WALL + 30, usegmt=True),
        "x-ratelimit-limit": "5000",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": str(int(WALL + 45)),
        "x-ratelimit-resource": "core",
    }
    exact = read(429, headers)
    skewed = read(429, headers, wall_now=WALL + skew)
    assert skewed.retry.delay == exact.retry.delay == 30
    assert skewed.quotas[0].reset_at == exact.quotas[0].reset_at == T + 45


def test_without_a_date_header_the_wall_clock_is_used() -> None:
    """No Date: absolute times are read against the client's clock."""
    signal = read(
        200,
        {
            "x-ratelimit-limit": "5",
            "x-ratelimit-resource": "core",
            "x-ratelimit-reset": str(int(WALL + 45)),
        },
        wall_now=WALL + 5,
        with_date=False,
    )
    assert signal.quotas[0].reset_at == T + 40


def test_custom_dialect_adds_and_a_broken_one_is_skipped() -> None:
    """SDK authors add dialects; one that raises never breaks parsing."""

    def acme(ctx: SignalContext) -> None:
        left = ctx.number("Acme-Calls-Left", conservative="min")
        if left is not None:
            ctx.add_quota(
                QuotaState(
                    name="calls", dialect="acme", remaining=left, reset_at=ctx.delta_deadline(60.0)
                )
            )

    def broken(ctx: SignalContext) -> None:
        raise RuntimeError("vendor changed the format")

    signal = parse_signal(
        200,
        {"Acme-Calls-Left": "7"},
        received_at=T,
        wall_now=WALL,
        dialects=[*DEFAULT_DIALECTS, broken, acme],
    )
    assert only(signal, dialect="acme").remaining == 7
    assert signal.dialects == ("acme",)


def test_resets_are_clamped_to_the_hard_maximum() -> None:
    """A reset years away is held to MAX_RESET from now."""
    signal = read(200, {"X-RateLimit-Limit": "5", "X-RateLimit-Reset": str(int(WALL + 1e8))})
    assert signal.quotas[0].reset_at == T + MAX_RESET


# -- the server's clock, from many answers ---------------------------------------------


def test_the_servers_clock_is_bounded_by_many_dates_never_past_the_truth() -> None:
    """A server 3.7 s ahead of us stamping ``Date`` in whole seconds, cached up to a
    second more (uvicorn): one answer alone says the offset to within ~2 s; the
    greatest of 200, to within 20 ms, and never above the truth."""
    rng = random.Random(7)
    truth = 1_790_000_000.0 + 3.7
    clock = ServerClock()
    errors = []
    for i in range(200):
        received = 10.0 + i * 0.0113  # 88 answers a second
        stamped = received - rng.uniform(0.0, 0.005)  # the answer's trip
        lag = rng.choice([0.0, rng.uniform(0.0, 1.0)])  # a cached Date, now and then
        date = math.floor(truth + stamped - lag)
        errors.append(truth + received - clock.now_at(date, received))
    assert all(error >= -1e-9 for error in errors)  # never past the server's time
    assert errors[0] > 0.02  # one Date alone: its grain
    assert max(errors[-50:]) < 0.02


def test_the_servers_clock_set_back_is_followed_and_an_old_estimate_expires() -> None:
    clock = ServerClock()
    assert clock.now_at(1000.0, 0.5) == 1000.0
    assert clock.now_at(1000.0, 0.9) == pytest.approx(1000.4)  # the first is the tighter
    # Set back an hour: the estimate starts again from the new Date.
    assert clock.now_at(1000.0 - 3600, 1.0) == 1000.0 - 3600
    # A minute on, the earlier answers no longer bind (drift, a slewed clock).
    assert clock.now_at(100.0, 200.0) == 100.0


def test_an_epoch_reset_is_read_against_the_clock_of_many_answers() -> None:
    """The same ``Date`` second, answers 0.1 s and 0.9 s into it: read alone, the
    second answer's reset is 0.8 s too late; with the server's clock it is exact."""
    headers = {
        "X-RateLimit-Reset": "1790000010",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Limit": "5",
        "Date": formatdate(1_790_000_000, usegmt=True),
    }
    clock = ServerClock()
    parse_signal(200, headers, received_at=0.1, wall_now=0.0, server_clock=clock)
    alone = parse_signal(200, headers, received_at=0.9, wall_now=0.0)
    shared = parse_signal(200, headers, received_at=0.9, wall_now=0.0, server_clock=clock)
    assert alone.quotas[0].reset_at == pytest.approx(10.9)
    assert shared.quotas[0].reset_at == pytest.approx(10.1)


# -- the headers, without an HTTP library -----------------------------------------------


def test_a_dict_a_list_of_pairs_and_httpx_headers_read_alike() -> None:
    """Plain headers are read as ``httpx.Headers`` are (no HTTP library converts them
    any more): the same signal, the same scan, and a dialect of your own sees the same
    names and values in ``ctx.headers``."""
    pairs = [
        ("Date", DATE),
        ("Retry-After", "7"),
        ("X-RateLimit-Limit", "10"),
        ("X-RateLimit-Remaining", "0"),
        ("X-RateLimit-Reset", str(int(WALL) + 30)),
        ("x-ratelimit-limit-tokens", "100"),
        ("X-RateLimit-Remaining-Tokens", "3"),
        ("x-ratelimit-reset-tokens", "6m0s"),
        ("Anthropic-RateLimit-Requests-Limit", "5"),
        ("anthropic-ratelimit-requests-remaining", "1"),
        ("x-ms-ratelimit-remaining-resource", "A;1,B;2"),
        ("Content-Length", "12"),
        ("Age", "0"),
    ]
    seen: list[object] = []

    def peek(ctx: SignalContext) -> None:
        headers = ctx.headers
        seen.append((list(headers), headers.multi_items(), headers.get("RETRY-AFTER")))

    def read_as(headers: HeaderMap | dict[str, str] | list[tuple[str, str]]) -> RateLimitSignal:
        dialects = [*DEFAULT_DIALECTS, peek]
        return parse_signal(429, headers, received_at=T, wall_now=WALL, dialects=dialects)

    signals = [read_as(dict(pairs)), read_as(pairs), read_as(httpx.Headers(pairs))]
    assert signals[0] == signals[1] == signals[2]
    assert signals[0].dialects == ("x-ratelimit", "openai", "anthropic", "azure")
    assert signals[0].retry is not None
    assert signals[0].retry.delay == 7.0
    assert seen[0] == seen[1] == seen[2]
    assert scan_headers(PlainHeaders(pairs)) == scan_headers(httpx.Headers(pairs))

    # A repeated name keeps every line, in a list of pairs as in httpx.Headers.
    repeated = [
        ("X-RateLimit-Remaining", "5"),
        ("x-ratelimit-remaining", "2"),
        ("X-RateLimit-Limit", "10"),
        ("Content-Length", "1"),
        ("content-length", "2"),
    ]
    assert read_as(repeated) == read_as(httpx.Headers(repeated))
    assert only(read_as(repeated), dialect="x-ratelimit").remaining == 2
    assert seen[-2] == seen[-1]
    assert scan_headers(PlainHeaders(repeated)) == scan_headers(httpx.Headers(repeated))
    assert PlainHeaders(repeated).get("X-RATELIMIT-REMAINING") == "5, 2"


def test_the_signals_code_imports_no_http_library() -> None:
    """The same parser reads httpx's and httpx2's answers: it names neither in an
    import, and it runs where neither can be imported."""
    root = Path(ratelimited_client.__file__).parent
    sources = [*sorted((root / "_signals").glob("*.py")), root / "_structured_fields.py"]
    assert len(sources) > 2
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                assert module.split(".")[0] not in ("httpx", "httpx2"), (source, module)
    # The package alone, without ratelimited_client/__init__ (which imports httpx), in a
    # process where importing httpx or httpx2 fails.
    program = textwrap.dedent(
        f"""
        import sys, types
        sys.modules["httpx"] = sys.modules["httpx2"] = None
        package = types.ModuleType("ratelimited_client")
        package.__path__ = [{str(root)!r}]
        sys.modules["ratelimited_client"] = package
        from ratelimited_client._signals import parse_signal
        signal = parse_signal(429, {{"Retry-After": "3"}}, received_at=0.0, wall_now=0.0)
        assert signal.retry is not None and signal.retry.delay == 3.0, signal
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
