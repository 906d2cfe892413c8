"""Test mode: a user's own tests of code that uses the library, on virtual time."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._hooks import Hooks, Paused, RequestCompleted, RequestSent
from .._test_mode import ACTIVE, TestMode
from ._clock import FakeClock

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .._retry import RetryEvent

__all__ = ["Sent", "VirtualTime", "virtual_time"]


@dataclass(frozen=True, slots=True)
class Sent:
    """One attempt that left for the wire: when (virtual seconds) and what."""

    at: float
    method: str
    path: str
    attempt: int


class VirtualTime(Hooks):
    """What the clients built under :func:`virtual_time` did, on its clock.

    Attributes:
        clock: the virtual clock (a :class:`FakeClock` that jumps by itself).
        sent: every attempt sent, with its virtual time.
        completed: every attempt's end (status or error), in order.
        retries: every retry decided (``RetryEvent``: attempt, wait, reason).
        gave_up: every call that gave up after retrying.
        pauses: every pause of a bucket (``Paused``: delay, source).
    """

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sent: list[Sent] = []
        self.completed: list[RequestCompleted] = []
        self.retries: list[RetryEvent] = []
        self.gave_up: list[RetryEvent] = []
        self.pauses: list[Paused] = []

    @property
    def now(self) -> float:
        """Virtual seconds since the mode began (it starts at 0 unless told)."""
        return self.clock.now()

    @property
    def statuses(self) -> list[int | None]:
        """Each attempt's status in order (``None`` where it failed without one)."""
        return [event.status for event in self.completed]

    def on_request_sent(self, event: RequestSent) -> None:
        self.sent.append(Sent(self.clock.now(), event.method, event.path, event.attempt))

    def on_request_completed(self, event: RequestCompleted) -> None:
        self.completed.append(event)

    def on_retry(self, event: RetryEvent) -> None:
        self.retries.append(event)

    def on_give_up(self, event: RetryEvent) -> None:
        self.gave_up.append(event)

    def on_paused(self, event: Paused) -> None:
        self.pauses.append(event)

    def __repr__(self) -> str:
        return (
            f"<VirtualTime now={self.now:g} sent={len(self.sent)} "
            f"retries={len(self.retries)} pauses={len(self.pauses)}>"
        )


@contextmanager
def virtual_time(*, seed: int = 0, start: float = 0.0) -> Iterator[VirtualTime]:
    """Run code that uses the library on virtual time: every async client or transport
    built inside (``RateLimitedClient``, ``RateLimitedTransport``, both stacks, SDK
    subclasses) that was given no ``clock`` takes one that jumps to the next deadline
    whenever every task waits, so throttling, ``Retry-After`` pauses and backoff take
    no real time; its jitter is seeded from ``seed``; and what it does is recorded on
    the :class:`VirtualTime` this yields (attempts with their virtual times, retries,
    pauses). Retries, budgets and deadlines work as in production.

    For tests whose HTTP is in memory (``respx``, ``httpx.MockTransport``): time
    also jumps while a task waits on a real socket. Time moves when a task sleeps
    on the clock (the throttle's waits, backoff, pauses): a deadline met while
    every task waits on something else (a concurrency slot held by an answer that
    never comes) does not move it. The sync clients wait on threads and keep real
    time. The pytest fixture ``ratelimited_virtual_time`` wraps this.

    Usage::

        with virtual_time() as vt:
            async with RateLimitedClient(base_url="https://api.test") as client:
                response = await client.get("/x")  # a 429 with Retry-After: 30, then 200
        assert [s.at for s in vt.sent] == [0.0, 30.0]

    .. versionadded:: 0.1
    """
    clock = FakeClock(start, autojump=True)
    record = VirtualTime(clock)
    token = ACTIVE.set(TestMode(clock=clock, seed=seed, hooks=record))
    try:
        yield record
    finally:
        ACTIVE.reset(token)
