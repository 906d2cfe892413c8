"""The response headers as the signals code reads them, without an HTTP library.

``httpx.Headers`` and ``httpx2.Headers`` (its fork: the same API, another class)
both are a :class:`HeaderMap` by their shape, so neither is imported here. Plain
headers (a mapping, or a list of pairs) are read through :class:`PlainHeaders`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol, TypeVar, overload

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from typing_extensions import TypeIs

_T = TypeVar("_T")


class HeaderMap(Protocol):
    """A response's header lines: names case-insensitive, a repeated name keeps every
    line, in the order they came. What the parser and the built-in dialects read;
    ``httpx.Headers``, ``httpx2.Headers`` and :class:`PlainHeaders` all are one."""

    @property
    def raw(self) -> list[tuple[bytes, bytes]]:
        """Every line as ``(name, value)`` bytes, the name as sent."""
        ...

    def multi_items(self) -> list[tuple[str, str]]:
        """Every line as ``(lower-cased name, value)``, repeated names included."""
        ...

    @overload
    def get(self, key: str, /) -> str | None: ...

    @overload
    def get(self, key: str, default: str, /) -> str: ...

    @overload
    def get(self, key: str, default: _T, /) -> str | _T: ...

    def __iter__(self) -> Iterator[str]:
        """The distinct names, lower-cased, in the order they first came."""
        ...


class PlainHeaders(Mapping[str, str]):
    """Private. Header lines given as a mapping or a list of ``(name, value)`` pairs,
    read as a :class:`HeaderMap` the way ``httpx.Headers`` reads them: a name in
    any case finds its lines, a repeated name keeps every line (``get`` and ``[]``
    join them with ``", "``), and the order is kept."""

    __slots__ = ("_lines", "_values")

    def __init__(self, headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
        lines = list(headers.items() if isinstance(headers, Mapping) else headers)
        values: dict[str, list[str]] = {}
        for name, value in lines:
            values.setdefault(name.lower(), []).append(value)
        self._lines = lines
        self._values = values  # every line's value by lower-cased name, first seen first

    @property
    def raw(self) -> list[tuple[bytes, bytes]]:
        # UTF-8 with surrogates passed through, so that this never raises (parse_signal
        # never does); httpx.Headers refused a str that was not ASCII.
        return [
            (name.encode("utf-8", "surrogatepass"), value.encode("utf-8", "surrogatepass"))
            for name, value in self._lines
        ]

    def multi_items(self) -> list[tuple[str, str]]:
        return [(name.lower(), value) for name, value in self._lines]

    def __getitem__(self, key: str) -> str:
        values = self._values.get(key.lower())
        if values is None:
            raise KeyError(key)
        return ", ".join(values)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def _is_header_map(headers: object) -> TypeIs[HeaderMap]:
    # Looked up on the class: an instance's ``raw`` may be a property that builds a list.
    kind = type(headers)
    return hasattr(kind, "multi_items") and hasattr(kind, "raw")


def header_map(headers: HeaderMap | Mapping[str, str] | Sequence[tuple[str, str]]) -> HeaderMap:
    """The headers as a :class:`HeaderMap`: as they are if they are one already
    (``httpx.Headers``, ``httpx2.Headers``), else wrapped in :class:`PlainHeaders`."""
    if _is_header_map(headers):
        return headers
    return PlainHeaders(headers)
