"""Test helpers: virtual time, and a rate-limited mock API to run clients against.

* :func:`virtual_time`: test mode for code that uses the library. Clients built
  inside run on virtual time that jumps by itself (no real waiting for pauses,
  ``Retry-After`` or backoff), with seeded jitter, and what they did is
  recorded (:class:`VirtualTime`: attempts and their times, retries, pauses).
* :class:`FakeClock`: pass as ``clock=`` to a client or transport; time moves
  only when the test advances it (or by itself, ``autojump=True``).
* :class:`MockAPI`: an ASGI app that enforces a quota the way strict upstreams
  do (sliding, fixed or token-bucket window), answers 429 with ``Retry-After``
  and reports what it saw at ``GET /__stats``.
* :class:`MockAPIServer`: runs a ``MockAPI`` under uvicorn on 127.0.0.1 and a
  free port, in a background thread (needs the ``testing`` extra).
* :class:`NginxLimiter` and :class:`SlowapiLimiter`: real limiters, off the
  shelf (nginx ``limit_req``; slowapi on FastAPI), on 127.0.0.1 and a free
  port, each reporting what it admitted as a :class:`LimiterRecord` (needs the
  ``nginx`` binary; the ``limiters`` extra).
* A pytest plugin (installed with the package) with the fixtures
  ``fake_clock``, ``ratelimited_virtual_time`` and ``mock_api_server``.

From the command line: ``python -m ratelimited_client.testing serve --limit 10``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._clock import FakeClock as FakeClock
from ._virtual import Sent as Sent
from ._virtual import VirtualTime as VirtualTime
from ._virtual import virtual_time as virtual_time

if TYPE_CHECKING:
    from ._mock_api import MockAPI as MockAPI
    from ._mock_api import MockAPIConfig as MockAPIConfig
    from ._mock_api import MockAPIStats as MockAPIStats
    from ._real_limiters import LimiterRecord as LimiterRecord
    from ._real_limiters import NginxLimiter as NginxLimiter
    from ._real_limiters import SlowapiLimiter as SlowapiLimiter
    from ._server import MockAPIServer as MockAPIServer

__all__ = [
    "FakeClock",
    "LimiterRecord",
    "MockAPI",
    "MockAPIConfig",
    "MockAPIServer",
    "MockAPIStats",
    "NginxLimiter",
    "Sent",
    "SlowapiLimiter",
    "VirtualTime",
    "virtual_time",
]

# Loaded on first use, so importing FakeClock (or loading the pytest plugin)
# never needs the server's dependencies.
_LAZY = {
    "MockAPI": "._mock_api",
    "MockAPIConfig": "._mock_api",
    "MockAPIStats": "._mock_api",
    "MockAPIServer": "._server",
    "LimiterRecord": "._real_limiters",
    "NginxLimiter": "._real_limiters",
    "SlowapiLimiter": "._real_limiters",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value
