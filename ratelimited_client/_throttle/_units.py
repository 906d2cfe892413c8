"""Quotas in units other than requests (a model API's tokens per minute): reserved
at an estimate when a request goes, settled to what the answer says it used.

Each bucket keeps one ``UnitLedger`` per unit it has seen (``"tokens"``,
``"input_tokens"``, ``"output_tokens"`` ...), in ``BucketUnits``. A ledger is a
sliding window over the units spent: a request's reservation counts in full from
its admission until its answer (``pending``, it never expires while in flight),
then is dated at the answer with the amount the answer reported and expires one
window later. Dating at the answer, not at the sending, keeps the ledger behind
the server's own count by a trip: room comes back here after it has come back there.

A ledger tracks from the first request it sees, limit known or not, so that when
the limit is learned from a response's headers the units already spent are in it.
The server's word wins: an answer reporting fewer units remaining than the ledger
allows adds what someone else spent (see ``UnitLedger.correct``).

Per process: with a shared backend (Redis) the request quota is shared across
processes, these ledgers are not.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from .._errors import UnitsTooLargeError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from .._rate import Rate
    from .._signals import QuotaState

__all__ = [
    "DEFAULT_UNIT_WINDOW",
    "BucketUnits",
    "Reservation",
    "UnitLedger",
    "UnitStatistics",
]

#: The window of a unit quota learned from headers that do not state one: the
#: model vendors' token limits are per minute (TPM, ITPM, OTPM).
DEFAULT_UNIT_WINDOW: Final = 60.0


class Reservation:
    """Private. One request's units of one ledger: ``amount`` while in flight, then
    what the answer reported (or the estimate kept)."""

    __slots__ = ("amount", "estimate", "settled")

    def __init__(self, amount: float) -> None:
        self.estimate = amount
        self.amount = amount
        self.settled = False


@dataclass(frozen=True, slots=True)
class UnitStatistics:
    """A snapshot of one unit's quota in one bucket.

    Attributes:
        unit: what is counted (``"tokens"``, ``"input_tokens"`` ...).
        limit: units per window, configured or learned from headers (``None``:
            not known yet: spent units are counted, nothing waits).
        window: the window in seconds.
        learned: the limit was read from the server's headers, not configured.
        used: units counted in the window now: settled ones and reservations in flight.
        in_flight: the part of ``used`` reserved by requests not yet answered.
        headroom: ``limit - used`` (never below 0), or ``None`` without a limit.
        reserved: units reserved since the bucket was created (the estimates).
        settled: what those reservations settled to (the answers' usage; an
            estimate kept where no usage came). ``settled / reserved`` shows how
            far the estimates are off.
    """

    unit: str
    limit: float | None
    window: float
    learned: bool
    used: float
    in_flight: float
    headroom: float | None
    reserved: float
    settled: float


class UnitLedger:
    """Private. One unit's sliding window in one bucket."""

    __slots__ = (
        "_dated",
        "_dated_used",
        "_last",
        "_pending",
        "configured",
        "limit",
        "reserved_total",
        "settled_total",
        "unit",
        "window",
    )

    def __init__(self, unit: str, limit: float | None, window: float, *, configured: bool) -> None:
        self.unit = unit
        self.limit = limit
        self.window = window
        self.configured = configured
        self._dated: deque[tuple[float, float]] = deque()  # (answered at, amount), in order
        self._dated_used = 0.0
        self._pending = 0.0  # reserved by requests in flight
        self._last = -math.inf  # the latest date given (dates never go back)
        self.reserved_total = 0.0
        self.settled_total = 0.0

    def _prune(self, now: float) -> None:
        horizon = now - self.window
        dated = self._dated
        while dated and dated[0][0] <= horizon:
            self._dated_used -= dated.popleft()[1]
        if not dated:
            self._dated_used = 0.0  # no float drift when empty

    def used(self, now: float) -> float:
        self._prune(now)
        return self._dated_used + self._pending

    def in_flight(self) -> float:
        return self._pending

    def wait_time(self, now: float, amount: float) -> float:
        """Seconds until ``amount`` fits (``math.inf``: not before an answer settles)."""
        limit = self.limit
        if limit is None or amount <= 0:
            return 0.0
        self._prune(now)
        excess = self._dated_used + self._pending + amount - limit
        if excess <= 1e-9:
            return 0.0
        freed = 0.0
        for at, spent in self._dated:
            freed += spent
            if freed >= excess - 1e-9:
                return max(0.0, at + self.window - now)
        return math.inf  # the reservations in flight hold the rest: wait for answers

    def reserve(self, amount: float) -> Reservation:
        self._pending += amount
        self.reserved_total += amount
        return Reservation(amount)

    def settle(self, reservation: Reservation, amount: float | None, at: float) -> None:
        """Date a reservation at the answer (``at``) with what was used (``None``:
        the estimate is kept). Once: later calls change nothing."""
        if reservation.settled:
            return
        reservation.settled = True
        self._pending -= reservation.amount
        if self._pending < 1e-9:
            self._pending = 0.0
        if amount is not None:
            reservation.amount = max(0.0, amount)
        self.settled_total += reservation.amount
        self._add(at, reservation.amount)

    def _add(self, at: float, amount: float) -> None:
        if amount <= 0:
            return
        at = max(at, self._last)
        self._last = at
        self._dated.append((at, amount))
        self._dated_used += amount

    def learn(self, quota: QuotaState, now: float) -> bool:
        """Take the limit a response stated, unless one is configured. True if it changed.

        The window is the one the server states; else the vendors' minute, or longer
        where a full refill is further away than that (a quota per day): a window
        taken too long only waits more, one taken too short would overspend."""
        if self.configured or quota.limit is None or quota.limit <= 0:
            return False
        window = quota.window
        if window is None:
            window = self.window
            if quota.reset_kind == "full_refill" and quota.reset_at is not None:
                window = max(window, quota.reset_at - now)
        if self.limit == quota.limit and self.window == window:
            return False
        self.limit = float(quota.limit)
        self.window = window
        return True

    def correct(self, remaining: float, now: float) -> float:
        """The server's word: it says ``remaining`` units are left. Alone on the
        quota, the server counts no more than this ledger does (reservations in
        flight count here in full, at estimates that are upper bounds, and dated
        units expire here a trip later than there), so it reports at least the
        room left here. Where it reports less, someone else spent the difference
        (or an estimate fell short): it is added, dated now. Returns the units added."""
        limit = self.limit
        if limit is None:
            return 0.0
        missing = limit - self.used(now) - remaining
        if missing <= 1e-9:
            return 0.0
        self._add(now, missing)
        return missing

    def statistics(self, now: float) -> UnitStatistics:
        used = self.used(now)
        limit = self.limit
        return UnitStatistics(
            unit=self.unit,
            limit=limit,
            window=self.window,
            learned=limit is not None and not self.configured,
            used=used,
            in_flight=self._pending,
            headroom=None if limit is None else max(0.0, limit - used),
            reserved=self.reserved_total,
            settled=self.settled_total,
        )


