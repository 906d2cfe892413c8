"""The bundled mock API in a process of its own, for the benchmarks.

In the benchmark's own process the server would share the interpreter lock
with the clients being measured, and every client's cost would slow the server
too. Here it runs in a child process (its own interpreter, its own core where
there is one); the parent asks it for its statistics and arrivals over a pipe.
"""

from __future__ import annotations

import multiprocessing
from typing import TYPE_CHECKING, Any

from ratelimited_client.testing import MockAPIConfig, MockAPIServer, MockAPIStats

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from types import TracebackType

_TIMEOUT = 30.0


def _serve(config: MockAPIConfig, pipe: Connection) -> None:
    with MockAPIServer(config) as server:
        pipe.send(server.url)
        while True:
            command = pipe.recv()
            if command == "stats":
                pipe.send(server.stats())
            elif command == "arrivals":
                pipe.send(server.arrivals())
            elif command == "reset":
                server.reset()
                pipe.send(None)
            else:
                pipe.send(None)
                return


class Upstream:
    """``with Upstream(config) as upstream:`` serves ``config`` on 127.0.0.1 in a child
    process until the block ends; ``upstream.url``, ``stats()``, ``arrivals()``."""

    def __init__(self, config: MockAPIConfig) -> None:
        self.config = config
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(config, child), daemon=True)
        self.url = ""

    def __enter__(self) -> Upstream:
        self._process.start()
        if not self._pipe.poll(_TIMEOUT):
            self._process.kill()
            raise RuntimeError("the mock API process did not start")
        self.url = self._pipe.recv()
        return self

    def _ask(self, command: str) -> Any:
        self._pipe.send(command)
        if not self._pipe.poll(_TIMEOUT):
            raise RuntimeError(f"the mock API process did not answer {command!r}")
        return self._pipe.recv()

    def stats(self) -> MockAPIStats:
        stats: MockAPIStats = self._ask("stats")
        return stats

    def arrivals(self) -> list[tuple[float, int]]:
        """``(time.monotonic(), status)`` of every limited request it received (one
        monotonic clock for all processes on Linux)."""
        arrivals: list[tuple[float, int]] = self._ask("arrivals")
        return arrivals

    def reset(self) -> None:
        self._ask("reset")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self._ask("stop")
        except (RuntimeError, OSError, EOFError):
            pass
        self._process.join(_TIMEOUT)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
