"""Public type aliases for the options the client and the transport accept."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeAlias

from ._rate import Rate, SlidingWindow, TokenBucket

__all__ = ["KeyFunc", "RateTypes"]

#: What the ``rate`` option takes: one rate, several that must all hold, or ``None``.
RateTypes: TypeAlias = (
    Rate | str | SlidingWindow | TokenBucket | Sequence[Rate | str | SlidingWindow | TokenBucket]
)

#: Maps a request (an ``httpx.Request``, or an ``httpx2.Request`` under
#: ``ratelimited_client.httpx2``) to the quota bucket it counts against.
KeyFunc: TypeAlias = Callable[[Any], Hashable]
