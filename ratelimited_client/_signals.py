"""Rate-limit signals: one pure reading of a response's headers (and small JSON body).

``parse_signal`` runs every *dialect* over a response. A dialect is a plain
function that reads a :class:`SignalContext` and writes what it understood
into it: quota states (``add_quota``) and retry delays (``add_retry_delay``),
plus the server's should-retry override and whether the answer is a
throttling rejection. The context then combines them by the rules of the
reference (``shared/RATELIMIT-HEADERS.md`` §4.4):

* the largest explicit wait wins (``retry-after-ms``, ``Retry-After``, a
  Discord body ...); without one, a throttled answer waits for the latest
  reset among its exhausted quotas; a dialect's fallback comes last;
* absolute times are read against the response's ``Date`` header, so a client
  clock that is off does not matter, and every deadline is anchored at the
  moment the response arrived (which errs late, the safe side);
* nothing raises: malformed, negative, NaN, huge or comma-duplicated values
  get the safe reading (a negative limit or remaining means "not applicable",
  duplicates take the most conservative value, waits are clamped to
  ``[0, max_wait]`` and resets to ``[0, MAX_RESET]``), and a dialect that
  raises anyway is skipped and logged.

Everything here is pure: no clock is read, ``received_at`` (monotonic) and
``wall_now`` (epoch seconds) come from the caller.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple, TypeAlias

import httpx

from ._sf import parse_dictionary, parse_list

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

__all__ = [
    "CLOCK_STEP",
    "DEFAULT_DIALECTS",
    "MAX_RESET",
    "Dialect",
    "QuotaState",
    "RateLimitSignal",
    "RetryDirective",
    "SignalContext",
    "parse_go_duration",
    "parse_signal",
]

logger = logging.getLogger("ratelimited_client")

# A server's clock is estimated from the ``Date`` of the answers of this many seconds
# (its drift against ours over that span is milliseconds at worst).
_CLOCK_HORIZON: Final = 60.0
# A ``Date`` this far behind the estimate is the server's clock set back, not its grain
# (a whole second) and a cached value (uvicorn's lags up to a second more). The bucket
# reads its learned windows' resets by the same rule.
CLOCK_STEP: Final = 5.0
# Origins whose clocks are kept per client, before they are forgotten.
_CLOCKS_MAX: Final = 1024


class ServerClock:
    """Private. One server's time, from the ``Date`` of many answers.

    A ``Date`` is stamped in whole seconds, truncated, by a server that may cache
    it (uvicorn refreshes it once a second), and before the answer travels: each
    one is at or behind the server's time when the answer arrived, by up to a
    second and more. So ``Date - received_at`` is a lower bound on the offset
    between the server's clock and ours, every time; the greatest of those seen
    in the last minute is the tightest. Read against it, a reset in epoch seconds
    is late by milliseconds once answers have landed near a second's turn, not by
    the ``Date``'s whole grain. Still a bound on the safe side: never earlier than
    the true reset. A ``Date`` far behind the estimate is a clock set back: the
    estimate starts again from it. Thread-safe.
    """

    __slots__ = ("_lock", "_samples")

    def __init__(self) -> None:
        self._samples: deque[tuple[float, float]] = deque()  # (received, offset), max first
        self._lock = threading.Lock()

    def now_at(self, date: float, received_at: float) -> float:
        """The server's time (epoch seconds) when an answer stamped ``date`` arrived
        at ``received_at`` (monotonic): at or after ``date``, never after the truth."""
        offset = date - received_at
        with self._lock:
            samples = self._samples
            while samples and samples[0][0] < received_at - _CLOCK_HORIZON:
                samples.popleft()
            if samples and samples[0][1] - offset > CLOCK_STEP:
                samples.clear()  # set back: what was seen before no longer holds
            while samples and samples[-1][1] <= offset:
                samples.pop()
            samples.append((received_at, offset))
            best = samples[0][1]
        return received_at + best


class ServerClocks:
    """Private. A :class:`ServerClock` per origin, bounded."""

    __slots__ = ("_clocks",)

    def __init__(self) -> None:
        self._clocks: dict[str, ServerClock] = {}

    def get(self, origin: str) -> ServerClock:
        clock = self._clocks.get(origin)
        if clock is None:
            if len(self._clocks) >= _CLOCKS_MAX:
                self._clocks.clear()  # each is only a tighter bound: safe to forget
            clock = self._clocks[origin] = ServerClock()
        return clock


Unit = Literal[
    "requests",
    "tokens",
    "input_tokens",
    "output_tokens",
    "points",
    "content_bytes",
    "concurrency",
    "resource_units",
]
ResetKind = Literal["window_end", "full_refill", "more_available", "unknown"]
Scope = Literal["request", "bucket", "origin"]

#: The farthest a reset is believed: a day and a half covers daily quotas.
MAX_RESET: Final = 36 * 3600.0
# What a server may ask for at most before it counts as absurd (kept finite).
_MAX_REQUESTED: Final = 10 * 365 * 86400.0
_SCOPE_RANK: Final = {"bucket": 0, "request": 1, "origin": 2}


@dataclass(frozen=True, slots=True)
class QuotaState:
    """One quota a response describes.

    Attributes:
        name: the limiter inside the bucket: ``"default"`` for a single
            anonymous quota, ``"requests"``/``"tokens"`` (OpenAI, Anthropic),
            GitHub's ``x-ratelimit-resource``, an IETF policy name, a Discord
            bucket id, ...
        dialect: which parser read it.
        unit: what is counted.
        limit: units per window, if stated.
        remaining: units left, if stated (may be approximate).
        reset_at: when it resets, on the caller's monotonic clock.
        reset_kind: ``"window_end"``, ``"full_refill"`` (OpenAI, Anthropic:
            when the bucket is full again), ``"more_available"`` (IETF ``t``)
            or ``"unknown"``.
        window: the window in seconds, only when the server states it.
        partition: the server's partition key (IETF ``pk``), if any.
        approximate: the numbers are rounded or estimates.
        reset_epoch: the reset as the server stated it, in epoch seconds, where
            it was an absolute time (``reset_at`` is it read against the server's
            clock); answers that state the same instant describe the same reset.
    """

    name: str
    dialect: str
    unit: Unit = "requests"
    limit: float | None = None
    remaining: float | None = None
    reset_at: float | None = None
    reset_kind: ResetKind = "unknown"
    window: float | None = None
    partition: str | None = None
    approximate: bool = False
    reset_epoch: float | None = None

    @property
    def exhausted(self) -> bool:
        """Nothing remains (a known ``remaining`` of zero or less)."""
        return self.remaining is not None and self.remaining <= 0


@dataclass(frozen=True, slots=True)
class RetryDirective:
    """What the server said about retrying.

    Attributes:
        delay: seconds to wait from when the response arrived; always finite,
            ``0 <= delay <= max_wait``; ``None`` when no wait was given.
        requested: the server's wait before the cap (finite, ``>= 0``).
        over_cap: the server asked for more than ``max_wait``.
        scope: ``"request"`` (only this request), ``"bucket"`` or ``"origin"``.
        should_retry: the server's override (``x-should-retry``,
            ``Stripe-Should-Retry``), if sent.
        terminal: retrying cannot help soon (``insufficient_quota``, a daily
            cap, a zero limit).
        source: which field decided the delay.
        received_at: when the response arrived (monotonic).
    """

    delay: float | None
    requested: float | None
    over_cap: bool
    scope: Scope
    should_retry: bool | None
    terminal: bool
    source: str
    received_at: float

    @property
    def not_before(self) -> float | None:
        """The monotonic deadline before which no retry should leave."""
        return None if self.delay is None else self.received_at + self.delay


@dataclass(frozen=True, slots=True)
class RateLimitSignal:
    """Everything one response said about rate limits.

    Attributes:
        status: the HTTP status.
        received_at: when its headers arrived (monotonic).
        quotas: the quotas it describes (empty for a cached response).
        retry: what it said about retrying, if anything.
        throttled: the response is a rate-limit rejection.
        dialects: the dialects that recognised something.
        cached: served from a cache (``Age > 0``); its quota fields were ignored.
        ignored_wait: a success that carried a wait (``Retry-After`` and its
            kin), ignored: a wait is a directive on 429, 503 and 3xx (RFC 9110,
            RFC 6585), and some servers stamp one on every answer.
    """

    status: int
    received_at: float
    quotas: tuple[QuotaState, ...]
    retry: RetryDirective | None
    throttled: bool
    dialects: tuple[str, ...]
    cached: bool
    ignored_wait: bool = False

    @property
    def exhausted(self) -> tuple[QuotaState, ...]:
        """The quotas with nothing remaining."""
        return tuple(q for q in self.quotas if q.exhausted)


# -- value readers (pure, never raise) ------------------------------------------------

_GO_PART: Final = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_ISO_START: Final = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]")
_ISO_MINUTES: Final = re.compile(r"[Tt ]\d{2}:\d{2}(?:[Zz]|[+-]\d{2}:?\d{2})?$")


def _number(text: str) -> float | None:
    """A finite float, or ``None``; no ``inf``, ``nan`` or junk."""
    text = text.strip()
    if not text or len(text) > 40:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_go_duration(text: str) -> float | None:
    """Seconds in a Go ``time.Duration`` string (``"6m0s"``, ``"250ms"``, ``"2m59.56s"``)."""
    text = text.strip()
    if text in ("0", "-0"):
        return 0.0
    if not text or len(text) > 64:
        return None
    position, total = 0, 0.0
    for match in _GO_PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        position = match.end()
    if position != len(text) or position == 0:
        return None
    return total if math.isfinite(total) else None


def _epoch(moment: datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # asctime and naive ISO: UTC, never local
    return moment.timestamp()


def _http_date(text: str) -> float | None:
    try:
        return _epoch(parsedate_to_datetime(text.strip()))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _iso(text: str) -> float | None:
    """RFC 3339 / ISO 8601 as epoch seconds; minute precision means the end of that minute."""
    text = text.strip()
    if not _ISO_START.match(text) or len(text) > 40:
        return None
    try:
        value = _epoch(datetime.fromisoformat(text))
    except (ValueError, OverflowError):
        return None
    return value + 60.0 if _ISO_MINUTES.search(text) else value


# -- the context dialects write into --------------------------------------------------


@dataclass(slots=True)
class _Candidate:
    delay: float
    source: str
    fallback: bool


@dataclass(slots=True)
class _Collected:
    quotas: list[QuotaState] = field(default_factory=list)
    delays: list[_Candidate] = field(default_factory=list)
    should_retry: bool | None = None
    terminal: bool = False
    throttled: bool = False
    scope: Scope = "bucket"
    dialects: list[str] = field(default_factory=list)


class SignalContext:
    """What a dialect reads, and where it writes what it understood.

    Attributes:
        status: the HTTP status.
        headers: the response headers (case-insensitive).
        body: the decoded JSON body of a small error response, else ``None``.
        received_at: when the response arrived, on the caller's monotonic clock.
        server_now: the server's time (epoch seconds) from its ``Date``
            header, or the client's wall clock when there is none.
        max_wait: the longest wait the caller allows.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        status: int,
        headers: httpx.Headers,
        *,
        body: object,
        received_at: float,
        wall_now: float,
        max_wait: float,
        server_clock: ServerClock | None = None,
    ) -> None:
        self.status = status
        self.headers = headers
        # Every field's non-empty lines by lower-cased name, read once: the dialects ask
        # for about thirty names per response, and each httpx lookup scans them all.
        fields: dict[str, list[str]] = {}
        for name, value in headers.multi_items():
            lines = fields.setdefault(name.lower(), [])
            value = value.strip()
            if value:
                lines.append(value)
        self._fields = fields
        self.body = body
        self.received_at = received_at
        self.max_wait = max_wait
        date = next(filter(None, map(_http_date, self.values("date"))), None)
        if date is None:
            self.server_now = wall_now
        elif server_clock is not None:
            self.server_now = server_clock.now_at(date, received_at)
        else:
            self.server_now = date
        self._out = _Collected()
        self._epochs: dict[float, float] = {}

    # -- reading ----------------------------------------------------------------------

    def values(self, name: str) -> list[str]:
        """The field's raw lines, unsplit (an HTTP-date holds a comma)."""
        return list(self._fields.get(name.lower(), ()))

    def has(self, name: str) -> bool:
        return name.lower() in self._fields

    def number(self, name: str, *, conservative: Literal["min", "max"]) -> float | None:
        """A numeric field; repeated or comma-joined values give the conservative one."""
        found = [
            value
            for line in self.values(name)
            for part in line.split(",")
            if (value := _number(part.split(";", 1)[0])) is not None
        ]
        if not found:
            return None
        return min(found) if conservative == "min" else max(found)

    def token(self, name: str) -> str | None:
        """A token field, lower-cased, first line."""
        lines = self.values(name)
        return lines[0].lower() if lines else None

    def body_get(self, *path: str | int) -> Any:
        """A value inside the JSON body, or ``None`` if any step is missing."""
        node: Any = self.body
        for step in path:
            if isinstance(step, int) and isinstance(node, list) and -len(node) <= step < len(node):
                node = node[step]
            elif isinstance(step, str) and isinstance(node, dict):
                node = node.get(step)
            else:
                return None
        return node

    # -- time -------------------------------------------------------------------------

    def delta_deadline(self, seconds: float) -> float:
        """``received_at + seconds``, clamped to ``[0, MAX_RESET]`` seconds."""
        if not math.isfinite(seconds):
            seconds = MAX_RESET if seconds > 0 else 0.0
        return self.received_at + min(max(seconds, 0.0), MAX_RESET)

    def absolute_deadline(self, epoch: float) -> float:
        """An absolute time (epoch seconds) as a monotonic deadline, read against ``Date``."""
        deadline = self.delta_deadline(epoch - self.server_now)
        self._epochs[deadline] = epoch  # a quota reset there is given its epoch too
        return deadline

    def reset_deadline(self, text: str) -> float | None:
        """A reset of unknown encoding (reference §4.2): Go duration, ISO 8601,
        HTTP-date, epoch ms (>= 1e12), epoch seconds (>= 1e9) or delta seconds."""
        text = text.strip()
        if not text:
            return None
        value = _number(text)
        if value is not None:
            if value >= 1e12:
                return self.absolute_deadline(value / 1000.0)
            if value >= 1e9:
                return self.absolute_deadline(value)
            return self.delta_deadline(value)
        duration = parse_go_duration(text)
        if duration is not None:
            return self.delta_deadline(duration)
        moment = _iso(text)
        if moment is None and any(c.isalpha() for c in text):
            moment = _http_date(text)
        return None if moment is None else self.absolute_deadline(moment)

    def latest_reset(self, name: str) -> float | None:
        """The latest deadline among a reset field's lines (the conservative reading)."""
        found: list[float] = []
        for line in self.values(name):
            parts = [line] if any(c.isalpha() for c in line) else line.split(",")
            found.extend(d for p in parts if (d := self.reset_deadline(p)) is not None)
        return max(found, default=None)

    # -- writing ----------------------------------------------------------------------

    def add_quota(self, quota: QuotaState) -> None:
        """Record a quota. A negative limit or remaining means "not applicable": dropped."""
        for value in (quota.limit, quota.remaining):
            if value is not None and (value < 0 or not math.isfinite(value)):
                return
        if quota.limit is None and quota.remaining is None:
            return
        self._out.quotas.append(quota)
        self.recognised(quota.dialect)

    def add_retry_delay(self, seconds: float, source: str, *, fallback: bool = False) -> None:
        """A wait the server asked for, in seconds from now. The largest explicit one
        wins; a ``fallback`` is used only when nothing else gives a wait."""
        if math.isnan(seconds):
            return
        seconds = min(max(seconds, 0.0), _MAX_REQUESTED)
        self._out.delays.append(_Candidate(seconds, source, fallback))

    def set_should_retry(self, value: bool) -> None:
        self._out.should_retry = value

    def set_terminal(self) -> None:
        """Retrying cannot help soon."""
        self._out.terminal = True

    def set_throttled(self, scope: Scope = "bucket") -> None:
        """This answer is a rate-limit rejection covering ``scope``."""
        self._out.throttled = True
        if _SCOPE_RANK[scope] > _SCOPE_RANK[self._out.scope]:
            self._out.scope = scope

    def recognised(self, dialect: str) -> None:
        if dialect not in self._out.dialects:
            self._out.dialects.append(dialect)

    @property
    def throttled(self) -> bool:
        return self._out.throttled

    @property
    def quotas(self) -> tuple[QuotaState, ...]:
        return tuple(self._out.quotas)

    # -- combining ----------------------------------------------------------------------

    def _finish(self, *, cached: bool) -> RateLimitSignal:
        out = self._out
        ignored_wait = self.status < 300 and bool(out.delays)
        if ignored_wait:
            out.delays.clear()  # a success is no rejection: nothing to wait for
        quotas = () if cached else tuple(out.quotas)
        if self._epochs and quotas:
            quotas = tuple(
                dataclasses.replace(q, reset_epoch=self._epochs[q.reset_at])
                if q.reset_at in self._epochs and q.reset_epoch is None
                else q
                for q in quotas
            )
        if any(q.limit == 0 for q in quotas) and out.throttled:
            out.terminal = True  # no quota at all on this key: surface it, do not spin
        retry = self._directive(quotas) if self._wants_directive() else None
        return RateLimitSignal(
            status=self.status,
            received_at=self.received_at,
            quotas=quotas,
            retry=retry,
            throttled=out.throttled,
            dialects=tuple(out.dialects),
            cached=cached,
            ignored_wait=ignored_wait,
        )

    def _wants_directive(self) -> bool:
        out = self._out
        return out.throttled or out.should_retry is not None or out.terminal or bool(out.delays)

    def _directive(self, quotas: tuple[QuotaState, ...]) -> RetryDirective:
        out = self._out
        explicit = [c for c in out.delays if not c.fallback]
        chosen: _Candidate | None = max(explicit, key=lambda c: c.delay, default=None)
        if chosen is None and out.throttled:
            resets = [q.reset_at for q in quotas if q.exhausted and q.reset_at is not None]
            if resets:
                chosen = _Candidate(max(resets) - self.received_at, "reset", fallback=False)
        if chosen is None:
            chosen = max(out.delays, key=lambda c: c.delay, default=None)
        requested = None if chosen is None else chosen.delay
        over = requested is not None and requested > self.max_wait
        return RetryDirective(
            delay=None if requested is None else min(requested, self.max_wait),
            requested=requested,
            over_cap=over,
            scope=out.scope,
            should_retry=out.should_retry,
            terminal=out.terminal or over,
            source="" if chosen is None else chosen.source,
            received_at=self.received_at,
        )


