"""pytest fixtures for testing code that uses ratelimited_client.

Installed as a pytest plugin with the package (entry point ``pytest11``):

* ``fake_clock``: a fresh :class:`FakeClock` at t = 0.
* ``ratelimited_virtual_time``: test mode (:func:`virtual_time`) for the whole
  test: the async clients it builds run on virtual time; yields the
  :class:`VirtualTime` record.
* ``mock_api_server``: a factory; ``mock_api_server(limit=20, window=1.0)``
  starts a :class:`MockAPIServer` on 127.0.0.1 and a free port and returns it
  (``.url``, ``.stats()``); every server it started is stopped after the test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import pytest

from ._clock import FakeClock
from ._virtual import VirtualTime, virtual_time

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ._server import MockAPIServer

__all__ = ["MockAPIServerFactory", "fake_clock", "mock_api_server", "ratelimited_virtual_time"]


class MockAPIServerFactory(Protocol):
    """Starts a mock API server; keyword arguments are ``MockAPIConfig`` fields."""

    def __call__(self, **config: Any) -> MockAPIServer: ...


@pytest.fixture
def fake_clock() -> FakeClock:
    """Virtual time at t = 0 that moves only with ``await fake_clock.advance(s)``."""
    return FakeClock()


@pytest.fixture
def ratelimited_virtual_time() -> Iterator[VirtualTime]:
    """Test mode for the test: clients built in it run on virtual time (no real
    waiting), with seeded jitter; the record of what they did."""
    with virtual_time() as record:
        yield record


@pytest.fixture
def mock_api_server() -> Iterator[MockAPIServerFactory]:
    """Start rate-limited mock API servers on 127.0.0.1; all stopped after the test."""
    from ._mock_api import MockAPIConfig
    from ._server import MockAPIServer

    started: list[MockAPIServer] = []

    def start(**config: Any) -> MockAPIServer:
        server = MockAPIServer(MockAPIConfig(**config))
        server.start()
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in reversed(started):
            server.stop()
