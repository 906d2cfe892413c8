"""Several limiters that must all admit at once."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._base import Limiter, Ticket

__all__ = ["CompositeLimiter"]


class _Tickets(tuple["Ticket", ...]):
    """Private. One ticket per child limiter, in order."""

    __slots__ = ()


class CompositeLimiter:
    """Private. Admits only when every child admits; the wait is the longest child wait.

    Acquisition is all-or-nothing: ``acquire`` is only called after
    ``wait_time`` returned 0 for the same ``now``, which means every child admits.
    """

    __slots__ = ("children",)

    def __init__(self, children: Sequence[Limiter]) -> None:
        self.children = tuple(children)

    @property
    def max_cost(self) -> float:
        return min(child.max_cost for child in self.children)

    def wait_time(self, now: float, cost: float) -> float:
        return max(child.wait_time(now, cost) for child in self.children)

    def acquire(self, now: float, cost: float, *, pending: bool) -> Ticket:
        return _Tickets(child.acquire(now, cost, pending=pending) for child in self.children)

    def try_acquire(self, now: float, cost: float) -> Ticket | None:
        for child in self.children:
            if child.wait_time(now, cost) > 0:
                return None
        return _Tickets([child.acquire(now, cost, pending=False) for child in self.children])

    def settle(self, ticket: Ticket, at: float) -> None:
        assert isinstance(ticket, _Tickets)  # noqa: S101 - internal invariant
        for child, part in zip(self.children, ticket, strict=True):
            child.settle(part, at)

    def used(self, now: float) -> float:
        # The busiest child, as a fraction would mislead across different limits.
        return max(child.used(now) for child in self.children)

    def room(self, now: float) -> float:
        return min(child.room(now) for child in self.children)

    def is_idle(self, now: float) -> bool:
        return all(child.is_idle(now) for child in self.children)

    def __repr__(self) -> str:
        return f"<CompositeLimiter {list(self.children)!r}>"
