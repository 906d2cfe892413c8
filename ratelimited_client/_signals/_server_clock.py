"""Servers' clocks, estimated from the ``Date`` of their answers: one per origin, bounded."""

from __future__ import annotations

import threading
from collections import deque
from typing import Final

# A server's clock is estimated from the ``Date`` of the answers of this many seconds
# (its drift against ours over that span is milliseconds at worst).
_CLOCK_HORIZON: Final = 60.0
# A ``Date`` this far behind the estimate is the server's clock set back, not its grain
# (a whole second) and a cached value (uvicorn's lags up to a second more). The bucket
# reads its learned windows' resets by the same rule.
CLOCK_STEP: Final = 5.0
# Origins whose clocks are kept per client, before they are forgotten.
_CLOCKS_MAX: Final = 1024


class ServerClock:
    """Private. One server's time, from the ``Date`` of many answers.

    A ``Date`` is stamped in whole seconds, truncated, by a server that may cache
    it (uvicorn refreshes it once a second), and before the answer travels: each
    one is at or behind the server's time when the answer arrived, by up to a
    second and more. So ``Date - received_at`` is a lower bound on the offset
    between the server's clock and ours, every time; the greatest of those seen
    in the last minute is the tightest. Read against it, a reset in epoch seconds
    is late by milliseconds once answers have landed near a second's turn, not by
    the ``Date``'s whole grain. Still a bound on the safe side: never earlier than
    the true reset. A ``Date`` far behind the estimate is a clock set back: the
    estimate starts again from it. Thread-safe.
    """

    __slots__ = ("_lock", "_samples")

    def __init__(self) -> None:
        self._samples: deque[tuple[float, float]] = deque()  # (received, offset), max first
        self._lock = threading.Lock()

    def now_at(self, date: float, received_at: float) -> float:
        """The server's time (epoch seconds) when an answer stamped ``date`` arrived
        at ``received_at`` (monotonic): at or after ``date``, never after the truth."""
        offset = date - received_at
        with self._lock:
            samples = self._samples
            while samples and samples[0][0] < received_at - _CLOCK_HORIZON:
                samples.popleft()
            if samples and samples[0][1] - offset > CLOCK_STEP:
                samples.clear()  # set back: what was seen before no longer holds
            while samples and samples[-1][1] <= offset:
                samples.pop()
            samples.append((received_at, offset))
            best = samples[0][1]
        return received_at + best


class ServerClocks:
    """Private. A :class:`ServerClock` per origin, bounded."""

    __slots__ = ("_clocks",)

    def __init__(self) -> None:
        self._clocks: dict[str, ServerClock] = {}

    def get(self, origin: str) -> ServerClock:
        clock = self._clocks.get(origin)
        if clock is None:
            if len(self._clocks) >= _CLOCKS_MAX:
                self._clocks.clear()  # each is only a tighter bound: safe to forget
            clock = self._clocks[origin] = ServerClock()
        return clock
