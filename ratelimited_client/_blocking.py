"""Private. Running a coroutine whose awaits never suspend: one driver for both sides.

Code written once as a coroutine (the call flows' driver, OAuth's token request)
serves the blocking side too: there every awaited step is done before it is
awaited (a ``Ready`` value), so the coroutine never suspends and ``run_blocking``
runs it to its end in one step, on the caller's thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Coroutine, Generator

__all__ = ["DONE", "Ready", "run_blocking"]

T = TypeVar("T")


class Ready(Generic[T]):
    """An awaitable whose value is already there: a blocking step's result, handed
    to the coroutine without suspending it."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, Any, T]:
        yield from ()  # a generator that returns at once, never suspending
        return self.value


DONE: Final = Ready(None)


def run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine over blocking steps: it never suspends, so one step ends it."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        value: T = done.value
        return value
    coroutine.close()
    raise RuntimeError("a blocking step suspended the coroutine")  # pragma: no cover
