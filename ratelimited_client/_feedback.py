"""What the server said about one bucket: pauses, remaining caps, a learned limit.

Pure bookkeeping over an injected ``now`` (like the limiters): the throttle
asks ``wait_time`` and calls ``on_admit`` / ``observe``; nothing here sleeps.

* **Pause.** A throttled answer (429, or 503 with ``Retry-After`` ...) pauses the
  whole bucket until the server's time. The release is jittered (a random
  offset of up to 10 % of the pause, at most 1 s) and then *paced*: for one
  period after a pause the queue drains one request per ``period / limit``
  (configured or learned rate), never all at once. With no rate known, the
  bucket goes back to a single probe.
* **Caps.** A quota with ``remaining`` and a reset caps what is sent before the
  reset, read from every response. Requests still in flight when the count
  was taken are subtracted too (the server may count them after), so the cap
  errs low. A quota in other units (tokens) only pauses when exhausted.
* **Learning** (no ``rate`` configured): each quota's ``limit`` plus its window
  (stated, or estimated from the reset) becomes a strict sliding window, all
  of which must hold (a per-second and a daily quota alike); a
  server that speaks only through 429s is learned from them: the successes
  since the run began, over the time they took plus the server's wait. Every
  later 429 cuts the learned limit by a fifth. Until anything is known, first
  contact is one probe, then a window of requests in flight that grows by one
  per clean round trip up to three, so a server that speaks only through 429s
  sends at most three of them before the limit is known. A new estimate
  rebuilds the learned limiter; the requests still in flight under the old one
  are counted in the new one, so a changed estimate never lets through again
  what is already on its way.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from typing import TYPE_CHECKING, Final

from ._limiters import GCRALimiter, build_limiter
from ._rate import Rate, SlidingWindow, TokenBucket
from ._signals import CLOCK_STEP

if TYPE_CHECKING:
    import random
    from collections.abc import Set as AbstractSet

    from ._limiters import Limiter, Ticket
    from ._signals import QuotaState, RateLimitSignal

__all__ = ["ServerFeedback"]

# The learned rate that came from another process (a shared backend).
_SHARED: Final = "shared"
# Most requests in flight while nothing is known of the quota: every one of them is
# rejected when the quota runs out, so this bounds the 429s of learning a limit from
# 429s alone (providers ban after a few; the benchmark's target is at most 3).
_PROBE_MAX: Final = 3.0
# A 429 that names no wait at all pauses this long, doubling with each in a row.
_FALLBACK_PAUSE: Final = 1.0
# Two resets within this many seconds describe the same window.
_SAME_WINDOW: Final = 1.0
# Most recent answered requests remembered for learning and replay.
_HISTORY: Final = 10_000
# An estimated (not stated) window is taken as at least this long.
_MIN_ESTIMATE: Final = 1.0
# A full-refill estimate is taken as at least this long (a reset of "0s" says little).
_MIN_REFILL: Final = 0.01
# A window-end reading falls short of the window by the server's processing time and
# its rounding: 1 % slack.
_WINDOW_MARGIN: Final = 1.01
# Absolute resets whose readings are kept per quota (the window estimate's evidence).
_SPANS: Final = 64
# What a reset read in whole seconds can overstate a window by: its grain, a padded
# second (slowapi), a cached ``Date``'s phase (uvicorn). A long window learned from resets
# is searched this far below the estimate.
_RESET_GRAIN: Final = 2.0
# The shortest full-refill reading may have been rounded down by the server: 2 % slack.
_REFILL_MARGIN: Final = 1.02
# The learned rate's key when it comes from 429s alone.
_FROM_429: Final = "429"
# Each further 429 under a learned limit keeps this share of it.
_DECREASE: Final = 0.8
# A window measured from the server's counts is taken as settled once its bounds are
# this close (upper / lower); until then the requests are spread evenly (paced), which
# is what makes each count informative.
_MEASURED: Final = 1.1
# Measuring a window costs one window of pacing (no burst) and is worth it only where the
# reset's grain (a whole second, a padded second, a one-second ``Date``) is a large share
# of the window: estimates of this many seconds or more are taken from the resets alone.
_MEASURE_BELOW: Final = 5.0
# Readings that no moving window explains, before measuring a quota is given up.
_DISAGREEMENTS: Final = 3
# The measured upper bound gets this slack: arrival order may differ from send order
# by a hair, and the server stamps arrivals on its own clock.
_MEASURE_MARGIN: Final = 1.02
# Full-refill readings stated as instants, kept per quota to be paired (see
# ``_Refills``), and the slack on the window they bound (float noise, nothing more).
_REFILLS: Final = 48
_REFILL_PAIR_MARGIN: Final = 1.002
# The pairs' bounds are settled once upper / lower is at most this.
_REFILL_SETTLED: Final = 1.25
# Unsettled, a window of two or more grains and within this share of a grain of a
# whole number of them is paced to that number and ``_PHASE_STEP`` more (see
# ``_Refills.window``).
_PHASE_LOCK: Final = 0.15
_PHASE_STEP: Final = 0.3
# Past this many grains a window, landing at the same point of the server's second
# costs less than the step would (a per-minute quota read in whole seconds: 1 in 60).
_PHASE_LOCK_GRAINS: Final = 10.0


# A search for a window learned from 429s alone settles after this many rejected probes
# (each one is a 429 the server sees), at the last window the server took.
_PROBE_FAILURES: Final = 3
# Where a probe goes between the window rejected (lo) and the one taken (hi): nearer
# the safe side (fewer rejected probes, one step more).
_PROBE_BIAS: Final = 0.7
# First contact at a configured rate (slow start) lasts at most this long: answers that
# take longer (a model's completion) say nothing more of the burst by waiting.
_SLOW_START_FOR: Final = 1.0
# A burst fitted to send times counts a request as ahead of the schedule by this much
# less (sends a hair early or late are the same burst).
_BURST_SLACK: Final = 0.05


class _Search:
    """Private. Bracketing search for a window learned from 429s alone: ``hi`` a window
    the server has taken (the learned limiter's), ``lo`` one it rejected. One probe at
    a time goes early, at ``lo ** 0.3 * hi ** 0.7`` after the request it is measured
    from; taken, it becomes ``hi`` (the learned rate goes up); rejected, ``lo`` (no
    pause: the probe was the question, the limiter keeps the safe pace meanwhile)."""

    __slots__ = ("failures", "hi", "key", "limit", "lo", "probe_anchor", "probe_sent")

    def __init__(self, limit: int, lo: float, hi: float, key: str = _FROM_429) -> None:
        self.key = key  # the learned rate it searches
        self.limit = limit
        self.lo = lo
        self.hi = hi
        self.failures = 0
        self.probe_sent: float | None = None
        self.probe_anchor = (0.0, 0.0)

    @property
    def settled(self) -> bool:
        return self.hi <= self.lo * _MEASURED or self.failures >= _PROBE_FAILURES

    @property
    def target(self) -> float:
        return float(self.lo ** (1 - _PROBE_BIAS) * self.hi**_PROBE_BIAS)


class _Refills:
    """Private. A bucket's window from pairs of its full-refill readings, free of the
    server's clock and of how it rounds its instants.

    A reading at server time ``s`` of ``u`` units used (``limit - remaining``) states
    the instant ``F = s + f`` the bucket is full again, where ``f`` lies between
    ``(u - 1) * w`` and ``u * w`` (``w``: the window's share of one unit; a token
    bucket's fractional token is the slack) and the stated ``R`` is ``F`` rounded to
    the grain ``g`` the same way each time. For two readings ``i`` and ``k``,
    ``(u_i - 1 - u_k) * w <= R_i - R_k + g - (s_i - s_k)``, and ``s_i - s_k`` is at
    least ``i``'s sending minus ``k``'s receipt on our own clock. So each pair with
    ``u_i > u_k + 1`` bounds the window from above, with no reading of the server's
    clock (a ``Date`` in whole seconds, or cached a second late, would overstate every
    reset by up to a second, the whole of a one-second window). Where ``i`` was sent
    after ``k`` came back, ``(u_i - u_k) * w <= R_i - R_k + g`` too: a bucket's
    instant moves on by a share per unit counted, a moving window's by that and the
    time between (with no fractional slack, this is the tighter one for a pair sent
    one after the other, such as the first contact's probe and the burst after it;
    in any order it would not hold for a bucket that refilled in between). The same pairs the
    other way round, ``(u_i + 1 - u_k) * w >= R_i - R_k - g - (s_i - s_k)``, bound it
    from below: how far the upper bound may still come down. Bounds that contradict
    each other (or an upper bound at or below zero) are readings no bucket explains (a
    fixed window reporting its end): the pairs are given up for the clock-based
    estimate."""

    __slots__ = ("best", "broken", "decimals", "lowest", "readings")

    def __init__(self) -> None:
        self.readings: deque[tuple[float, float, float, float]] = deque(maxlen=_REFILLS)
        self.best = math.inf  # the least upper bound on the window found so far
        self.lowest = 0.0  # the greatest lower bound
        self.decimals = 0  # the finest grain seen in the stated instants
        self.broken = False

    def add(self, limit: float, used: float, epoch: float, sent: float, received: float) -> None:
        """One clean answer's reading: ``epoch`` the stated refill instant."""
        if self.broken:
            return
        while self.decimals < 6 and round(epoch, self.decimals) != epoch:
            self.decimals += 1
        grain = self.grain
        best, lowest = self.best, self.lowest
        for k_sent, k_received, k_used, k_epoch in self.readings:
            # Each of the two as i, the other as k.
            for span, used_more, sent_gap, received_gap in (
                (epoch - k_epoch, used - k_used, sent - k_received, received - k_sent),
                (k_epoch - epoch, k_used - used, k_sent - received, k_received - sent),
            ):
                if used_more > 1.0:
                    best = min(best, (span + grain - sent_gap) / (used_more - 1.0) * limit)
                if used_more > 0.0 and sent_gap >= 0.0:
                    # i sent after k came back: a bucket's refill instant has moved on by
                    # at least a share per unit counted since (by time only while full),
                    # a moving window's by the time between too. No fractional slack.
                    best = min(best, (span + grain) / used_more * limit)
                room = span - grain - received_gap
                if room > 0.0:
                    if used_more <= -1.0:
                        best = 0.0  # a later refill than any bucket of these counts
                    else:
                        lowest = max(lowest, room / (used_more + 1.0) * limit)
        if best <= 0.0 or lowest > best:
            self.broken = True
            return
        self.readings.append((sent, received, used, epoch))
        self.best, self.lowest = best, lowest

    @property
    def grain(self) -> float:
        return float(10.0**-self.decimals)

    def window(self, estimate: float | None) -> float | None:
        """The window to pace at: the least of the upper bound, with slack, and another
        ``estimate`` (the clock-based one) if any. Until the bounds settle,
        a window of about a whole number of grains would send each burst at the same
        point of the server's second as the one before, and its readings would say
        nothing new (the bound then stays where it is, up to twice the truth): such a
        window of two grains or more is paced ``_PHASE_STEP`` of a grain longer, until
        a burst lands elsewhere in the second and the bound comes down."""
        if self.broken or not math.isfinite(self.best):
            return estimate
        window = min(self.best * _REFILL_PAIR_MARGIN, estimate or math.inf)
        grain = self.grain
        if window > self.lowest * _REFILL_SETTLED:
            grains = window / grain
            if 1.5 <= grains <= _PHASE_LOCK_GRAINS and abs(grains - round(grains)) < _PHASE_LOCK:
                window = (round(grains) + _PHASE_STEP) * grain
        return window


class _Cap:
    """Private. At most ``budget`` more units before ``reset_at``."""

    __slots__ = ("budget", "release_at", "reset_at")

    def __init__(self, budget: float, reset_at: float, release_at: float) -> None:
        self.budget = budget
        self.reset_at = reset_at
        self.release_at = release_at


class _Held:
    """Private. A ticket of the learned limits, which survives their rebuilding."""

    __slots__ = ("cost", "ticket")

    def __init__(self, cost: float, ticket: Ticket) -> None:
        self.cost = cost
        self.ticket = ticket


class _LearnedLimit:
    """Private. The learned limits as one limiter that keeps the admissions still in
    flight when the limits change: ``replace`` takes a limiter built for the new
    limits and counts each of them there too (dated now, re-dated by its answer as
    usual), so a new estimate can never admit again room already on its way."""

    __slots__ = ("inner", "live")

    def __init__(self, inner: Limiter) -> None:
        self.inner = inner
        self.live: set[_Held] = set()

    @property
    def max_cost(self) -> float:
        return self.inner.max_cost

    def wait_time(self, now: float, cost: float) -> float:
        return self.inner.wait_time(now, cost)

    def acquire(self, now: float, cost: float, *, pending: bool) -> Ticket:
        held = _Held(cost, self.inner.acquire(now, cost, pending=pending))
        self.live.add(held)
        return held

    def try_acquire(self, now: float, cost: float) -> Ticket | None:
        ticket = self.inner.try_acquire(now, cost)
        if ticket is None:
            return None
        held = _Held(cost, ticket)
        self.live.add(held)
        return held

    def settle(self, ticket: Ticket, at: float) -> None:
        assert isinstance(ticket, _Held)  # noqa: S101 - internal invariant
        self.live.discard(ticket)
        self.inner.settle(ticket.ticket, at)

    def used(self, now: float) -> float:
        return self.inner.used(now)

    def room(self, now: float) -> float:
        return self.inner.room(now)

    def is_idle(self, now: float) -> bool:
        return self.inner.is_idle(now)

    def replace(self, inner: Limiter, now: float) -> None:
        for held in self.live:
            held.ticket = inner.acquire(now, held.cost, pending=False)
        self.inner = inner


def _same_rate(old: Rate | None, new: Rate) -> bool:
    """Equal but for float noise (an estimate recomputed from another reading)."""
    return (
        old is not None
        and old.limit == new.limit
        and math.isclose(old.period, new.period, rel_tol=1e-9)
    )


class ServerFeedback:
    """Private. The server's word on one bucket (see the module docstring)."""

    def __init__(
        self,
        *,
        configured_rate: Rate | None,
        learning: bool,
        rng: random.Random,
        max_wait: float,
        configured_burst: float | None = None,
        slow_start: bool = True,
        max_concurrency: int | None = None,
    ) -> None:
        self.configured_rate = configured_rate
        self.configured_burst = configured_burst
        self.learning = learning
        self.rng = rng
        self.max_wait = max_wait
        self.pause_until = -math.inf
        self.too_long_until = -math.inf
        self.too_long_delay = 0.0
        self.caps: dict[str, _Cap] = {}
        # Units other than requests whose quota the bucket's ledgers keep (tokens with
        # a known limit): their quotas are left to the ledgers, a ``remaining`` of 0
        # included (a wait the ledger knows to the unit, not a pause to the reset).
        self.metered_units: AbstractSet[str] = frozenset()
        self.learned: _LearnedLimit | None = None
        self.learned_rate: Rate | None = None
        self._learned_rates: dict[str, Rate] = {}
        self._windows: dict[str, float] = {}
        self._refills: dict[str, _Refills] = {}
        # Per quota, per absolute reset stated (epoch): when its first request was sent;
        # and the server's clock (epoch - monotonic) as best known from the readings.
        self._spans: dict[str, dict[float, float]] = {}
        self._offsets: dict[str, float] = {}
        self.cwnd: float | None = 1.0 if learning else None
        self._pacer: GCRALimiter | None = None
        self._pacer_until = -math.inf
        self._answered: deque[tuple[float, float, bool]] = deque(maxlen=_HISTORY)
        self._run_start = -math.inf
        self._last_throttle = -math.inf
        self._throttles_in_row = 0
        # Pauses begun by answers not yet reported to hooks: (delay, source).
        self.new_pauses: list[tuple[float, str]] = []
        self._exhausted_seen: dict[str, float] = {}
        # Quota readings that agreed with the configured limiter (no cap taken), and when
        # the first of a run that did not came back.
        self.agreed = 0
        self._disagreed_at: float | None = None
        # Successes whose Retry-After was ignored (no directive on a success).
        self.ignored_waits = 0
        # Send times of the admissions while learning (ascending), for measuring a
        # window from the server's counts; per quota, its [lower, upper] bounds, and
        # the quotas whose counts are not those of a moving window (left alone).
        self._sends: deque[float] = deque(maxlen=_HISTORY)
        self._bounds: dict[str, list[float]] = {}  # [lower, upper, readings that disagreed]
        self._measured: dict[str, float] = {}  # settled windows, kept
        self._unmeasurable: set[str] = set()
        self._longest_trip = 0.0
        self._search: _Search | None = None
        self._searched: dict[str, float] = {}  # windows a search found taken, kept
        # First contact at a configured rate that allows a burst: requests in flight
        # double per round trip (1, 2, 4, ...) until the burst is reached, so a server
        # that takes less rejects a couple of requests, not the whole burst. Ends at
        # the burst, at the first 429, or ``_SLOW_START_FOR`` after it began.
        self.slow_start: float | None = (
            1.0
            if slow_start
            and configured_rate is not None
            and not learning
            and configured_burst is not None
            and configured_burst > 1
            else None
        )
        self._slow_start_until = math.inf
        # Slow start ends at the burst, or at the most that may be in flight anyway.
        self._slow_start_to = min(
            configured_burst if configured_burst is not None else math.inf,
            max_concurrency if max_concurrency is not None else math.inf,
        )
        if self._slow_start_to <= 1:
            self.slow_start = None
        # The stricter shape the server's rejections showed for the configured rate
        # (its rate, a smaller burst), and the notices of it not yet logged.
        self.corrected: TokenBucket | None = None
        self._corrected_by = -math.inf  # when the rejection it came from was sent
        self.new_corrections: list[str] = []
        self._requiet()

    def take_pauses(self) -> list[tuple[float, str]]:
        """The pauses begun since the last call, as ``(delay, source)``."""
        pauses, self.new_pauses = self.new_pauses, []
        return pauses

    # -- asked by the throttle before each admission ----------------------------------

    def is_quiet(self, now: float) -> bool:
        """Nothing here can delay an admission at ``now``, and admitting changes nothing
        here (the throttle's fast path skips ``wait_time`` and ``on_admit`` then). The
        async throttle's fast path reads ``quiet_from`` itself, inline."""
        return self.quiet_from <= now

    def _requiet(self) -> None:
        """Work out ``quiet_from``, the moment from which ``is_quiet`` holds: the end of
        a pause or of a refusal while nothing else binds, never (``math.inf``) while a
        cap, a learned limit, a pacer, a learning window or slow start does. Called
        after every change to one of them (``pause_until``, ``too_long_until``,
        ``caps``, ``learned``, ``_pacer``, ``cwnd``, ``slow_start``), so that the
        fast path asks one comparison, not seven."""
        if (
            self.caps
            or self.learned is not None
            or self._pacer is not None
            or self.cwnd is not None
            or self.slow_start is not None
        ):
            self.quiet_from = math.inf
        else:
            self.quiet_from = max(self.pause_until, self.too_long_until)

    def wait_time(self, now: float, cost: float, outstanding: int) -> float:
        wait = max(0.0, self.pause_until - now)
        if self.caps:
            for name, cap in list(self.caps.items()):
                if now >= cap.reset_at:
                    del self.caps[name]  # the window is over; the next answer says more
                elif cap.budget < cost:
                    wait = max(wait, cap.release_at - now)
                    if cap.reset_at - now > self.max_wait:
                        # A spent quota that resets beyond max_wait: refuse, as for a long
                        # Retry-After, rather than wait hours (the throttle raises).
                        self.too_long_until = max(self.too_long_until, cap.reset_at)
                        self.too_long_delay = cap.reset_at - now
            self._requiet()
        probe = self._probe_wait(now)
        paced = self.learned.wait_time(now, cost) if self.learned is not None else 0.0
        if probe is not None and probe < paced:
            # A probe goes when due, sooner than the learned pace: it is the question.
            wait = max(wait, probe)
        else:
            probe = None
            wait = max(wait, paced)
        if self._pacer is not None:
            if now >= self._pacer_until:
                self._pacer = None
                self._requiet()
            elif probe is None:
                wait = max(wait, self._pacer.wait_time(now, cost))
        if self.cwnd is not None and outstanding >= self.cwnd:
            return math.inf  # learning: wait for an answer to come back
        if self.slow_start is not None:
            if now >= self._slow_start_until:
                self.slow_start = None
                self._requiet()
            elif outstanding >= self.slow_start:
                wait = max(wait, self._slow_start_until - now)  # or an answer, sooner
        if self._search is not None and self._search.probe_sent is not None:
            return math.inf  # a probe is out: its answer decides what may go next
        return wait

    def _probe_wait(self, now: float) -> float | None:
        """Seconds until the search's next probe may go, if one is due sooner than the
        learned pace allows; ``None`` when no probe is on."""
        search = self._search
        if search is None or search.probe_sent is not None or search.settled:
            return None
        if self.learned is None or self.learned.wait_time(now, 1.0) <= 0:
            return None
        anchor = self._anchor(search.limit)
        if anchor is None:
            return None
        return max(0.0, anchor[1] + search.target - now)

    def _anchor(self, limit: int) -> tuple[float, float] | None:
        """The ``limit``-th most recent request sent, ``(sent, received)``, once it and
        every later one came back clean (in whatever order): what a probe's gap is
        measured from (the server drops it from its window first). ``None`` while any
        is unanswered or was rejected."""
        if len(self._sends) < limit:
            return None
        target = self._sends[-limit]
        found = 0
        anchor: tuple[float, float] | None = None
        # Answers come back out of order: look a little past the last ``limit``.
        for seen, (sent, received, _) in enumerate(reversed(self._answered)):
            if seen >= 2 * limit + 16:
                break
            if sent >= target:
                found += 1
                if sent == target:
                    anchor = (sent, received)
                if found >= limit:
                    break
        return anchor if found >= limit else None

    def on_admit(self, now: float, cost: float) -> Ticket | None:
        for cap in self.caps.values():
            cap.budget -= cost
        if self.slow_start is not None and self._slow_start_until == math.inf:
            self._slow_start_until = now + _SLOW_START_FOR
        search = self._search
        if search is not None and self._probe_wait(now) == 0.0:
            # Admitted early: the probe. Its answer moves the search.
            search.probe_anchor = self._anchor(search.limit) or (now, now)
            search.probe_sent = now
            self._sends.append(now)
            return None
        if self.learning:
            self._sends.append(now)
        if self._pacer is not None:
            self._pacer.acquire(now, cost, pending=False)
        if self.learned is not None:
            return self.learned.acquire(now, cost, pending=False)
        return None

    # -- told by the throttle after each answer --------------------------------------

    def observe(
        self,
        signal: RateLimitSignal,
        *,
        sent_at: float,
        others_in_flight: int,
        local_room: float | None = None,
    ) -> float | None:
        """Update from one answer. Returns an origin-wide pause deadline, if the server set one.

        ``local_room``: what the configured limiter could still admit at once; a
        server that reports at least that much remaining agrees with it (see
        ``_observe_quota``)."""
        if signal.ignored_wait:
            self.ignored_waits += 1
        if signal.cached:
            return None
        now = signal.received_at
        retry = signal.retry
        bucket_throttled = signal.throttled and retry is not None and retry.scope != "request"
        clean = not bucket_throttled and 200 <= signal.status < 400
        if clean:
            # Before learning, so a limiter rebuilt from this answer counts it too.
            self._clean_answer(sent_at, now)
            if self.corrected is not None:
                self._refit_burst(sent_at, now, others_in_flight)
        probe = self._search is not None and self._search.probe_sent == sent_at
        if probe and self._probe_answered(sent_at, now, clean, signal.status, others_in_flight):
            return None  # a rejected probe: the answer to a question, not a pause
        # A model that existed before this answer may lag the server's count at a window's
        # edge (``_observe_quota``); one built from this answer cannot.
        modelled = local_room is not None or self.learned is not None
        if self.learning:
            # Learned first: a limit this answer teaches is the local model its own
            # count is then read against (the first answer's included).
            if clean:
                self._longest_trip = max(self._longest_trip, now - sent_at)
            self._learn_from_quotas(signal, others_in_flight, sent_at if clean else None)
        if self.learned is not None:
            # What was learned is the local model too: a reading that agrees with it
            # adds nothing (a 429 is the evidence that would correct it).
            learned_room = self.learned.room(now)
            local_room = learned_room if local_room is None else min(local_room, learned_room)
        for quota in signal.quotas:
            self._observe_quota(quota, now, others_in_flight, local_room, sent_at, modelled)
        if not bucket_throttled or retry is None:
            if clean:
                self._grow_window()
            return None
        if sent_at < self._last_throttle:
            return self._pause_deadline_if_origin(retry.scope)  # same event, already counted
        self._last_throttle = now
        self._throttles_in_row += 1
        self.slow_start = None
        if (
            self.configured_rate is not None
            and not self.learning
            and signal.status == 429
            and not retry.over_cap
            and not any(q.unit == "requests" and q.limit is not None for q in signal.quotas)
        ):
            self._correct_shape(sent_at, now, others_in_flight)
        if retry.over_cap and retry.requested is not None:
            self.too_long_until = max(self.too_long_until, now + retry.requested)
            self.too_long_delay = retry.requested
            delay = retry.requested
        elif retry.delay is not None:
            delay = retry.delay
        else:
            delay = min(self.max_wait, _FALLBACK_PAUSE * 2 ** (self._throttles_in_row - 1))
        self._requiet()  # slow start is over, a refusal may have begun
        if self._bounds:
            # A rejection while measuring: counts may include attempts the server did not
            # keep, or someone else's. The resets decide from now on.
            self._unmeasurable.update(self._bounds)
            self._bounds.clear()
        if self.learning and not retry.over_cap and signal.status == 429:
            # Only a 429 speaks of a rate; a 503 (overload, maintenance) pauses but
            # teaches nothing about the quota (learning from random 503s collapses it).
            self._learn_from_throttle(now, delay, others_in_flight, sent_at)
        if self._pause(now, now + delay):
            self.new_pauses.append((delay, retry.source))
        return self._pause_deadline_if_origin(retry.scope)

    def quiet_answer(self, status: int, sent_at: float, received_at: float) -> bool:
        """``observe`` for an answer with no quota, no retry and no cache age (most of
        them), without a signal built for it. True if a waiting request may now go."""
        if not 200 <= status < 400:
            return False
        # ``_clean_answer``, inline (most answers come this way):
        self._answered.append((sent_at, received_at, True))
        self._throttles_in_row = 0
        if self.corrected is not None and sent_at <= self._corrected_by:
            self._refit_burst(sent_at, received_at, 0)
            return True
        if self._search is not None and self._search.probe_sent == sent_at:
            self._probe_answered(sent_at, received_at, True, status, 0)
            return True
        if self.cwnd is None and self.slow_start is None:
            return False
        self._grow_window()
        return True

    def _probe_answered(
        self, sent_at: float, received_at: float, clean: bool, status: int, in_flight: int
    ) -> bool:
        """Move the search by its probe's answer; True for a rejected probe."""
        search = self._search
        assert search is not None  # noqa: S101 - called for the probe
        search.probe_sent = None
        anchor_sent, anchor_received = search.probe_anchor
        if clean:
            # Taken: the interval is no longer than the gap between the two sendings
            # (with 1 % for unequal trips). The limiter dates each slot at its answer,
            # which adds a round trip to every interval it keeps.
            gap = (sent_at - anchor_sent) * _WINDOW_MARGIN
            search.hi = max(search.lo, min(search.hi, gap))
            self._learned_rates[search.key] = Rate(search.limit, search.hi)
            self._searched[search.key] = search.hi
            self._rebuild(received_at, in_flight)
            return False
        if status != 429:
            return False
        # Rejected: the window is longer than the gap, at least from the anchor's answer
        # to the probe's sending.
        search.lo = min(search.hi, max(search.lo, sent_at - anchor_received))
        search.failures += 1
        return True

    def _clean_answer(self, sent_at: float, received_at: float) -> None:
        """A success that was not a throttle: remembered for learning, ends a run of 429s.
        (Also inline in ``quiet_answer``: a change here goes there too.)"""
        self._answered.append((sent_at, received_at, True))
        self._throttles_in_row = 0

    def _pause_deadline_if_origin(self, scope: str) -> float | None:
        return self.pause_until if scope == "origin" else None

    def _observe_quota(
        self,
        quota: QuotaState,
        now: float,
        others_in_flight: int,
        local_room: float | None,
        sent_at: float,
        modelled: bool = True,
    ) -> None:
        if quota.remaining is None or quota.reset_at is None or quota.reset_at <= now:
            return
        if quota.unit != "requests" and (quota.remaining > 0 or quota.unit in self.metered_units):
            # Units no ledger meters cannot be counted per request: only an exhausted
            # quota binds. The ledgers keep those they meter.
            return
        if local_room is not None and quota.unit == "requests" and quota.remaining >= local_room:
            # The server has at least the room the configured limiter allows: its count
            # agrees with ours (nobody else spends the quota), so its reset adds nothing
            # the limiter does not know, and the limiter's clock is the finer one: a
            # reset in whole seconds, padded, or read against a one-second ``Date``
            # is only a bound. The server's word wins where it disagrees (fewer
            # remaining than we expect, a 429, an explicit pause), not here.
            self.agreed += 1
            self._disagreed_at = None
            return
        # Fewer remaining than we expect. One such reading may be the window's edge: the
        # server counted before slots that have expired here since (a burst's slots
        # expire together), or read its count after later arrivals. A second one, from a
        # request sent after the first came back, is the server's word: someone else
        # is spending the quota.
        first = self._disagreed_at is None or sent_at < self._disagreed_at
        if local_room is not None and quota.unit == "requests" and first and modelled:
            if self._disagreed_at is None:
                self._disagreed_at = now
            return
        budget = quota.remaining - others_in_flight
        key = f"{quota.dialect}:{quota.name}:{quota.partition or ''}"
        if quota.remaining <= 0:
            seen = self._exhausted_seen.get(key)
            if seen is None or abs(seen - quota.reset_at) > _SAME_WINDOW:
                if len(self._exhausted_seen) >= _HISTORY:
                    self._exhausted_seen.clear()  # only ever dedupes reports: safe to forget
                self._exhausted_seen[key] = quota.reset_at
                self.new_pauses.append((quota.reset_at - now, f"{quota.dialect} remaining=0"))
        existing = self.caps.get(key)
        reset_at = quota.reset_at
        if existing is not None and abs(existing.reset_at - reset_at) <= _SAME_WINDOW:
            budget = min(budget, existing.budget)
            reset_at = max(reset_at, existing.reset_at)
        self.caps[key] = _Cap(budget, reset_at, reset_at + self._jitter(reset_at - now))
        self._requiet()

    # -- pauses ---------------------------------------------------------------------

    def _jitter(self, delay: float) -> float:
        return self.rng.uniform(0.0, min(1.0, 0.1 * max(delay, 0.1)))

    def _pause(self, now: float, until: float) -> bool:
        """Pause until ``until`` (jittered); False if an existing pause already covers it."""
        release = until + self._jitter(until - now)
        if release <= self.pause_until:
            return False
        self.pause_until = release
        rate = self.configured_rate or self.learned_rate
        if rate is not None:
            # Drain the queue at the bucket's rate after the pause, never all at once.
            self._pacer = GCRALimiter(rate, burst=1)
            self._pacer_until = release + rate.period
        elif self.learning:
            self.cwnd = 1.0  # nothing known: one probe again
        self._run_start = release
        self._requiet()
        return True

    # -- learning -------------------------------------------------------------------

    def _grow_window(self) -> None:
        if self.slow_start is not None:
            # One more per clean answer: twice as many in flight per round trip.
            self.slow_start += 1.0
            if self.slow_start >= self._slow_start_to:
                self.slow_start = None
                self._requiet()
        if self.cwnd is not None:
            # About one more per clean round trip, never past _PROBE_MAX: the requests
            # in flight when the first 429 comes back are all rejected too, and
            # providers ban clients after a few rejections.
            self.cwnd = min(_PROBE_MAX, self.cwnd + 1.0 / self.cwnd)

    def _learn_from_quotas(
        self, signal: RateLimitSignal, in_flight: int, sent_at: float | None
    ) -> None:
        """Every request quota with a limit and a window becomes a learned rate; all hold."""
        changed = False
        for quota in signal.quotas:
            if quota.unit != "requests" or quota.limit is None or quota.limit < 1:
                continue
            name = f"{quota.dialect}:{quota.name}:{quota.partition or ''}"
            window = quota.window or self._estimate_window(name, quota, signal.received_at, sent_at)
            if window is None:
                continue
            if quota.window is None and window >= _MEASURE_BELOW and name not in self._measured:
                # Too long to be worth a window of pacing: the reset's grain is a small
                # share of it. Bursts, and the reset-based estimate, from here on.
                if self._measuring(name):
                    del self._bounds[name]
                    changed = True
                self._unmeasurable.add(name)
            if quota.window is None and sent_at is not None:
                pacing = self._measuring(name)
                measured = self._measure(name, quota, sent_at, signal.received_at)
                if measured is not None:
                    window = min(window, measured)
                changed = changed or pacing != self._measuring(name)
            window = min(window, self._searched.get(name, math.inf))
            search = self._search
            if search is not None and search.key == name and window < search.hi:
                search.hi = max(search.lo, window)  # known better another way
            if (
                quota.window is None
                and quota.reset_epoch is not None
                and quota.reset_kind == "window_end"
                and window >= _MEASURE_BELOW
                and search is None
            ):
                # A long window read from resets that may overstate it by their grain:
                # searched downwards, one early probe a window (see ``_Search``).
                lo = max(window - _RESET_GRAIN, window / 2)
                self._search = _Search(int(quota.limit), lo, window, key=name)
            rate = Rate(int(quota.limit), window)
            if not _same_rate(self._learned_rates.get(name), rate):
                self._learned_rates[name] = rate
                changed = True
        if changed:
            self._rebuild(signal.received_at, in_flight)

    def _estimate_window(
        self, name: str, quota: QuotaState, received_at: float, sent_at: float | None = None
    ) -> float | None:
        """A window no shorter than the server's, from the resets seen so far.

        A window-end reset is at most one window away, so the longest seen
        (plus 1 % for the server's processing time and rounding) is the
        estimate. A full-refill reset (token buckets) after ``used`` units is
        ``used / limit`` of a window, anchored late at our receipt: every
        reading but a rounded-down one overestimates, so the shortest, plus
        2 % for rounding, is the estimate.
        """
        if quota.reset_at is None or quota.limit is None:
            return None
        delta = quota.reset_at - received_at
        known = self._windows.get(name)
        if quota.reset_kind == "full_refill":
            used = quota.limit - (quota.remaining if quota.remaining is not None else 0)
            refills = None
            if quota.reset_epoch is not None and sent_at is not None and used >= 0:
                refills = self._refills.setdefault(name, _Refills())
                refills.add(quota.limit, used, quota.reset_epoch, sent_at, received_at)
            if used > 0 and delta > 0:
                candidate = max(delta * quota.limit / used * _REFILL_MARGIN, _MIN_REFILL)
                known = self._windows[name] = candidate if known is None else min(known, candidate)
            if refills is None:
                return known
            window = refills.window(known)
            return None if window is None else max(window, _MIN_REFILL)
        elif quota.reset_epoch is None:
            estimate = max(known or 0.0, delta * _WINDOW_MARGIN, _MIN_ESTIMATE)
        else:
            # An absolute reset: every answer that states the same instant describes the
            # same reset. Each reading carries the server's clock as known then
            # (``epoch - reset_at``, a lower bound that tightens with every answer:
            # ``ServerClock``); the best one known reads every stated reset again, so a
            # first contact's loose reading is not the estimate for good. The span is
            # from the first such request's sending (the server's window began no
            # earlier: no slack for its processing or the trip) to that reset.
            offset = quota.reset_epoch - quota.reset_at
            best = self._offsets.get(name)
            if best is None or offset > best or best - offset > CLOCK_STEP:
                best = self._offsets[name] = offset  # tighter, or the server's clock set back
            spans = self._spans.setdefault(name, {})
            if quota.reset_epoch not in spans:
                if len(spans) >= _SPANS:
                    # The oldest leaves, its span kept as a floor (final by now).
                    epoch, first = next(iter(spans.items()))
                    del spans[epoch]
                    self._windows[name] = max(known or 0.0, epoch - best - first)
                spans[quota.reset_epoch] = sent_at if sent_at is not None else received_at
            longest = max(epoch - best - first for epoch, first in spans.items())
            return max(self._windows.get(name, 0.0), longest, _MIN_ESTIMATE)
        self._windows[name] = estimate
        return estimate

    def _measure(
        self, name: str, quota: QuotaState, sent_at: float, received_at: float
    ) -> float | None:
        """Bounds on a moving window from the server's count, without sending a request
        more: a window-end reading of ``limit`` and ``remaining`` says the server counts
        ``n = limit - remaining`` requests in its window, this one included. Sent in
        order, the ``n``-th most recent of ours was inside it and the ``n+1``-th not, so
        the window lies between the two gaps. A reset read in whole seconds, padded,
        or against a one-second ``Date`` cannot say as much. Returns the upper bound
        (with slack) while the bounds agree; counts that no moving window explains (a
        fixed window's, or someone else's traffic) stop the measuring for good."""
        settled = self._measured.get(name)
        if settled is not None:
            return settled  # bursts now: their counts are the noisiest, and add nothing
        if (
            name in self._unmeasurable
            or quota.reset_kind != "window_end"
            or quota.limit is None
            or quota.remaining is None
        ):
            return None
        sends = self._sends
        k = bisect_right(sends, sent_at) - 1
        n = int(quota.limit - quota.remaining)
        if k < 0 or sends[k] != sent_at or n < 1:
            return None
        bounds = self._bounds.setdefault(name, [0.0, math.inf, 0.0])
        low = sent_at - sends[k - n + 1] - self._longest_trip if n >= 2 and k >= n - 1 else 0.0
        high = received_at - sends[k - n] if k >= n else math.inf
        if low > bounds[1] * _MEASURE_MARGIN or high * _MEASURE_MARGIN < bounds[0]:
            # A count no moving window explains: a server that reads its count late,
            # answers out of order, a fixed window, someone else's traffic. A few such
            # and the resets decide alone.
            bounds[2] += 1
            if bounds[2] >= _DISAGREEMENTS:
                self._unmeasurable.add(name)
                del self._bounds[name]
            return None
        bounds[0], bounds[1] = max(bounds[0], low), min(bounds[1], high)
        if not math.isfinite(bounds[1]):
            return None
        window = bounds[1] * _MEASURE_MARGIN
        if bounds[1] <= bounds[0] * _MEASURED:
            self._measured[name] = window
            del self._bounds[name]
        return window

    def _measuring(self, name: str) -> bool:
        """Still narrowing the window of ``name``: requests are paced meanwhile."""
        return name in self._bounds

    def _learn_from_throttle(
        self, now: float, delay: float, in_flight: int, sent_at: float
    ) -> None:
        successes = [sent for sent, _, ok in self._answered if ok and sent >= self._run_start]
        if not successes:
            return
        previous = self._learned_rates.get(_FROM_429)
        window = now - successes[0] + delay
        limit = len(successes)
        if previous is not None:
            # A further 429 under a learned rate keeps ``_DECREASE`` of it (fewer at
            # once, or the same spread wider), never less: how long this run lasted
            # says nothing of the window (a spacing limiter rejects one request that
            # came a hair early in a run of any length; a run of two successes and a
            # late 429 had read as one request per two seconds, a tenth of the truth).
            limit = max(1, math.floor(previous.limit * _DECREASE))
            window = max(previous.period, limit * previous.period / (previous.limit * _DECREASE))
            if self._search is not None:
                self._search.failures = _PROBE_FAILURES  # rejected at its pace: settle
        elif limit == 1:
            # One request, then rejections: a spacing (no burst at all). Its interval is
            # no longer than this (the pause included), and longer than the gap the
            # rejection was sent in: search between the two. (Where a burst was taken
            # first, a success after a pause proves little of the window: a token
            # bucket refills while idle. The window found from 429s stands there.)
            anchor = self._anchor(limit)
            gap = sent_at - anchor[1] if anchor is not None else 0.0
            self._search = _Search(limit, max(gap, 0.001), window)
        self._learned_rates[_FROM_429] = Rate(limit, window)
        self._rebuild(now, in_flight)

    def _correct_shape(self, sent_at: float, now: float, in_flight: int) -> None:
        """A 429 at the configured rate from a server that states no count: is it a
        stricter shape than the configuration (a spacing, a smaller burst: nginx's
        ``limit_req`` without ``burst``)? The configured rate is kept and the burst
        fitted to the evidence (``_fit_burst``); where the fitted bucket would have
        taken the rejected request too, the shape does not explain the rejection (the
        rate is off, or somebody else spends the quota) and nothing is corrected: the
        pause answers it."""
        rate = self.configured_rate
        assert rate is not None  # noqa: S101 - checked by the caller
        burst = self.corrected.burst if self.corrected is not None else self.configured_burst
        fitted = self._fit_burst(sent_at)
        if burst is None or fitted is None or fitted >= burst:
            return
        self.corrected = TokenBucket(rate, burst=fitted)
        self._corrected_by = sent_at
        interval = rate.period / rate.limit
        shape = f"one request per {interval:g} s" if fitted == 1 else f"bursts of at most {fitted}"
        self.new_corrections.append(
            f"the server rejected a burst that the configured rate {rate} allows "
            f"({burst:g} at once); it took {fitted} at once: sending {shape} at {rate} "
            f"from now on (configure {self.corrected} to say so)"
        )
        self._rebuild(now, in_flight)

    def _fit_burst(self, rejected: float) -> int | None:
        """The smallest bucket at the configured rate that took every success sent up to
        ``rejected`` (as the server would keep its schedule), if it would have refused
        the request sent at ``rejected``; else ``None``."""
        rate = self.configured_rate
        assert rate is not None  # noqa: S101 - checked by the callers
        interval = rate.period / rate.limit
        due = -math.inf
        fitted = 1
        for sent in sorted(sent for sent, _, ok in self._answered if ok and sent <= rejected):
            ahead = max(0.0, due - sent) / interval + 1.0
            fitted = max(fitted, math.ceil(ahead - _BURST_SLACK))
            due = max(due, sent) + interval
        if max(0.0, due - rejected) / interval + 1.0 <= fitted + _BURST_SLACK:
            return None
        return fitted

    def _refit_burst(self, sent_at: float, now: float, in_flight: int) -> None:
        """A success sent before the rejection that set the corrected burst, answered
        after it: the server took more at once than was known then; fit again."""
        corrected = self.corrected
        if corrected is None or sent_at > self._corrected_by:
            return
        fitted = self._fit_burst(self._corrected_by)
        ceiling = self.configured_burst or 1.0
        known = corrected.burst or 1
        if fitted is not None and known < fitted < ceiling:
            self.corrected = TokenBucket(corrected.rate, burst=fitted)
            self._rebuild(now, in_flight)

    def adopt(self, rate: Rate, now: float, in_flight: int) -> None:
        """A limit learned elsewhere (another process, through a shared backend)."""
        if self._learned_rates.get(_SHARED) != rate:
            self._learned_rates[_SHARED] = rate
            self._rebuild(now, in_flight)

    def _rebuild(self, now: float, in_flight: int) -> None:
        """A fresh learned limiter for the current rates, replaying recent answers and
        counting the ``in_flight`` requests not answered yet."""
        rates = list(self._learned_rates.values())
        if rates:
            self.learned_rate = min(rates, key=lambda r: r.per_second)
        specs: list[SlidingWindow | TokenBucket] = [SlidingWindow(rate) for rate in rates]
        if self.corrected is not None:
            specs.append(self.corrected)
            rates.append(self.corrected.rate)
        # While a window is being measured, its requests are spread evenly over it (the
        # same rate, no burst): each answer's count then narrows the window.
        specs += [
            TokenBucket(rate, burst=1)
            for name, rate in self._learned_rates.items()
            if self._measuring(name)
        ]
        limiter = build_limiter(specs)
        assert limiter is not None  # noqa: S101 - at least one rate
        longest = max(rate.period for rate in rates)
        horizon = max((at for _, at, _ in self._answered), default=0.0) - longest
        recent = sorted(at for _, at, _ in self._answered if at > horizon)
        # Replay the newest answers first (in reversed time: the limits are symmetric in
        # time), so when more answered than the new limits fit, the oldest are the ones
        # left out: the newest, a probe's just now among them, bind what goes next.
        reverse = build_limiter(specs)
        assert reverse is not None  # noqa: S101 - same specs
        kept = []
        for at in reversed(recent):
            if reverse.wait_time(-at, 1.0) == 0:
                reverse.acquire(-at, 1.0, pending=False)
                kept.append(at)
        for at in reversed(kept):
            if limiter.wait_time(at, 1.0) == 0:
                limiter.acquire(at, 1.0, pending=False)
        if self.learned is None:
            self.learned = _LearnedLimit(limiter)
        else:
            self.learned.replace(limiter, now)
        # Admitted before anything was learned (probes) and not answered yet: no
        # ticket to carry over, so counted here, from now.
        for _ in range(in_flight - len(self.learned.live)):
            limiter.acquire(now, 1.0, pending=False)
        self.cwnd = None
        self._requiet()

    def is_idle(self, now: float) -> bool:
        """Nothing the server said still binds, and nothing was learned."""
        return (
            self.pause_until <= now
            and self.too_long_until <= now
            and not any(cap.reset_at > now for cap in self.caps.values())
            and self.learned_rate is None
            and self.corrected is None
        )
