"""Waiting primitives of the async throttle: a queued request's wake-up signal
(``_Waiter``) and the FIFO semaphore for ``max_concurrency``.

Both work from asyncio and trio: on asyncio a waiter parks on a bare future, on
trio on an ``anyio.Event``. Nothing here knows about quotas.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from collections.abc import Hashable

    from ._permit import Permit

__all__ = ["_FifoSemaphore", "_Waiter", "_resolve", "_running_asyncio_loop"]


def _running_asyncio_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop, or ``None`` under trio (cheaper than sniffio)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Waiter:
    """Private. One queued request, woken when its turn comes.

    On asyncio it parks on a bare future (about a tenth of the memory of an
    ``asyncio.Event``, which carries a deque of its own); on trio on an
    ``anyio.Event``. Cancellation works the same on both: anyio cancels the
    task, the await raises.
    """

    __slots__ = (
        "cancelled",
        "cost",
        "granted",
        "origin",
        "parked",
        "priority",
        "promoted",
        "signal",
        "since",
        "tag",
        "tenant",
    )

    def __init__(
        self,
        priority: int = 0,
        since: float = 0.0,
        tenant: Hashable | None = None,
        cost: float = 1.0,
        origin: str | None = None,
    ) -> None:
        self.signal: asyncio.Future[None] | anyio.Event | None = None
        self.cancelled = False
        self.promoted = False
        self.priority = priority  # higher goes sooner (a bucket's queue)
        self.since = since  # when it queued (the throttle's clock): for promotion
        self.tenant = tenant  # whose share it takes (fair queuing between tenants)
        self.cost = cost
        self.origin = origin  # its origin (origin-wide pauses), for a grant
        self.tag = 0.0  # its start tag in its level (set by the queue)
        # Parked in line (never head yet), where the head admitted before it may hand
        # it its admission (``granted``): the async throttle's ``_grant``.
        self.parked = False
        self.granted: Permit | None = None

    def arm(self) -> None:
        """Make it wakeable (only waiters that will sleep need this)."""
        loop = _running_asyncio_loop()
        self.signal = anyio.Event() if loop is None else loop.create_future()

    async def wait(self) -> None:
        signal = self.signal
        assert signal is not None  # noqa: S101 - armed before queueing
        if isinstance(signal, anyio.Event):
            await signal.wait()
        else:
            await signal

    def wake(self) -> None:
        signal = self.signal
        if signal is None:
            return  # never parked: it is running, and sees its turn at its next look
        if isinstance(signal, anyio.Event):
            signal.set()
        elif not signal.done():
            signal.set_result(None)


class _FifoSemaphore:
    """Private. A counting semaphore that serves waiters strictly in arrival order.

    Built on demand objects only (an ``anyio.Event`` per waiter), so it can be
    created outside any event loop and used from asyncio or trio.

    Attributes:
        total: the slots there are.
        in_use: the slots taken (the throttle's fast path takes one by adding 1
            here when ``try_acquire`` would succeed, one call less).
        waiting: the waiters not cancelled (read by the throttle's fast path).
    """

    __slots__ = ("_waiters", "in_use", "total", "waiting")

    def __init__(self, total: int) -> None:
        self.total = total
        self.in_use = 0
        self._waiters: deque[_Waiter] = deque()
        self.waiting = 0

    def try_acquire(self) -> bool:
        if self.waiting == 0 and self.in_use < self.total:
            self.in_use += 1
            return True
        return False

    async def acquire(self) -> None:
        if self.try_acquire():
            return
        waiter = _Waiter()
        waiter.arm()
        self._waiters.append(waiter)
        self.waiting += 1
        try:
            await waiter.wait()
        except BaseException:
            if waiter.promoted:
                self.release()  # it was handed a slot as it was cancelled: pass it on
            else:
                waiter.cancelled = True
                self.waiting -= 1
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if waiter.cancelled:
                continue
            # Hand the slot straight over; in_use stays the same.
            self.waiting -= 1
            waiter.promoted = True
            waiter.wake()
            return
        self.in_use -= 1
