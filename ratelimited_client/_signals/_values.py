"""Header values read as numbers, Go durations, HTTP-dates and ISO 8601 times."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

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