Dialect: TypeAlias = "Callable[[SignalContext], None]"


# -- the dialects ------------------------------------------------------------------------


def retry_after(ctx: SignalContext) -> None:
    """``Retry-After`` (seconds, decimals, three HTTP-date forms), ``retry-after-ms``,
    ``x-ms-retry-after-ms`` and MailerLite's ``X-RateLimit-Retry-After``."""
    for line in ctx.values("retry-after"):
        if any(c.isalpha() for c in line):
            moment = _http_date(line)  # a date holds a comma: never split it
            if moment is not None:
                ctx.add_retry_delay(moment - ctx.server_now, "retry-after(date)")
            continue
        for part in line.split(","):
            seconds = _number(part)
            if seconds is not None:
                ctx.add_retry_delay(seconds, "retry-after")
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        millis = ctx.number(name, conservative="max")
        if millis is not None:
            ctx.add_retry_delay(millis / 1000.0, name)
    seconds = ctx.number("x-ratelimit-retry-after", conservative="max")
    if seconds is not None:
        ctx.add_retry_delay(seconds, "x-ratelimit-retry-after")
    if ctx.status == 429:
        ctx.set_throttled()
    elif ctx.status in (503, 529) and ctx.has("retry-after"):
        ctx.set_throttled("origin")  # maintenance or overload: the whole host


