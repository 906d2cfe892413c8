"""The ``Rate`` value object: ``limit`` units per ``period`` seconds."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Final, TypeGuard

from ._errors import ConfigurationError

__all__ = ["Rate"]

_UNITS: Final[dict[str, float]] = {
    "ms": 0.001,
    "millisecond": 0.001,
    "milliseconds": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hrs": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
}

# "<limit> / [<number>] [<unit>]"; at least one of number and unit must be present.
_PATTERN: Final = re.compile(
    r"""^\s*(?P<limit>\d+)\s*
        (?:/|\s+per\s+)\s*
        (?P<count>\d+(?:\.\d*)?|\.\d+)?\s*
        (?P<unit>[a-z]+)?\s*$""",
    re.VERBOSE | re.IGNORECASE,
)


def is_finite_number(value: object) -> TypeGuard[int | float]:
    """Private. An int or float (not a bool), finite: what a numeric option must be."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` requests (or cost units) per ``period`` seconds.

    Immutable and hashable. ``Rate(50, 60)`` is fifty per minute; the same is
    ``Rate.parse("50/minute")``.

    Args:
        limit: how many units fit in one period; a positive whole number.
        period: the length of the period in seconds; positive and finite.

    Raises:
        ConfigurationError: (a ``ValueError``) when either value is invalid.

    .. versionadded:: 0.1
    """

    limit: int
    period: float

    def __post_init__(self) -> None:
        limit: object = self.limit
        period: object = self.period
        if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
            raise ConfigurationError(f"Rate limit must be a positive integer, got {limit!r}")
        if not is_finite_number(period) or period <= 0:
            raise ConfigurationError(
                f"Rate period must be a positive, finite number of seconds, got {period!r}"
            )
        object.__setattr__(self, "period", float(period))

    @classmethod
    def parse(cls, text: str) -> Rate:
        """Build a ``Rate`` from text such as ``"50/minute"``, ``"5/s"`` or ``"10/2.5s"``.

        Units: ``ms``, ``s``/``sec``/``second``, ``m``/``min``/``minute``,
        ``h``/``hour``, ``d``/``day`` (plurals accepted). A number without a
        unit is seconds (``"10/2.5"``); ``"100 per 5 minutes"`` also reads.

        Raises:
            ConfigurationError: (a ``ValueError``) naming the text that did not parse.
        """
        if not isinstance(text, str):
            raise ConfigurationError(f"Rate.parse expects a string, got {text!r}")
        match = _PATTERN.match(text)
        if match is None or (match["count"] is None and match["unit"] is None):
            raise ConfigurationError(
                f"cannot parse rate {text!r}: expected '<limit>/<period>', "
                "e.g. '50/minute', '5/s' or '10/2.5s'"
            )
        unit = (match["unit"] or "s").lower()
        if unit not in _UNITS:
            raise ConfigurationError(
                f"cannot parse rate {text!r}: unknown unit {match['unit']!r} "
                f"(known: {', '.join(sorted(set(_UNITS)))})"
            )
        count = float(match["count"]) if match["count"] is not None else 1.0
        return cls(int(match["limit"]), count * _UNITS[unit])

    @property
    def interval(self) -> float:
        """Seconds between units when spread evenly (``period / limit``)."""
        return self.period / self.limit

    @property
    def per_second(self) -> float:
        """Units per second (``limit / period``)."""
        return self.limit / self.period

    def __str__(self) -> str:
        return f"{self.limit}/{self.period:g}s"

    def __repr__(self) -> str:
        # A learned period is a measurement (1.0400832210000033): six significant
        # digits say it; the value itself is kept whole.
        return f"Rate(limit={self.limit}, period={float(f'{self.period:.6g}')!r})"


@dataclass(frozen=True, slots=True)
class SlidingWindow:
    """A strict sliding-window quota: never more than ``rate.limit`` units in any
    interval of ``rate.period`` seconds, bursts up to the limit allowed.

    This is what a plain :class:`Rate` means wherever a rate is accepted.

    .. versionadded:: 0.1
    """

    rate: Rate

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", _coerce_rate(self.rate, "SlidingWindow rate"))

    def __str__(self) -> str:
        return f"sliding window {self.rate}"


@dataclass(frozen=True, slots=True)
class TokenBucket:
    """A token bucket (GCRA): ``burst`` units at once, refilled at ``rate``.

    Smoother than a sliding window: after a burst it spaces requests
    ``rate.interval`` apart. It admits up to ``burst + d / rate.interval`` units
    in any interval of ``d`` seconds, so with ``burst > 1`` it can exceed
    ``rate.limit`` within one period; use it for upstreams that meter with a
    token or leaky bucket, and :class:`SlidingWindow` for strict per-period counts.

    Args:
        rate: the refill rate, a :class:`Rate` (text such as ``"10/s"`` is parsed too).
        burst: the bucket size; defaults to ``rate.limit``.

    .. versionadded:: 0.1
    """

    rate: Rate
    burst: int | None = None

    def __post_init__(self) -> None:
        rate = _coerce_rate(self.rate, "TokenBucket rate")
        object.__setattr__(self, "rate", rate)
        burst: object = self.burst
        if burst is None:
            object.__setattr__(self, "burst", rate.limit)
        elif isinstance(burst, bool) or not isinstance(burst, int) or burst <= 0:
            raise ConfigurationError(f"TokenBucket burst must be a positive integer, got {burst!r}")

    def __str__(self) -> str:
        return f"token bucket {self.rate} burst {self.burst}"


def _coerce_rate(value: object, option: str) -> Rate:
    if isinstance(value, Rate):
        return value
    if isinstance(value, str):
        try:
            return Rate.parse(value)
        except ValueError as exc:
            raise ConfigurationError(f"{option}: {exc}") from None
    raise ConfigurationError(f"{option} must be a Rate or a string like '50/minute', got {value!r}")


LimitSpec = SlidingWindow | TokenBucket


def normalize_rates(value: object, option: str = "rate") -> tuple[LimitSpec, ...]:
    """Private. The ``rate`` option as a tuple of specs; ``()`` means no local limit."""
    if value is None:
        return ()
    if isinstance(value, Rate | str):
        return (SlidingWindow(_coerce_rate(value, option)),)
    if isinstance(value, SlidingWindow | TokenBucket):
        return (value,)
    if (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        limit, period = value
        raise ConfigurationError(
            f"{option} got the tuple {value!r}; for {limit} per {period:g} s write "
            f"Rate({limit}, {period!r}) or '{limit}/{period:g}s'"
        )
    if isinstance(value, list | tuple | set | frozenset):
        specs: list[LimitSpec] = []
        for item in value:
            if isinstance(item, list | tuple | set | frozenset) or item is None:
                raise ConfigurationError(f"{option} items must be rates, got {item!r}")
            specs.extend(normalize_rates(item, option))
        if not specs:
            raise ConfigurationError(f"{option} must name at least one rate, or be None")
        return tuple(dict.fromkeys(specs))  # drop exact duplicates, keep order
    raise ConfigurationError(
        f"{option} must be a Rate, a string like '50/minute', a TokenBucket/SlidingWindow, "
        f"a list of those, or None; got {value!r}"
    )
