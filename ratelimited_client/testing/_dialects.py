"""How the mock upstream reports its quota: one header dialect per real-world API family.

Each emitter turns the limiter's state after a request (limit, remaining,
seconds until one unit returns, seconds until the window is full again)
into the headers that API family sends, on every limited response, 2xx
included. ``Retry-After`` on 429s is added separately.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["DIALECTS", "Dialect", "QuotaView", "go_duration", "http_date"]

Dialect = Literal[
    "retry-after",
    "ietf",
    "ietf-07",
    "ietf-trio",
    "x-ratelimit",
    "github",
    "openai",
    "anthropic",
    "discord",
    "gitlab",
]


@dataclass(frozen=True, slots=True)
class QuotaView:
    """Private. The server's quota as a dialect reports it, after this request."""

    limit: int
    window: float
    remaining: int
    next_unit: float  # seconds until at least one more unit is available
    full: float  # seconds until the whole quota is available again
    wall_now: float  # the server's wall clock (epoch seconds), as in its Date header


Headers = list[tuple[str, str]]


def http_date(epoch: float) -> str:
    """IMF-fixdate, as in a Date header."""
    return formatdate(epoch, usegmt=True)


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String()`` style: ``1m2.5s``, ``250ms``, ``0s``."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text


def _ceil(seconds: float) -> str:
    return str(max(0, math.ceil(seconds)))


def _retry_after_only(q: QuotaView) -> Headers:
    return []


def _ietf(q: QuotaView) -> Headers:
    return [
        ("RateLimit-Policy", f'"default";q={q.limit};w={_ceil(q.window)}'),
        ("RateLimit", f'"default";r={q.remaining};t={_ceil(q.next_unit)}'),
    ]


def _ietf_07(q: QuotaView) -> Headers:
    return [
        ("RateLimit", f"limit={q.limit}, remaining={q.remaining}, reset={_ceil(q.next_unit)}"),
        ("RateLimit-Policy", f"{q.limit};w={_ceil(q.window)}"),
    ]


def _ietf_trio(q: QuotaView) -> Headers:
    return [
        ("RateLimit-Limit", str(q.limit)),
        ("RateLimit-Remaining", str(q.remaining)),
        ("RateLimit-Reset", _ceil(q.next_unit)),
    ]


def _x_ratelimit(q: QuotaView) -> Headers:
    return [
        ("X-RateLimit-Limit", str(q.limit)),
        ("X-RateLimit-Remaining", str(q.remaining)),
        ("X-RateLimit-Reset", _ceil(q.next_unit)),
    ]


def _github(q: QuotaView) -> Headers:
    return [
        ("x-ratelimit-limit", str(q.limit)),
        ("x-ratelimit-remaining", str(q.remaining)),
        ("x-ratelimit-used", str(q.limit - q.remaining)),
        ("x-ratelimit-reset", str(math.ceil(q.wall_now + q.next_unit))),
        ("x-ratelimit-resource", "core"),
    ]


def _openai(q: QuotaView) -> Headers:
    return [
        ("x-ratelimit-limit-requests", str(q.limit)),
        ("x-ratelimit-remaining-requests", str(q.remaining)),
        ("x-ratelimit-reset-requests", go_duration(q.full)),
    ]


def _anthropic(q: QuotaView) -> Headers:
    reset = datetime.fromtimestamp(math.ceil(q.wall_now + q.full), tz=UTC)
    return [
        ("anthropic-ratelimit-requests-limit", str(q.limit)),
        ("anthropic-ratelimit-requests-remaining", str(q.remaining)),
        ("anthropic-ratelimit-requests-reset", reset.strftime("%Y-%m-%dT%H:%M:%SZ")),
    ]


def _discord(q: QuotaView) -> Headers:
    return [
        ("X-RateLimit-Limit", str(q.limit)),
        ("X-RateLimit-Remaining", str(q.remaining)),
        ("X-RateLimit-Reset", f"{q.wall_now + q.next_unit:.3f}"),
        ("X-RateLimit-Reset-After", f"{q.next_unit:.3f}"),
        ("X-RateLimit-Bucket", "mock-bucket"),
    ]


def _gitlab(q: QuotaView) -> Headers:
    reset = math.ceil(q.wall_now + q.next_unit)
    return [
        ("RateLimit-Limit", str(q.limit)),
        ("RateLimit-Observed", str(q.limit - q.remaining)),
        ("RateLimit-Remaining", str(q.remaining)),
        ("RateLimit-Reset", str(reset)),
        ("RateLimit-ResetTime", http_date(reset)),
        ("RateLimit-Name", "throttle_authenticated_api"),
    ]


DIALECTS: dict[str, Callable[[QuotaView], Headers]] = {
    "retry-after": _retry_after_only,
    "ietf": _ietf,
    "ietf-07": _ietf_07,
    "ietf-trio": _ietf_trio,
    "x-ratelimit": _x_ratelimit,
    "github": _github,
    "openai": _openai,
    "anthropic": _anthropic,
    "discord": _discord,
    "gitlab": _gitlab,
}