def should_retry(ctx: SignalContext) -> None:
    """``x-should-retry`` (OpenAI, Anthropic) and ``Stripe-Should-Retry``; Stripe's
    ``lock_timeout`` 429 concerns one object, not the account."""
    for name in ("x-should-retry", "stripe-should-retry"):
        value = ctx.token(name)
        if value in ("true", "false"):
            ctx.set_should_retry(value == "true")
            ctx.recognised("should-retry")
    if ctx.status == 429 and ctx.body_get("error", "code") == "lock_timeout":
        ctx.set_throttled("request")
        ctx.recognised("stripe")


def _sf_lines(ctx: SignalContext, *names: str) -> str:
    return ", ".join(line for name in names for line in ctx.values(name))


def _policies(text: str) -> dict[str, dict[str, Any]]:
    items = parse_list(text) if text else None
    policies: dict[str, dict[str, Any]] = {}
    for value, params in items or ():
        if isinstance(value, str):
            policies[value] = params
    return policies


_IETF_UNITS: Final[dict[str, Unit]] = {
    "requests": "requests",
    "content-bytes": "content_bytes",
    "bytes": "content_bytes",
    "concurrent-requests": "concurrency",
}


def _int_param(params: Mapping[str, Any], key: str) -> float | None:
    value = params.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return float(value)


