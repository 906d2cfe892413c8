"""The context a dialect reads a response from and writes what it understood into,
and how what the dialects wrote combines into one :class:`RateLimitSignal`."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

from ._model import MAX_RESET, QuotaState, RateLimitSignal, RetryDirective
from ._values import _http_date, _iso, _number, parse_go_duration

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._header_map import HeaderMap
    from ._model import Scope
    from ._server_clock import ServerClock

# What a server may ask for at most before it counts as absurd (kept finite).
_MAX_REQUESTED: Final = 10 * 365 * 86400.0
_SCOPE_RANK: Final = {"bucket": 0, "request": 1, "origin": 2}


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
        headers: the response headers, case-insensitive (``httpx.Headers`` or
            ``httpx2.Headers``, or the library's own view for plain mappings): a
            :class:`HeaderMap`.
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
        headers: HeaderMap,
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
