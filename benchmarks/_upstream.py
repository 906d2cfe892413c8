"""The bundled mock API in a process of its own, for the benchmarks.

In the benchmark's own process the server would share the interpreter lock
with the clients being measured, and every client's cost would slow the server
too. Here it runs in a child process (its own interpreter, its own core where
there is one); the parent asks it for its statistics and arrivals over a pipe.
"""

from __future__ import annotations

import functools
import multiprocessing
from typing import TYPE_CHECKING, Any

from ratelimited_client.testing import MockAPIConfig, MockAPIServer, MockAPIStats

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.connection import Connection
    from types import TracebackType

_TIMEOUT = 30.0


def _serve(make: Callable[[], Any], pipe: Connection) -> None:
    """Serve what ``make`` builds; answer each command with that method's result."""
    with make() as server:
        pipe.send(server.url)
        while True:
            command = pipe.recv()
            if command == "stop":
                pipe.send(None)
                return
            pipe.send(getattr(server, command)())


class Upstream:
    """``with Upstream(config) as upstream:`` serves ``config`` on 127.0.0.1 in a child
    process until the block ends; ``upstream.url``, ``stats()``, ``arrivals()``.

    ``Upstream(make)`` serves another server instead: ``make`` is a picklable
    callable (a class, or a ``functools.partial`` of one) that builds a context
    manager with a ``url``, such as ``SlowapiLimiter``; ``ask("record")`` calls its
    ``record()`` in the child."""

    def __init__(self, config: MockAPIConfig | Callable[[], Any]) -> None:
        make = (
            functools.partial(MockAPIServer, config)
            if isinstance(config, MockAPIConfig)
            else config
        )
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(make, child), daemon=True)
        self.url = ""

    def __enter__(self) -> Upstream:
        self._process.start()
        if not self._pipe.poll(_TIMEOUT):
            self._process.kill()
            raise RuntimeError("the mock API process did not start")
        self.url = self._pipe.recv()
        return self

    def ask(self, command: str) -> Any:
        """Call the served object's method ``command`` in the child; its result."""
        self._pipe.send(command)
        if not self._pipe.poll(_TIMEOUT):
            raise RuntimeError(f"the mock API process did not answer {command!r}")
        return self._pipe.recv()

    def stats(self) -> MockAPIStats:
        stats: MockAPIStats = self.ask("stats")
        return stats

    def arrivals(self) -> list[tuple[float, int]]:
        """``(time.monotonic(), status)`` of every limited request it received (one
        monotonic clock for all processes on Linux)."""
        arrivals: list[tuple[float, int]] = self.ask("arrivals")
        return arrivals

    def reset(self) -> None:
        self.ask("reset")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self.ask("stop")
        except (RuntimeError, OSError, EOFError):
            pass
        self._process.join(_TIMEOUT)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