def _pk(params: Mapping[str, Any]) -> str | None:
    value = params.get("pk")
    if isinstance(value, bytes):
        return value.hex()
    return value if isinstance(value, str) else None


def ietf(ctx: SignalContext) -> None:
    """The IETF draft: ``-08+`` named policies (also ``Beta-`` and Cloudflare's
    ``Ratelimit``), the ``-07`` dictionary, and the split trio (``<= -06``),
    including GitLab's trio whose ``RateLimit-Reset`` is an epoch."""
    for prefix in ("", "beta-"):
        current = _sf_lines(ctx, f"{prefix}ratelimit")
        policy_text = _sf_lines(ctx, f"{prefix}ratelimit-policy")
        if current and _named(ctx, current, policy_text):
            continue
        if current and _dictionary_07(ctx, current, policy_text):
            continue
        if not current and policy_text:
            _named(ctx, "", policy_text)
    _trio(ctx)


def _named(ctx: SignalContext, current: str, policy_text: str) -> bool:
    items = parse_list(current) if current else []
    if items is None or (items and not any("r" in params for _, params in items)):
        return False
    policies = _policies(policy_text)
    seen: set[str] = set()
    for value, params in items:
        if not isinstance(value, str):
            continue
        seen.add(value)
        policy = policies.get(value, {})
        t = _int_param(params, "t")
        _add_named(ctx, value, policy, params, None if t is None else ctx.delta_deadline(t))
    for name, policy in policies.items():
        if name not in seen:
            _add_named(ctx, name, policy, {}, None)
    return True


