"""Private. A small, strict reader for RFC 9651 Structured Field lists and dictionaries.

Enough for the IETF RateLimit fields (and Cloudflare's, Jira's beta ones):
integers, decimals, strings, tokens, byte sequences, booleans, parameters and
inner lists. Malformed input gives ``None``, never an exception: the draft
says malformed fields must be ignored.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final, TypeAlias

__all__ = ["Bare", "Item", "parse_dictionary", "parse_list"]

Bare: TypeAlias = int | float | str | bytes | bool
Params: TypeAlias = dict[str, Bare]
Item: TypeAlias = tuple[Bare | tuple[Bare, ...], Params]

_KEY: Final = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_TOKEN: Final = re.compile(r"[A-Za-z*][A-Za-z0-9!#$%&'*+\-.^_`|~:/]*")
_NUMBER: Final = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]{1,3})?")
_MAX_INPUT: Final = 16 * 1024


class _MalformedError(Exception):
    """Private. Raised inside the reader, turned into ``None`` at the edge."""


class _Reader:
    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip(self, chars: str) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in chars:
            self.pos += 1

    def done(self) -> bool:
        return self.pos >= len(self.text)

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise _MalformedError
        self.pos += 1

    def match(self, pattern: re.Pattern[str]) -> str:
        found = pattern.match(self.text, self.pos)
        if found is None:
            raise _MalformedError
        self.pos = found.end()
        return found.group()

    # -- bare items ---------------------------------------------------------------

    def bare(self) -> Bare:
        char = self.peek()
        if char == '"':
            return self.string()
        if char == ":":
            return self.byte_sequence()
        if char == "?":
            self.pos += 1
            flag = self.peek()
            if flag not in ("0", "1"):
                raise _MalformedError
            self.pos += 1
            return flag == "1"
        if char == "-" or char.isdigit():
            text = self.match(_NUMBER)
            return float(text) if "." in text else int(text)
        if char.isalpha() or char == "*":
            return self.match(_TOKEN)
        raise _MalformedError

    def string(self) -> str:
        self.expect('"')
        out: list[str] = []
        while not self.done():
            char = self.text[self.pos]
            self.pos += 1
            if char == "\\":
                escaped = self.peek()
                if escaped not in ('"', "\\"):
                    raise _MalformedError
                out.append(escaped)
                self.pos += 1
            elif char == '"':
                return "".join(out)
            elif not " " <= char <= "~":
                raise _MalformedError
            else:
                out.append(char)
        raise _MalformedError

    def byte_sequence(self) -> bytes:
        self.expect(":")
        end = self.text.find(":", self.pos)
        if end < 0:
            raise _MalformedError
        chunk = self.text[self.pos : end]
        self.pos = end + 1
        try:
            return base64.b64decode(chunk, validate=True)
        except (binascii.Error, ValueError):
            raise _MalformedError from None

    # -- composite ---------------------------------------------------------------

    def params(self) -> Params:
        params: Params = {}
        while self.peek() == ";":
            self.pos += 1
            self.skip(" ")
            key = self.match(_KEY)
            value: Bare = True
            if self.peek() == "=":
                self.pos += 1
                value = self.bare()
            params[key] = value
        return params

    def item_or_inner(self) -> Item:
        if self.peek() == "(":
            self.pos += 1
            members: list[Bare] = []
            while True:
                self.skip(" ")
                if self.peek() == ")":
                    self.pos += 1
                    break
                members.append(self.bare())
                self.params()  # inner-item parameters are not needed here
                if self.peek() not in (" ", ")"):
                    raise _MalformedError
            return tuple(members), self.params()
        value = self.bare()
        return value, self.params()

    def separator(self) -> bool:
        """After a member: True if another follows, False at the end."""
        self.skip(" \t")
        if self.done():
            return False
        self.expect(",")
        self.skip(" \t")
        if self.done():
            raise _MalformedError  # a trailing comma
        return True


def parse_list(text: str) -> list[Item] | None:
    """An SF List, or ``None`` if ``text`` is not one."""
    if len(text) > _MAX_INPUT:
        return None
    reader = _Reader(text.strip(" \t"))
    items: list[Item] = []
    try:
        if reader.done():
            return items
        while True:
            items.append(reader.item_or_inner())
            if not reader.separator():
                return items
    except _MalformedError:
        return None


def parse_dictionary(text: str) -> dict[str, Item] | None:
    """An SF Dictionary, or ``None`` if ``text`` is not one."""
    if len(text) > _MAX_INPUT:
        return None
    reader = _Reader(text.strip(" \t"))
    members: dict[str, Item] = {}
    try:
        if reader.done():
            return members
        while True:
            key = reader.match(_KEY)
            if reader.peek() == "=":
                reader.pos += 1
                members[key] = reader.item_or_inner()
            else:
                members[key] = (True, reader.params())
            if not reader.separator():
                return members
    except _MalformedError:
        return None
