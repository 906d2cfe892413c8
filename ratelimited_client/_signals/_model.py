"""What a response says about rate limits: quotas, the retry directive, the whole signal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Unit = Literal[
    "requests",
    "tokens",
    "input_tokens",
    "output_tokens",
    "points",
    "content_bytes",
    "concurrency",
    "resource_units",
]
ResetKind = Literal["window_end", "full_refill", "more_available", "unknown"]
Scope = Literal["request", "bucket", "origin"]

#: The farthest a reset is believed: a day and a half covers daily quotas.
MAX_RESET: Final = 36 * 3600.0


@dataclass(frozen=True, slots=True)
class QuotaState:
    """One quota a response describes.

    Attributes:
        name: the limiter inside the bucket: ``"default"`` for a single
            anonymous quota, ``"requests"``/``"tokens"`` (OpenAI, Anthropic),
            GitHub's ``x-ratelimit-resource``, an IETF policy name, a Discord
            bucket id, ...
        dialect: which parser read it.
        unit: what is counted.
        limit: units per window, if stated.
        remaining: units left, if stated (may be approximate).
        reset_at: when it resets, on the caller's monotonic clock.
        reset_kind: ``"window_end"``, ``"full_refill"`` (OpenAI, Anthropic:
            when the bucket is full again), ``"more_available"`` (IETF ``t``)
            or ``"unknown"``.
        window: the window in seconds, only when the server states it.
        partition: the server's partition key (IETF ``pk``), if any.
        approximate: the numbers are rounded or estimates.
        reset_epoch: the reset as the server stated it, in epoch seconds, where
            it was an absolute time (``reset_at`` is it read against the server's
            clock); answers that state the same instant describe the same reset.
    """

    name: str
    dialect: str
    unit: Unit = "requests"
    limit: float | None = None
    remaining: float | None = None
    reset_at: float | None = None
    reset_kind: ResetKind = "unknown"
    window: float | None = None
    partition: str | None = None
    approximate: bool = False
    reset_epoch: float | None = None

    @property
    def exhausted(self) -> bool:
        """Nothing remains (a known ``remaining`` of zero or less)."""
        return self.remaining is not None and self.remaining <= 0


@dataclass(frozen=True, slots=True)
class RetryDirective:
    """What the server said about retrying.

    Attributes:
        delay: seconds to wait from when the response arrived; always finite,
            ``0 <= delay <= max_wait``; ``None`` when no wait was given.
        requested: the server's wait before the cap (finite, ``>= 0``).
        over_cap: the server asked for more than ``max_wait``.
        scope: ``"request"`` (only this request), ``"bucket"`` or ``"origin"``.
        should_retry: the server's override (``x-should-retry``,
            ``Stripe-Should-Retry``), if sent.
        terminal: retrying cannot help soon (``insufficient_quota``, a daily
            cap, a zero limit).
        source: which field decided the delay.
        received_at: when the response arrived (monotonic).
    """

    delay: float | None
    requested: float | None
    over_cap: bool
    scope: Scope
    should_retry: bool | None
    terminal: bool
    source: str
    received_at: float

    @property
    def not_before(self) -> float | None:
        """The monotonic deadline before which no retry should leave."""
        return None if self.delay is None else self.received_at + self.delay


@dataclass(frozen=True, slots=True)
class RateLimitSignal:
    """Everything one response said about rate limits.

    Attributes:
        status: the HTTP status.
        received_at: when its headers arrived (monotonic).
        quotas: the quotas it describes (empty for a cached response).
        retry: what it said about retrying, if anything.
        throttled: the response is a rate-limit rejection.
        dialects: the dialects that recognised something.
        cached: served from a cache (``Age > 0``); its quota fields were ignored.
        ignored_wait: a success that carried a wait (``Retry-After`` and its
            kin), ignored: a wait is a directive on 429, 503 and 3xx (RFC 9110,
            RFC 6585), and some servers stamp one on every answer.
    """

    status: int
    received_at: float
    quotas: tuple[QuotaState, ...]
    retry: RetryDirective | None
    throttled: bool
    dialects: tuple[str, ...]
    cached: bool
    ignored_wait: bool = False

    @property
    def exhausted(self) -> tuple[QuotaState, ...]:
        """The quotas with nothing remaining."""
        return tuple(q for q in self.quotas if q.exhausted)