def _add_named(
    ctx: SignalContext,
    name: str,
    policy: Mapping[str, Any],
    current: Mapping[str, Any],
    reset_at: float | None,
) -> None:
    unit = policy.get("qu", "requests")
    window = _int_param(policy, "w")
    ctx.add_quota(
        QuotaState(
            name=name,
            dialect="ietf",
            unit=_IETF_UNITS.get(unit, "resource_units") if isinstance(unit, str) else "requests",
            limit=_int_param(policy, "q"),
            remaining=_int_param(current, "r"),
            reset_at=reset_at,
            reset_kind="more_available" if reset_at is not None else "unknown",
            window=window if window else None,
            partition=_pk(current) or _pk(policy),
        )
    )


def _policy_window(policy_text: str, limit: float | None) -> float | None:
    """The window of the ``limit;w=`` policy item matching ``limit`` (else the longest)."""
    windows: list[tuple[float, float]] = []
    for value, params in parse_list(policy_text) or ():
        w = _int_param(params, "w")
        if isinstance(value, int) and not isinstance(value, bool) and w:
            windows.append((float(value), w))
    matching = [w for q, w in windows if q == limit]
    return max(matching or [w for _, w in windows], default=None)


def _dictionary_07(ctx: SignalContext, current: str, policy_text: str) -> bool:
    members = parse_dictionary(current)
    if not members or "limit" not in members:
        return False
    fields = {k: _int_param({k: v[0]}, k) for k, v in members.items()}
    reset = fields.get("reset")
    limit = fields.get("limit")
    ctx.add_quota(
        QuotaState(
            name="default",
            dialect="ietf-07",
            limit=limit,
            remaining=fields.get("remaining"),
            reset_at=None if reset is None else ctx.delta_deadline(reset),
            reset_kind="window_end",
            window=_policy_window(policy_text, limit),
        )
    )
    return True


def _trio(ctx: SignalContext) -> None:
    limit_lines = ctx.values("ratelimit-limit")
    remaining = ctx.number("ratelimit-remaining", conservative="min")
    if not limit_lines and remaining is None:
        return
    gitlab = any(
        ctx.has(h) for h in ("ratelimit-name", "ratelimit-observed", "ratelimit-resettime")
    )
    limit = ctx.number("ratelimit-limit", conservative="min")
    reset_at = ctx.latest_reset("ratelimit-reset")  # by magnitude: GitLab sends an epoch
    if reset_at is None and gitlab:
        moments = [m for line in ctx.values("ratelimit-resettime") if (m := _http_date(line))]
        reset_at = ctx.absolute_deadline(max(moments)) if moments else None
    window = _policy_window(", ".join([*limit_lines, *ctx.values("ratelimit-policy")]), limit)
    ctx.add_quota(
        QuotaState(
            name=ctx.token("ratelimit-name") or "default",
            dialect="gitlab" if gitlab else "ietf-trio",
            limit=limit,
            remaining=remaining,
            reset_at=reset_at,
            reset_kind="window_end",
            window=window,
        )
    )


def _mentions_rate_limit(ctx: SignalContext) -> bool:
    message = ctx.body_get("message")
    return isinstance(message, str) and "rate limit" in message.lower()


