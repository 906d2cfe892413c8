"""Where time comes from: the only module that reads the clock or sleeps.

Limiters never read time themselves: callers pass ``now``. The throttle reads
``now()`` from a :class:`Clock` and waits with ``sleep_until()``, so tests can
swap in :class:`ratelimited_client.testing.FakeClock` and never sleep for real.
"""

from __future__ import annotations

import math
import time
from typing import Protocol, runtime_checkable

import anyio

__all__ = ["MONOTONIC", "Clock", "MonotonicClock"]


@runtime_checkable
class Clock(Protocol):
    """A monotonic clock in float seconds that can also wait."""

    def now(self) -> float:
        """The current time in seconds; never goes backwards."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return at or after ``deadline`` (``math.inf`` waits until cancelled)."""
        ...

    def cancel_scope(self, deadline: float) -> anyio.CancelScope:
        """A cancel scope that is cancelled when this clock reaches ``deadline``."""
        ...


class MonotonicClock:
    """Private. ``time.monotonic`` and the running event loop's sleep (asyncio or trio)."""

    __slots__ = ()

    def now(self) -> float:
        return time.monotonic()

    async def sleep_until(self, deadline: float) -> None:
        if deadline == math.inf:
            await anyio.sleep_forever()
            return
        # anyio.sleep(0) is still a checkpoint, so a cancelled waiter notices.
        await anyio.sleep(max(0.0, deadline - time.monotonic()))

    def cancel_scope(self, deadline: float) -> anyio.CancelScope:
        # Translate to the running loop's own clock (trio's has another origin).
        return anyio.CancelScope(deadline=anyio.current_time() + (deadline - time.monotonic()))

    def __repr__(self) -> str:
        return "MonotonicClock()"


MONOTONIC = MonotonicClock()
