"""Private. The switch that ``ratelimited_client.testing.virtual_time()`` turns on:
async clients built while it is on take their clock, their randomness and one more
hook from it (``ClientState.build`` asks :func:`applied`)."""

from __future__ import annotations

import dataclasses
import random
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._hooks import Hooks

if TYPE_CHECKING:
    from ._clock import Clock
    from ._options import ThrottleOptions

__all__ = ["ACTIVE", "TestMode", "applied"]


@dataclass(frozen=True, slots=True)
class TestMode:
    """What a client built in test mode takes: ``clock`` unless one is given,
    randomness seeded from ``seed`` (retry jitter, pause jitter), and ``hooks``
    beside its own."""

    clock: Clock
    seed: int
    hooks: Hooks


ACTIVE: ContextVar[TestMode | None] = ContextVar("ratelimited_client_test_mode", default=None)


def applied(options: ThrottleOptions) -> tuple[ThrottleOptions, random.Random | None]:
    """The options as test mode changes them, and the throttle's random source
    (``None``: test mode is off, nothing changed)."""
    mode = ACTIVE.get()
    if mode is None:
        return options, None
    rng = random.Random(mode.seed)  # noqa: S311 - jitter, not secrets  # nosec B311
    changed: ThrottleOptions = {**options}
    if changed.get("clock") is None:
        changed["clock"] = mode.clock
    retry = changed.get("retry")
    if retry is not None:
        changed["retry"] = dataclasses.replace(retry, random=random.Random(rng.random()))  # noqa: S311  # nosec B311
    metrics = changed.get("metrics")
    if metrics is None:
        changed["metrics"] = [mode.hooks]
    elif isinstance(metrics, Hooks):
        changed["metrics"] = [metrics, mode.hooks]
    else:
        changed["metrics"] = [*metrics, mode.hooks]
    return changed, rng