def x_ratelimit(ctx: SignalContext) -> None:
    """``X-RateLimit-*`` and ``X-Rate-Limit-*``: generic, GitHub, Discord, X, Reddit,
    Jira, Zendesk, Azure DevOps; resets read by magnitude."""
    for prefix in ("x-ratelimit-", "x-rate-limit-"):
        limit = ctx.number(f"{prefix}limit", conservative="min")
        remaining = ctx.number(f"{prefix}remaining", conservative="min")
        used = ctx.number(f"{prefix}used", conservative="max")
        if limit is None and remaining is None:
            continue
        if prefix == "x-ratelimit-" and (
            ctx.has("x-ratelimit-bucket") or ctx.has("x-ratelimit-reset-after")
        ):
            _discord(ctx, limit, remaining)
            continue
        github = prefix == "x-ratelimit-" and ctx.has("x-ratelimit-resource")
        if limit is None and remaining is not None and used is not None:
            limit = used + remaining  # Reddit sends no limit
        dialect = "github" if github else ("x" if prefix == "x-rate-limit-" else "x-ratelimit")
        ctx.add_quota(
            QuotaState(
                name=ctx.token("x-ratelimit-resource")
                or ctx.token("ratelimit-reason")
                or "default",
                dialect=dialect,
                limit=limit,
                remaining=remaining,
                reset_at=ctx.latest_reset(f"{prefix}reset"),
                reset_kind="window_end",
                window=_policy_window(", ".join(ctx.values(f"{prefix}limit")), limit),
                approximate=remaining is not None and not float(remaining).is_integer(),
            )
        )
        if github and ctx.status in (403, 429):
            _github_throttle(ctx, remaining)
    zendesk_limit = ctx.number("x-rate-limit", conservative="min")
    if zendesk_limit is not None and not ctx.has("x-rate-limit-limit"):
        ctx.add_quota(
            QuotaState(
                name="default",
                dialect="zendesk",
                limit=zendesk_limit,
                remaining=ctx.number("x-rate-limit-remaining", conservative="min"),
                reset_at=ctx.latest_reset("ratelimit-reset"),
                reset_kind="window_end",
            )
        )
    _x_daily(ctx)


def _github_throttle(ctx: SignalContext, remaining: float | None) -> None:
    """403 is a throttle only with evidence (reference edge case 11)."""
    evidence = remaining == 0 or ctx.has("retry-after") or _mentions_rate_limit(ctx)
    if not evidence:
        return
    ctx.set_throttled()
    message = ctx.body_get("message")
    secondary = isinstance(message, str) and "secondary" in message.lower()
    if secondary and not ctx.has("retry-after") and remaining != 0:
        ctx.add_retry_delay(60.0, "github-secondary", fallback=True)


def _discord(ctx: SignalContext, limit: float | None, remaining: float | None) -> None:
    after = ctx.number("x-ratelimit-reset-after", conservative="max")
    reset_at = (
        ctx.delta_deadline(after) if after is not None else ctx.latest_reset("x-ratelimit-reset")
    )
    ctx.add_quota(
        QuotaState(
            name=ctx.values("x-ratelimit-bucket")[0]
            if ctx.values("x-ratelimit-bucket")
            else "default",
            dialect="discord",
            limit=limit,
            remaining=remaining,
            reset_at=reset_at,
            reset_kind="window_end",
        )
    )
    body_wait = ctx.body_get("retry_after")
    if isinstance(body_wait, int | float) and not isinstance(body_wait, bool):
        ctx.add_retry_delay(float(body_wait), "discord-body")
    if ctx.status == 429:
        scope = ctx.token("x-ratelimit-scope")
        if ctx.token("x-ratelimit-global") == "true" or ctx.body_get("global") is True:
            ctx.set_throttled("origin")
        elif scope == "shared":
            ctx.set_throttled("request")  # a per-resource limit, not ours to pause for


def _x_daily(ctx: SignalContext) -> None:
    for who in ("app", "user"):
        prefix = f"x-{who}-limit-24hour-"
        limit = ctx.number(f"{prefix}limit", conservative="min")
        remaining = ctx.number(f"{prefix}remaining", conservative="min")
        if limit is None and remaining is None:
            continue
        ctx.add_quota(
            QuotaState(
                name=f"24hour-{who}",
                dialect="x",
                limit=limit,
                remaining=remaining,
                reset_at=ctx.latest_reset(f"{prefix}reset"),
                reset_kind="window_end",
                window=86400.0,
            )
        )
    problem = ctx.body_get("type")
    if isinstance(problem, str) and problem.endswith("/usage-capped"):
        ctx.set_terminal()


_OPENAI_FAMILY: Final = re.compile(r"^x-ratelimit-limit-(?P<family>[a-z_\-]+)$")
_OPENAI_UNITS: Final[dict[str, Unit]] = {"requests": "requests", "tokens": "tokens"}


