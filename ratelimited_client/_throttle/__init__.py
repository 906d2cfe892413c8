"""The gate every request passes: the only place that waits.

One ``Throttle`` per transport (per client). It keeps a ``_Bucket`` per quota
key, each with its own limiter state and FIFO queue, and one FIFO semaphore
for ``max_concurrency`` shared by all buckets.

How a request gets through:

1. *Fast path*: its bucket has nobody waiting, the limiter admits it now and a
   concurrency slot is free: it takes both and goes, without awaiting.
2. Otherwise it queues (refused at once with ``QueueFullError`` if
   ``max_queued`` requests already wait). Only the bucket's *head* works: it
   sleeps until the limiter says its cost fits (one timer, no polling), then
   takes a concurrency slot (FIFO across buckets), re-checks the limiter and
   takes its slot in the same instant, so the request is sent the moment it
   is counted. Then the next waiter becomes head.

A waiter owns nothing until it is admitted, so cancelling it frees its place
and consumes nothing. An admitted request holds a ``Permit``: ``settle()`` when
its response has started (or it failed), ``release()`` when its response is
closed; both are idempotent.

Dating a slot (why the default mode is safe on real sockets): the server
counts a request when it *arrives*, not when we send it, and the first burst
on a cold pool arrives late (it opens connections) while the next rides warm
connections and arrives early. So in the default mode a slot counts from its
send and, once its response is in, is re-dated to the response time (the
sliding window adds 1 ms): the request cannot have arrived later than that.
With ``latency_proof=True`` a slot counts from its send until its response
has arrived, and only then starts its period, so even a request still in
flight when its period would end keeps its slot.

The modules, by job:

- ``_core``: ``ThrottleCore``, the stack-free bookkeeping (admission decisions,
  the fast path, settling, observing answers, statistics); it never waits;
- ``_bucket``: ``_Bucket`` (one quota key) and the statistics snapshots;
- ``_permit``: ``Permit`` and ``SyncPermit``, an admitted request's handle;
- ``_remote``: what the throttle decides about a shared backend (Redis);
- ``_waiting``: the async waiting primitives (``_Waiter``, ``_FifoSemaphore``);
- ``_async_throttle``: ``Throttle``, the waits with anyio (asyncio or trio);
- ``_sync_throttle``: ``SyncThrottle``, the waits with threads.
"""

from __future__ import annotations

from ._async_throttle import Throttle
from ._bucket import BucketStatistics, ThrottleStatistics
from ._core import DEFAULT_MAX_WAIT, ThrottleCore, TimeLeftExceededError
from ._permit import Permit, SyncPermit
from ._sync_throttle import SyncThrottle
from ._units import UnitStatistics
from ._waiting import _Waiter as _Waiter

__all__ = [
    "DEFAULT_MAX_WAIT",
    "BucketStatistics",
    "Permit",
    "SyncPermit",
    "SyncThrottle",
    "Throttle",
    "ThrottleCore",
    "ThrottleStatistics",
    "TimeLeftExceededError",
    "UnitStatistics",
]
