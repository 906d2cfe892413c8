"""``FakeClock``: virtual time for tests of anything that takes a ``clock``."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math

import anyio
import anyio.lowlevel

__all__ = ["FakeClock"]

# Event-loop turns to let pass on asyncio before falling back to anyio's check.
_TURNS = 50


async def _all_blocked() -> None:
    """``anyio.wait_all_tasks_blocked``, quicker on asyncio: there it sleeps 100 ms of
    real time whenever a task is still runnable, which a chain of wake-ups (an event
    set, a future resolved, a task scheduled) always leaves for a turn or two, so a
    test that steps through many deadlines spent seconds asleep. Here the loop turns
    (``sleep(0)``) until every other task waits on a pending future, and only a task
    that stays runnable for ``_TURNS`` turns falls back to anyio's check."""
    try:
        this = asyncio.current_task()
    except RuntimeError:
        this = None  # not asyncio (trio)
    if this is not None:
        for _ in range(_TURNS):
            await asyncio.sleep(0)
            if all(_waits(task) for task in asyncio.all_tasks() if task is not this):
                return
    await anyio.wait_all_tasks_blocked()


def _waits(task: object) -> bool:
    """The task awaits a future that is not done (asyncio's own record of it)."""
    waiter = getattr(task, "_fut_waiter", None)
    return waiter is not None and not waiter.done()


class _Sleeper:
    __slots__ = ("deadline", "event")

    def __init__(self, deadline: float, event: anyio.Event | None) -> None:
        self.deadline = deadline
        self.event: anyio.Event | None = event


class FakeClock:
    """A clock that only moves when the test says so; nothing sleeps for real.

    Pass it as ``clock=`` to a client or transport. Tasks sleeping on it wake
    when ``await clock.advance(seconds)`` moves time past their deadline;
    ``advance`` steps through every deadline in order, letting all tasks run
    (``anyio.wait_all_tasks_blocked``) at each one, so a chain of timers fires
    exactly as it would in real time. Works on asyncio and trio.

    Usage::

        clock = FakeClock()
        transport = RateLimitedTransport(inner, rate=Rate(2, 1.0), clock=clock)
        ...  # start requests in a task group
        await clock.advance(1.0)  # the next two are admitted at t=1.0

    With ``autojump=True`` nobody needs to advance it: whenever every task waits and
    one of them sleeps on the clock, time jumps to the earliest deadline (the way
    trio's ``MockClock(autojump_threshold=0)`` does, on asyncio too). A plain
    ``await client.get(...)`` then runs through pauses and backoffs at once. Time
    also jumps while a task waits on real I/O, so it is for tests whose HTTP is in
    memory (``respx``, ``httpx.MockTransport``). See :func:`virtual_time`.

    .. versionadded:: 0.1
    """

    def __init__(self, start: float = 0.0, *, autojump: bool = False) -> None:
        self._now = float(start)
        self._heap: list[tuple[float, int, _Sleeper]] = []
        self._seq = itertools.count()
        self._scopes: list[tuple[float, anyio.CancelScope]] = []
        self.autojump = autojump
        self._driving = False  # a sleeper is moving time on (autojump)

    def now(self) -> float:
        """The current virtual time in seconds."""
        return self._now

    @property
    def sleepers(self) -> int:
        """How many tasks are sleeping on this clock."""
        return sum(1 for _, _, s in self._heap if s.event is not None)

    @property
    def next_deadline(self) -> float:
        """The earliest deadline anyone sleeps until (``math.inf`` if none)."""
        self._drop_cancelled()
        return self._heap[0][0] if self._heap else math.inf

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until the clock has been advanced to ``deadline``."""
        if deadline <= self._now:
            await anyio.lowlevel.checkpoint()
            return
        sleeper = _Sleeper(deadline, anyio.Event())
        heapq.heappush(self._heap, (deadline, next(self._seq), sleeper))
        try:
            while True:
                if self.autojump and not self._driving:
                    await self._drive(sleeper)
                    return
                assert sleeper.event is not None  # noqa: S101
                await sleeper.event.wait()
                if self._now >= deadline:
                    return
                sleeper.event = anyio.Event()  # woken to drive (autojump)
        except BaseException:
            sleeper.event = None
            if self.autojump and not self._driving:
                # Cancelled, maybe just after being handed the driving: hand it on, or
                # nobody would move time.
                self._hand_driving_on(sleeper)
            raise
        finally:
            sleeper.event = None  # cancelled or woken: either way no longer a sleeper

    async def _drive(self, sleeper: _Sleeper) -> None:
        """Autojump: move time on to each earliest deadline whenever every other task
        waits, until ``sleeper``'s own has come; then hand the driving to the earliest
        sleeper left (woken early, it drives on)."""
        self._driving = True
        try:
            while self._now < sleeper.deadline:
                await _all_blocked()
                self._drop_cancelled()
                if self._heap:
                    self._now = max(self._now, self._heap[0][0])
                self._fire_due()
        finally:
            self._driving = False
            self._hand_driving_on(sleeper)

    def _hand_driving_on(self, sleeper: _Sleeper) -> None:
        """Wake the earliest sleeper other than ``sleeper``: it drives on."""
        self._drop_cancelled()
        for _, _, other in sorted(self._heap, key=lambda entry: entry[:2]):
            if other.event is not None and other is not sleeper:
                other.event.set()
                break

    def cancel_scope(self, deadline: float) -> anyio.CancelScope:
        """A cancel scope cancelled when ``advance`` reaches ``deadline``."""
        scope = anyio.CancelScope()
        if deadline <= self._now:
            scope.cancel()
        else:
            self._scopes.append((deadline, scope))
            # A timer at the deadline, so advance() stops there.
            heapq.heappush(self._heap, (deadline, next(self._seq), _Sleeper(deadline, None)))
        return scope

    def _drop_cancelled(self) -> None:
        while (
            self._heap
            and self._heap[0][2].event is None
            and not any(d == self._heap[0][0] for d, _ in self._scopes)
        ):
            heapq.heappop(self._heap)

    def _fire_due(self) -> None:
        while self._heap and self._heap[0][0] <= self._now:
            _, _, sleeper = heapq.heappop(self._heap)
            if sleeper.event is not None:
                sleeper.event.set()
        due = [scope for deadline, scope in self._scopes if deadline <= self._now]
        self._scopes = [(d, s) for d, s in self._scopes if d > self._now]
        for scope in due:
            scope.cancel()

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing every deadline on the way in order."""
        if not seconds >= 0:
            raise ValueError(f"FakeClock.advance needs seconds >= 0, got {seconds!r}")
        target = self._now + seconds
        await _all_blocked()
        while True:
            self._drop_cancelled()
            if not self._heap or self._heap[0][0] > target:
                break
            self._now = max(self._now, self._heap[0][0])
            self._fire_due()
            await _all_blocked()
        self._now = target
        await _all_blocked()

    async def run_until_idle(self, limit: float = 3600.0) -> float:
        """Advance to each next deadline until nobody sleeps (at most ``limit`` seconds).

        Returns the virtual seconds that passed.
        """
        start = self._now
        await _all_blocked()
        while self.next_deadline <= start + limit:
            await self.advance(self.next_deadline - self._now)
        return self._now - start

    def __repr__(self) -> str:
        return f"<FakeClock now={self._now:g} sleepers={self.sleepers}>"