def openai(ctx: SignalContext) -> None:
    """OpenAI (and Groq, Azure OpenAI): requests and tokens families, Go-duration resets
    to full; ``-1`` means not applicable; ``insufficient_quota`` is terminal."""
    families = {
        m.group("family") for name in ctx.headers if (m := _OPENAI_FAMILY.match(name.lower()))
    }
    for family in sorted(families):
        reset = None
        for line in ctx.values(f"x-ratelimit-reset-{family}"):
            duration = parse_go_duration(line)
            if duration is None:
                deadline = ctx.reset_deadline(line)
            else:
                deadline = ctx.delta_deadline(duration)
            if deadline is not None:
                reset = deadline if reset is None else max(reset, deadline)
        ctx.add_quota(
            QuotaState(
                name=family,
                dialect="openai",
                unit=_OPENAI_UNITS.get(family, "tokens"),
                limit=ctx.number(f"x-ratelimit-limit-{family}", conservative="min"),
                remaining=ctx.number(f"x-ratelimit-remaining-{family}", conservative="min"),
                reset_at=reset,
                reset_kind="full_refill",
            )
        )
    if ctx.body_get("error", "code") == "insufficient_quota":
        ctx.set_terminal()


_ANTHROPIC: Final = re.compile(
    r"^anthropic-(?:ratelimit|priority)-(?P<family>requests|tokens|input-tokens|output-tokens)-limit$"
)
_ANTHROPIC_UNITS: Final[dict[str, Unit]] = {
    "requests": "requests",
    "tokens": "tokens",
    "input-tokens": "input_tokens",
    "output-tokens": "output_tokens",
}


def anthropic(ctx: SignalContext) -> None:
    """Anthropic: ``anthropic-ratelimit-*`` (and priority) families, RFC 3339 resets
    to full, token counts rounded."""
    for name in list(ctx.headers):
        match = _ANTHROPIC.match(name.lower())
        if match is None:
            continue
        base = name.lower()[: -len("-limit")]
        family = match.group("family")
        ctx.add_quota(
            QuotaState(
                name=base.removeprefix("anthropic-").replace("ratelimit-", ""),
                dialect="anthropic",
                unit=_ANTHROPIC_UNITS[family],
                limit=ctx.number(f"{base}-limit", conservative="min"),
                remaining=ctx.number(f"{base}-remaining", conservative="min"),
                reset_at=ctx.latest_reset(f"{base}-reset"),
                reset_kind="full_refill",
                approximate=family != "requests",
            )
        )


def shopify(ctx: SignalContext) -> None:
    """Shopify REST: ``X-Shopify-Shop-Api-Call-Limit: used/size`` (a leaky bucket)."""
    for line in ctx.values("x-shopify-shop-api-call-limit"):
        used_text, _, size_text = line.partition("/")
        used, size = _number(used_text), _number(size_text)
        if used is None or size is None:
            continue
        ctx.add_quota(
            QuotaState(
                name="default",
                dialect="shopify",
                limit=size,
                remaining=max(0.0, size - used),
                reset_kind="unknown",
            )
        )
        return


def hubspot(ctx: SignalContext) -> None:
    """HubSpot: a rolling window of ``-Interval-Milliseconds`` and a daily quota;
    ``policyName: DAILY`` is terminal."""
    interval = ctx.number("x-hubspot-ratelimit-interval-milliseconds", conservative="max")
    window = interval / 1000.0 if interval and interval > 0 else None
    limit = ctx.number("x-hubspot-ratelimit-max", conservative="min")
    remaining = ctx.number("x-hubspot-ratelimit-remaining", conservative="min")
    if limit is not None or remaining is not None:
        ctx.add_quota(
            QuotaState(
                name="rolling",
                dialect="hubspot",
                limit=limit,
                remaining=remaining,
                reset_at=None if window is None else ctx.delta_deadline(window),
                reset_kind="window_end",
                window=window,
            )
        )
    daily = ctx.number("x-hubspot-ratelimit-daily", conservative="min")
    daily_left = ctx.number("x-hubspot-ratelimit-daily-remaining", conservative="min")
    if daily is not None or daily_left is not None:
        ctx.add_quota(
            QuotaState(name="daily", dialect="hubspot", limit=daily, remaining=daily_left)
        )
    if ctx.body_get("policyName") == "DAILY":
        ctx.set_terminal()


def zendesk_tickets(ctx: SignalContext) -> None:
    """Zendesk's ``zendesk-ratelimit-tickets-index: total=N; remaining=N; resets=N``."""
    for line in ctx.values("zendesk-ratelimit-tickets-index"):
        fields = {}
        for part in line.split(";"):
            key, _, value = part.partition("=")
            number = _number(value)
            if number is not None:
                fields[key.strip().lower()] = number
        if "total" in fields or "remaining" in fields:
            resets = fields.get("resets")
            ctx.add_quota(
                QuotaState(
                    name="tickets-index",
                    dialect="zendesk",
                    limit=fields.get("total"),
                    remaining=fields.get("remaining"),
                    reset_at=None if resets is None else ctx.delta_deadline(resets),
                    reset_kind="window_end",
                )
            )


def azure(ctx: SignalContext) -> None:
    """Azure Resource Manager: ``x-ms-ratelimit-remaining-*`` counts (no limit, no reset),
    including the ``Policy;remaining`` list of ``x-ms-ratelimit-remaining-resource``."""
    for name in list(ctx.headers):
        lower = name.lower()
        if not lower.startswith("x-ms-ratelimit-remaining-"):
            continue
        suffix = lower.removeprefix("x-ms-ratelimit-remaining-")
        for line in ctx.values(lower):
            for part in line.split(","):
                policy, sep, value = part.rpartition(";")
                number = _number(value if sep else part)
                if number is not None:
                    ctx.add_quota(
                        QuotaState(
                            name=f"{suffix}:{policy.strip()}" if sep else suffix,
                            dialect="azure",
                            remaining=number,
                        )
                    )


