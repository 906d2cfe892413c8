"""One pass over a response's header lines: is there anything to parse at all?"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, NamedTuple

from ._values import _number

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._header_map import HeaderMap

# What a (lowered) header name tells ``scan_headers``, remembered per name: most
# responses repeat the same few names, and a dict lookup is a fraction of the three
# substring searches. Bounded, so a server inventing names cannot grow it.
_OTHER: Final = 0  # falsy: ``scan_headers`` skips a line on ``not kind``
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


# A ``HeaderScan`` built the way its own ``__new__`` builds it, without that
# ``__new__`` (a Python function: one frame more on every response).
_new_scan = tuple.__new__


def scan_headers(headers: HeaderMap) -> HeaderScan:
    """One pass over the header lines, without building a list or lowering a name.

    The lines are read from the private ``_list`` of ``httpx.Headers`` and
    ``httpx2.Headers`` (the same ``(raw name, lowered name, value)`` byte triples in
    both) where there is one, else from ``raw``."""
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
        if not kind:  # _OTHER: most lines
            continue
        if kind == _SIGNAL:
            signal = True
        elif kind == _LENGTH:
            lengths += 1
            length = int(value) if value.isdigit() else None
        elif not cached:
            age = _number(value.decode("latin-1").split(",")[0])
            cached = age is not None and age > 0
    return _new_scan(HeaderScan, (signal, cached, length if lengths == 1 else None))


def quiet(status: int, body: object, scan: HeaderScan) -> bool:
    """Most answers: a success with no field the built-in dialects read. Nothing to parse."""
    return status < 400 and body is None and not scan.may_signal
