"""Per-key bookkeeping of the throttle (``_Bucket``) and the statistics it reports
(``BucketStatistics``, ``ThrottleStatistics``).

A bucket is a record: the throttle core reads and writes its fields, the permit
counts its holds on it. It waits for nothing itself; the async throttle parks
the head's wake-up (a cancel scope or a future) in it so ``kick`` can reach it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._queue import BucketQueue

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Hashable, Mapping

    import anyio

    from .._feedback import ServerFeedback
    from .._limiters import GCRALimiter, Limiter
    from .._rate import LimitSpec, Rate, TokenBucket
    from ._units import BucketUnits, UnitStatistics
    from ._waiting import _Waiter

__all__ = ["BucketStatistics", "ThrottleStatistics", "_Bucket"]


class _Bucket:
    """Private. One quota key: limiter state and its queue."""

    __slots__ = (
        "admitted",
        "fallback",
        "fast",
        "fast_limiter",
        "fast_other",
        "feedback",
        "head",
        "head_scope",
        "head_wake",
        "holds",
        "key",
        "limiter",
        "live",
        "outstanding",
        "queue",
        "remote",
        "shared_rate",
        "tenant_limiters",
        "units",
    )

    def __init__(self, key: Hashable, limiter: Limiter | None, feedback: ServerFeedback) -> None:
        self.key = key
        self.limiter = limiter
        self.feedback = feedback
        # Who waits, by priority (see ``BucketQueue``), and the one waiting for its
        # slot: the head (async throttle; the sync one asks the queue).
        self.queue = BucketQueue()
        self.head: _Waiter | None = None
        self.live = 0  # waiters not cancelled (the head included)
        self.head_scope: anyio.CancelScope | None = None
        self.head_wake: asyncio.Future[None] | None = None
        # The fast path (see ``ThrottleCore._fast_admit``): no shared backend and the
        # limiter, if any, taking dated units. A single token bucket is checked inline
        # (``fast_limiter``), any other limiter through ``try_acquire`` (``fast_other``).
        self.fast = False
        self.fast_limiter: GCRALimiter | None = None
        self.fast_other: Limiter | None = None
        self.outstanding = 0  # permits admitted and not yet settled
        self.holds = 0  # answers being read whose signal is not known yet
        self.admitted = 0
        # With a shared backend: the limits decided there, and the local share kept
        # while the backend is away (on_unavailable="local").
        self.remote: tuple[LimitSpec, ...] | None = None
        self.fallback: Limiter | None = None
        self.shared_rate: Rate | None = None  # learned by some process, kept in the backend
        # The tenants' own caps inside this bucket's quota (``tenant_rates``).
        self.tenant_limiters: dict[Hashable, Limiter] | None = None
        # Quotas in other units (tokens), once configured or metered: see ``_units``.
        self.units: BucketUnits | None = None

    def kick(self) -> None:
        """Wake the head early: something that may shorten its wait happened."""
        if self.head_scope is not None:
            self.head_scope.cancel()
        wake = self.head_wake
        if wake is not None and not wake.done():
            wake.set_result(None)


@dataclass(frozen=True, slots=True)
class BucketStatistics:
    """A snapshot of one quota bucket.

    Attributes:
        key: the bucket key (by default the origin, ``"https://host:443"``).
        waiting: requests queued on this bucket.
        used: quota units counted against the bucket right now.
        admitted: requests admitted through this bucket since it was created.
        paused_for: seconds the server's last pause still holds the bucket (0 if none).
        learned_rate: the rate learned from the server when none was configured.
        ignored_waits: successes whose ``Retry-After`` was ignored (no directive on
            a success).
        agreed_readings: quota readings (``remaining``, reset) that agreed with the
            configured limiter, which then decided alone (no cap from the server).
        corrected: the stricter shape adopted over the configured rate after the
            server rejected its bursts (same rate, smaller burst), or ``None``; a
            WARNING says so when it happens.
        units: the bucket's quotas in other units (a model API's tokens), by unit:
            limit, use, headroom, and what was reserved vs settled. Empty unless
            requests carry units (``ratelimit_units``, the ``meter``) or
            ``unit_rates`` configures them.
        waiting_by_priority: the requests queued on this bucket, by priority.
        waiting_by_tenant: the requests queued on this bucket, by tenant (the
            requests without one under ``"None"``).
        reserve: the units of the bucket's quota kept for high priorities
            (``priority_reserve``), or ``None`` without a reserve or a local limit.
        reserve_in_use: how much of ``reserve`` is taken right now: the part of it
            that is not free (only requests at or above the reserve's priority can
            have taken it).
    """

    key: str
    waiting: int
    used: float
    admitted: int
    paused_for: float = 0.0
    learned_rate: Rate | None = None
    ignored_waits: int = 0
    agreed_readings: int = 0
    corrected: TokenBucket | None = None
    units: Mapping[str, UnitStatistics] = field(default_factory=dict)
    waiting_by_priority: Mapping[int, int] = field(default_factory=dict)
    waiting_by_tenant: Mapping[str, int] = field(default_factory=dict)
    reserve: float | None = None
    reserve_in_use: float = 0.0


@dataclass(frozen=True, slots=True)
class ThrottleStatistics:
    """A snapshot of a throttle, from ``RateLimitedTransport.statistics()``.

    Attributes:
        in_flight: admitted requests whose response is not yet closed.
        queued: requests waiting for their bucket or for a concurrency slot.
        max_concurrency: the configured cap, or ``None``.
        max_queued: the configured bound, or ``None``.
        admitted: requests admitted since the throttle was created.
        rejected: requests refused with ``QueueFullError``.
        buckets: per-bucket snapshots, by key.
        retry_budget_left: retries the client's retry budget allows right now
            (``None`` without retries).
    """

    in_flight: int
    queued: int
    max_concurrency: int | None
    max_queued: int | None
    admitted: int
    rejected: int
    buckets: Mapping[str, BucketStatistics]
    retry_budget_left: float | None = None
