"""What both vendor examples do alike: start the bundled mock with a vendor's
headers, fire the calls through an SDK client, report what the mock saw."""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

from ratelimited_client.testing import MockAPIConfig, MockAPIServer

if TYPE_CHECKING:
    from ratelimited_client.testing._dialects import Dialect

CALLS = 60
CONCURRENCY = 30
LIMIT = 20  # per second, a strict sliding window

#: Opens an SDK client on the mock's URL (``bare``: the SDK alone) and hands back
#: one call; the call raises the SDK's rate-limit error when it is refused.
OpenSDK = Callable[[str, bool], AbstractAsyncContextManager[Callable[[int], Awaitable[object]]]]


async def _ask_all(url: str, open_sdk: OpenSDK, refused: type[Exception], bare: bool) -> int:
    """Fire the calls, ``CONCURRENCY`` at a time; how many were answered."""
    slots = asyncio.Semaphore(CONCURRENCY)

    async with open_sdk(url, bare) as ask:

        async def one(i: int) -> bool:
            async with slots:
                try:
                    await ask(i)
                except refused:
                    return False
            return True

        return sum(await asyncio.gather(*(one(i) for i in range(CALLS))))


def run(dialect: Dialect, path: str, open_sdk: OpenSDK, refused: type[Exception]) -> None:
    """The example's command line: through ``RateLimitedClient``, or ``--bare``."""
    parser = argparse.ArgumentParser(description=f"{CALLS} SDK calls against a mock quota.")
    parser.add_argument("--bare", action="store_true", help="the SDK alone, no ratelimited_client")
    bare = parser.parse_args().bare
    with MockAPIServer(MockAPIConfig(limit=LIMIT, window=1.0, dialect=dialect)) as server:
        started = time.monotonic()
        answered = asyncio.run(_ask_all(server.url + path, open_sdk, refused, bare))
        elapsed = time.monotonic() - started
        stats = server.stats()
    least = math.ceil(CALLS / LIMIT) - 1  # seconds: the last second's calls go after this
    who = "bare SDK" if bare else "RateLimitedClient"
    print(f"{who}: {answered} answered, {CALLS - answered} refused")
    print(f"429s the mock sent: {stats.rejected}")
    print(f"wall time: {elapsed:.2f} s (the quota allows no less than {least} s)")
