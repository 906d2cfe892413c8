"""An admitted request's hold on its slots: ``Permit`` (async) and ``SyncPermit``.

The transports call ``hold``, ``settle``, ``observe``, ``observe_quiet`` and
``release``; the permit passes each on to its throttle through the methods the
throttle keeps for it (``settle_permit``, ``observe_for``, ``kick``,
``permit_done``), and the throttle reads back the public fields set at
admission (``bucket``, ``tickets``, ``fast_limiter``, ``cost``, ``sent_at``,
``remote``).
"""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import threading
    from collections.abc import Hashable, Mapping, Sequence

    from .._backends import RemoteAdmission
    from .._limiters import GCRALimiter, Limiter, Ticket
    from .._metering import UsageTap
    from .._signals import RateLimitSignal
    from ._bucket import _Bucket
    from ._core import ThrottleCore
    from ._sync_throttle import SyncThrottle
    from ._units import Reservation, UnitLedger

__all__ = ["Permit", "SyncPermit"]


class Permit:
    """Private. An admitted request's hold on its quota slots and concurrency slot.

    Attributes (set at admission; the throttle reads them when it settles the
    permit and when it reports the answer to a shared backend):
        bucket: the bucket it was admitted on.
        tickets: what each limiter handed out for it, dated when it settles.
        fast_limiter: the token bucket that took a dated unit on the fast path, or
            ``None``.
        cost: the units it took.
        sent_at: when it was admitted (on the throttle's clock).
        remote: the units taken in a shared backend, or ``None``.
        units: its reservations of other units (tokens), each ``(ledger,
            reservation)``, until they are settled (then empty).
        tap: what reads the usage at the end of a streamed answer, or ``None``.
    """

    __slots__ = (
        "_holding",
        "_released",
        "_settled",
        "_throttle",
        "bucket",
        "cost",
        "fast_limiter",
        "remote",
        "sent_at",
        "tap",
        "tickets",
        "units",
    )

    def __init__(
        self,
        throttle: ThrottleCore,
        bucket: _Bucket,
        tickets: Sequence[tuple[Limiter, Ticket]],
        sent_at: float,
        fast_limiter: GCRALimiter | None = None,
        cost: float = 1.0,
    ) -> None:
        self._throttle = throttle
        self.bucket = bucket
        self.tickets = tickets
        self.fast_limiter = fast_limiter  # the token bucket that took a dated unit on the fast path
        self.cost = cost
        self._settled = False
        self._released = False
        self._holding = False
        self.sent_at = sent_at
        self.remote: RemoteAdmission | None = None  # the units taken in a shared backend
        self.units: tuple[tuple[UnitLedger, Reservation], ...] = ()
        self.tap: UsageTap | None = None

    @property
    def key(self) -> Hashable:
        return self.bucket.key

    def settle(self) -> None:
        """The response has started arriving, or the attempt failed: date the slots."""
        if not self._settled:
            self._settled = True
            self._throttle.settle_permit(self)

    def hold(self) -> None:
        """Hold the whole bucket until ``observe``: the answer is still being read."""
        if not self._holding:
            self._holding = True
            self.bucket.holds += 1

    def _unhold(self) -> None:
        if self._holding:
            self._holding = False
            self.bucket.holds -= 1
            self._throttle.kick(self.bucket)

    def observe(self, signal: RateLimitSignal, origin: str | None) -> list[tuple[float, str]]:
        """Feed what the server said in this response to the bucket (settles first).

        Returns the pauses it began, as ``(delay, source)``.
        """
        self.settle()
        pauses = self._throttle.observe_for(self, signal, origin)
        self._unhold()
        return pauses

    def observe_quiet(self, status: int, received_at: float, *, cached: bool) -> None:
        """``observe`` for an answer that says nothing of rate limits (most of them):
        settles first too."""
        if not self._settled:
            self._settled = True  # ``settle``, inline: most answers come this way
            self._throttle.settle_permit(self)
        if not cached and self.bucket.feedback.quiet_answer(status, self.sent_at, received_at):
            self._throttle.kick(self.bucket)
        if self._holding:
            self._unhold()

    def quiet_done(self, status: int, received_at: float, *, cached: bool) -> None:
        """``observe_quiet`` then ``release``, in one call: a quiet answer read already
        (most of them), its permit neither settled nor held, nothing reserved."""
        if self._settled or self._holding or self._released or self.units:
            self.observe_quiet(status, received_at, cached=cached)
            self.release()
            return
        self._settled = self._released = True
        bucket = self.bucket
        throttle = self._throttle
        throttle.permit_done(self, settle=True)  # ``settle_permit``, the slot freed
        if not cached and bucket.feedback.quiet_answer(status, self.sent_at, received_at):
            throttle.kick(bucket)

    def settle_units(self, usage: Mapping[str, float] | None, *, refused: bool = False) -> None:
        """Settle the reservations of other units to what the answer used (``None``:
        keep the estimates; ``refused``: nothing was used). Once."""
        if self.units:
            self._throttle.settle_units(self, usage, refused=refused)

    def release(self) -> None:
        """The response is closed: free the concurrency slot (settling first if needed).
        Reservations of other units not settled by then keep their estimates (a stream
        closed before its usage came, an attempt that failed after sending)."""
        if self._released:
            return
        if self.units:
            self.settle_units(None)
        self._released = True
        settle = not self._settled
        self._settled = True
        if self._holding:
            if settle:
                self._throttle.settle_permit(self)
                settle = False
            self._unhold()
        self._throttle.permit_done(self, settle=settle)


class SyncPermit(Permit):
    """Private. A permit of the sync throttle: every change under its lock."""

    __slots__ = ()

    @property
    def _lock(self) -> threading.RLock:
        return typing.cast("SyncThrottle", self._throttle).lock

    def settle(self) -> None:
        with self._lock:
            super().settle()

    def hold(self) -> None:
        with self._lock:
            super().hold()

    def observe(self, signal: RateLimitSignal, origin: str | None) -> list[tuple[float, str]]:
        with self._lock:
            return super().observe(signal, origin)

    def observe_quiet(self, status: int, received_at: float, *, cached: bool) -> None:
        with self._lock:
            super().observe_quiet(status, received_at, cached=cached)

    def quiet_done(self, status: int, received_at: float, *, cached: bool) -> None:
        with self._lock:
            super().quiet_done(status, received_at, cached=cached)

    def settle_units(self, usage: Mapping[str, float] | None, *, refused: bool = False) -> None:
        with self._lock:
            super().settle_units(usage, refused=refused)

    def release(self) -> None:
        with self._lock:
            super().release()
