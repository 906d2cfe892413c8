"""Private. Pure limiter state machines; no I/O, no clock, no sleeping."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._rate import SlidingWindow, TokenBucket
from ._base import Limiter, Ticket
from ._composite import CompositeLimiter
from ._sliding_window import SlidingWindowLimiter
from ._token_bucket import GCRALimiter

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .._rate import LimitSpec

__all__ = [
    "CompositeLimiter",
    "GCRALimiter",
    "Limiter",
    "SlidingWindowLimiter",
    "Ticket",
    "build_limiter",
]


def build_limiter(specs: Sequence[LimitSpec]) -> Limiter | None:
    """Fresh state for ``specs``: one limiter, a composite of several, or ``None``.
    The sliding windows share one limiter (one log for all of them)."""
    limiters: list[Limiter] = []
    windows = [spec.rate for spec in specs if isinstance(spec, SlidingWindow)]
    if windows:
        limiters.append(SlidingWindowLimiter(*windows))
    for spec in specs:
        if isinstance(spec, TokenBucket):
            assert spec.burst is not None  # noqa: S101 - filled in by TokenBucket
            limiters.append(GCRALimiter(spec.rate, spec.burst))
    if not limiters:
        return None
    if len(limiters) == 1:
        return limiters[0]
    return CompositeLimiter(limiters)
