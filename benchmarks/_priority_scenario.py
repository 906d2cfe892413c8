"""The priority scenario of issue 22, shared by ``bench_priorities.py`` and
``tests/integration/test_priorities_live.py``: over real sockets, a strict sliding
window of 20 requests a second saturated by a batch of 300 at priority 0, and 25
interactive requests arriving one every 200 ms for 5 s.

``run(url, urgent, **options)`` sends both through one ``RateLimitedClient`` told
the rate, the interactive ones at priority ``urgent`` (0: plain FIFO), and returns
each priority's waits in the throttle (from arrival to admission), when the batch
finished and when the run did.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from typing import Any

import anyio

from ratelimited_client import Hooks, RateLimitedClient, Throttled, priority

__all__ = ["BATCH", "EVERY", "INTERACTIVE", "LEAST", "LIMIT", "Outcome", "least", "p99", "run"]

LIMIT = 20
BATCH = 300
INTERACTIVE = 25
EVERY = 0.2


def least(batch: int = BATCH) -> float:
    """The least time for the batch and the interactive requests together, at 20 a
    second in a sliding window: the last goes at (ceil(total / 20) - 1) s."""
    return (math.ceil((batch + INTERACTIVE) / LIMIT) - 1) * 1.0


#: 16 s for the 325 of the scenario.
LEAST = least()


@dataclass
class Outcome:
    """Waits in the throttle by priority, and when the batch and the run ended (s)."""

    waits: dict[int, list[float]] = field(default_factory=dict)
    batch_done: float = 0.0
    elapsed: float = 0.0


class _Waits(Hooks):
    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome

    def on_throttled(self, event: Throttled) -> None:
        self.outcome.waits.setdefault(event.priority, []).append(event.waited)


def p99(waits: list[float]) -> float:
    """The 99th percentile (nearest rank) of ``waits``."""
    ordered = sorted(waits)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


async def run(url: str, urgent: int, batch_size: int = BATCH, **options: Any) -> Outcome:
    """The batch (``batch_size`` requests; the scenario's 300 by default) and the
    interactive stream against the mock at ``url`` (bounded: it fails after three
    times the least time and 30 s)."""
    outcome = Outcome()
    async with RateLimitedClient(
        base_url=url, rate=f"{LIMIT}/second", metrics=_Waits(outcome), **options
    ) as client:
        started = time.perf_counter()

        async def batch(i: int) -> None:
            response = await client.get(f"/items/{i}")
            response.raise_for_status()
            outcome.batch_done = max(outcome.batch_done, time.perf_counter() - started)

        async def interactive() -> None:
            async with anyio.create_task_group() as stream:
                for i in range(INTERACTIVE):
                    ask = functools.partial(client.get, f"/me/{i}", extensions=priority(urgent))
                    stream.start_soon(ask)
                    await anyio.sleep(EVERY)

        with anyio.fail_after(3 * least(batch_size) + 30):
            async with anyio.create_task_group() as tasks:
                for i in range(batch_size):
                    tasks.start_soon(batch, i)
                await anyio.sleep(0.1)  # the batch is queued: the bucket is saturated
                tasks.start_soon(interactive)
        outcome.elapsed = time.perf_counter() - started
    return outcome