#: Every built-in dialect, in the order they run.
DEFAULT_DIALECTS: tuple[Dialect, ...] = (
    retry_after,
    should_retry,
    ietf,
    x_ratelimit,
    openai,
    anthropic,
    shopify,
    hubspot,
    zendesk_tickets,
    azure,
)

_BUILTIN: Final = frozenset(DEFAULT_DIALECTS)


def builtin_only(dialects: Iterable[Dialect]) -> bool:
    """Every dialect is a built-in one: an answer that ``quiet`` finds silent says
    nothing any of them reads (any subset or reordering of the defaults qualifies,
    ``list(DEFAULT_DIALECTS)`` included; one parser of your own does not)."""
    return all(dialect in _BUILTIN for dialect in dialects)


# What a (lowered) header name tells ``scan_headers``, remembered per name: most
# responses repeat the same few names, and a dict lookup is a fraction of the three
# substring searches. Bounded, so a server inventing names cannot grow it.
_OTHER: Final = 0
_SIGNAL: Final = 1
_LENGTH: Final = 2
_AGE: Final = 3
_NAME_KINDS: dict[bytes, int] = {b"content-length": _LENGTH, b"age": _AGE}
_NAME_KINDS_MAX: Final = 1024


def _name_kind(lower: bytes) -> int:
    # Every field a built-in dialect reads has "limit", "retry" or "quota" in its name.
    signal = b"limit" in lower or b"retry" in lower or b"quota" in lower
    kind = _SIGNAL if signal else _OTHER
    if len(_NAME_KINDS) < _NAME_KINDS_MAX:
        _NAME_KINDS[lower] = kind
    return kind


class HeaderScan(NamedTuple):
    """Private. What one pass over a response's header lines found."""

    may_signal: bool  # a field a built-in dialect could read
    cached: bool  # served from a cache: an ``Age`` above 0
    length: int | None  # the declared ``Content-Length``, if one valid line gives it


def scan_headers(headers: httpx.Headers) -> HeaderScan:
    """One pass over the header lines, without building a list or lowering a name."""
    lines: Iterable[tuple[bytes, bytes, bytes]] | None = getattr(headers, "_list", None)
    if lines is None:  # not httpx's internal (raw, lowered, value) triples: build them
        lines = [(name, name.lower(), value) for name, value in headers.raw]
    signal = cached = False
    length: int | None = None
    lengths = 0
    kinds = _NAME_KINDS
    for _, lower, value in lines:
        kind = kinds.get(lower)
        if kind is None:
            kind = _name_kind(lower)
        if kind == _OTHER:
            continue
        if kind == _SIGNAL:
            signal = True
        elif kind == _LENGTH:
            lengths += 1
            length = int(value) if value.isdigit() else None
        elif not cached:
            age = _number(value.decode("latin-1").split(",")[0])
            cached = age is not None and age > 0
    return HeaderScan(signal, cached, length if lengths == 1 else None)


def quiet(status: int, body: object, scan: HeaderScan) -> bool:
    """Most answers: a success with no field the built-in dialects read. Nothing to parse."""
    return status < 400 and body is None and not scan.may_signal


def parse_signal(
    status: int,
    headers: httpx.Headers | Mapping[str, str] | Sequence[tuple[str, str]],
    *,
    body: object = None,
    received_at: float,
    wall_now: float,
    max_wait: float = 300.0,
    dialects: Iterable[Dialect] = DEFAULT_DIALECTS,
    server_clock: ServerClock | None = None,
) -> RateLimitSignal:
    """Read one response's rate-limit signals. Pure; never raises for any header value.

    Args:
        status: the HTTP status.
        headers: the response headers.
        body: the decoded JSON body of a small error response (``None`` otherwise).
        received_at: when the headers arrived, monotonic seconds.
        wall_now: the client's wall clock then (epoch seconds); used only
            when the response has no usable ``Date``.
        max_wait: the longest wait allowed; longer ones are capped and flagged.
        dialects: the parsers to run (default :data:`DEFAULT_DIALECTS`).
        server_clock: the server's clock as estimated from earlier answers (the
            client keeps one per origin); without it, each ``Date`` is read alone.

    .. versionadded:: 0.1
    """
    headers = headers if isinstance(headers, httpx.Headers) else httpx.Headers(headers)
    scan = scan_headers(headers)
    dialects = tuple(dialects)
    if builtin_only(dialects) and quiet(status, body, scan):
        return RateLimitSignal(
            status=status,
            received_at=received_at,
            quotas=(),
            retry=None,
            throttled=False,
            dialects=(),
            cached=scan.cached,
        )
    ctx = SignalContext(
        status,
        headers,
        body=body,
        received_at=received_at,
        wall_now=wall_now,
        max_wait=max_wait,
        # A cached answer's Date is from when it was made: no reading of the clock now.
        server_clock=None if scan.cached else server_clock,
    )
    for dialect in dialects:
        try:
            dialect(ctx)
        except Exception:  # a dialect's bug never breaks a request
            logger.debug("rate-limit dialect %r failed", dialect, exc_info=True)
    return ctx._finish(cached=scan.cached)
