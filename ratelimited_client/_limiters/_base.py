"""The limiter protocol: a pure state machine over an injected ``now``.

A limiter never sleeps and never reads a clock. The throttle asks
``wait_time(now, cost)``; when that is ``0.0`` it calls ``acquire`` at once and
gets a ticket, and later ``settle``s the ticket with the moment the request
most likely reached the server (see ``_throttle``). Everything is in float
seconds on one monotonic clock.

Tickets come in two kinds:

* *dated* (``pending=False``): the request counts from ``now``; ``settle`` may
  only move its date later (the request reached the server later than sent).
* *pending* (``pending=True``, the latency-proof mode): the request occupies
  room from ``acquire`` until ``settle`` dates it, so room it holds cannot be
  reused until its response has arrived plus the whole period.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Limiter", "Ticket"]


class Ticket(Protocol):
    """Private. What ``acquire`` hands back, to be settled exactly once."""


class Limiter(Protocol):
    """Private. One quota's state machine."""

    @property
    def max_cost(self) -> float:
        """The largest cost one acquisition can ever be admitted with."""
        ...

    def wait_time(self, now: float, cost: float) -> float:
        """Seconds until ``cost`` could be admitted: ``0.0`` now, ``math.inf`` if only
        settling a pending ticket can make room."""
        ...

    def acquire(self, now: float, cost: float, *, pending: bool) -> Ticket:
        """Take ``cost`` units at ``now``. Only valid right after ``wait_time`` gave 0."""
        ...

    def try_acquire(self, now: float, cost: float) -> Ticket | None:
        """``wait_time`` and a dated ``acquire`` in one step: a ticket if ``cost`` fits
        at ``now``, else ``None`` with nothing changed (the throttle's fast path)."""
        ...

    def settle(self, ticket: Ticket, at: float) -> None:
        """Date a ticket: the request reached the server no later than ``at``."""
        ...

    def used(self, now: float) -> float:
        """Units counted against the quota at ``now`` (pending ones included)."""
        ...

    def room(self, now: float) -> float:
        """Units that could be admitted at ``now`` at once (the local model's view of
        what the server should still have left)."""
        ...

    def is_idle(self, now: float) -> bool:
        """True when the state holds nothing that could delay a future acquisition."""
        ...