class BucketUnits:
    """Private. Every unit ledger of one bucket."""

    __slots__ = ("ledgers", "metered")

    def __init__(self, configured: Mapping[str, Rate]) -> None:
        self.ledgers: dict[str, UnitLedger] = {
            unit: UnitLedger(unit, float(rate.limit), rate.period, configured=True)
            for unit, rate in configured.items()
        }
        # The units whose limit is known here: the feedback leaves their quotas to
        # the ledgers (a ``remaining`` of 0 is a wait the ledger knows, not a pause).
        self.metered: set[str] = set(self.ledgers)

    def _ledger(self, unit: str) -> UnitLedger:
        ledger = self.ledgers.get(unit)
        if ledger is None:
            ledger = self.ledgers[unit] = UnitLedger(
                unit, None, DEFAULT_UNIT_WINDOW, configured=False
            )
        return ledger

    def check(self, key: object, units: Mapping[str, float]) -> None:
        """A request whose units can never fit fails now, before it is sent."""
        for unit, amount in units.items():
            ledger = self.ledgers.get(unit)
            if ledger is not None and ledger.limit is not None and amount > ledger.limit + 1e-9:
                raise UnitsTooLargeError(
                    unit=unit, amount=amount, limit=ledger.limit, window=ledger.window, key=key
                )

    def wait_time(self, now: float, units: Mapping[str, float]) -> float:
        wait = 0.0
        for unit, amount in units.items():
            ledger = self.ledgers.get(unit)
            if ledger is not None:
                wait = max(wait, ledger.wait_time(now, amount))
        return wait

    def reserve(self, units: Mapping[str, float]) -> tuple[tuple[UnitLedger, Reservation], ...]:
        taken = []
        for unit, amount in units.items():
            ledger = self._ledger(unit)
            taken.append((ledger, ledger.reserve(amount)))
        return tuple(taken)

    def observe(self, quotas: Iterable[QuotaState], now: float) -> bool:
        """Learn the limits an answer stated and take its ``remaining`` as the
        server's word (after the answer's own reservation was settled). True if a
        waiting request may now go sooner (a limit learned or raised)."""
        changed = False
        for quota in quotas:
            if quota.unit == "requests":
                continue
            ledger = self._ledger(quota.unit)
            before = ledger.limit
            if ledger.learn(quota, now):
                self.metered.add(quota.unit)
                changed = changed or before is None or (ledger.limit or 0.0) > before
            if quota.remaining is not None:
                ledger.correct(float(quota.remaining), now)
        return changed

    def is_idle(self, now: float) -> bool:
        """Nothing counted and nothing learned: the bucket may be forgotten (its
        configured limits come back with it)."""
        return all(
            ledger.used(now) <= 0 and (ledger.configured or ledger.limit is None)
            for ledger in self.ledgers.values()
        )

    def statistics(self, now: float) -> dict[str, UnitStatistics]:
        return {unit: ledger.statistics(now) for unit, ledger in self.ledgers.items()}
