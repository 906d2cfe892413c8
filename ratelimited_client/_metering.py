"""What a request costs in units other than requests (a model call's tokens): the
estimate before it is sent, and the usage its answer reports.

A ``UnitMeter`` has two methods: ``estimate(request)`` returns the units to reserve
(``{"tokens": 1200, ...}``, or ``None`` for a request that spends none), and
``usage(answers)`` reads what was used from the parsed JSON of the answer (one
object), or from the events of a streamed answer that carry usage, in order.
:class:`ModelTokens`, the default, knows the OpenAI and Anthropic request and
answer shapes. A request can also state its units itself, in the
``ratelimit_units`` extension, which wins over the meter.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

from ._errors import ConfigurationError
from ._rate import is_finite_number

if TYPE_CHECKING:
    from ._http import RequestView

__all__ = [
    "UNITS_EXTENSION",
    "ModelTokens",
    "UnitMeter",
    "UsageTap",
    "check_meter",
    "request_units",
]

#: ``request.extensions`` entry carrying the request's units of other quotas, e.g.
#: ``{"tokens": 1200}``: reserved instead of the meter's estimate.
UNITS_EXTENSION: Final = "ratelimit_units"

# The model endpoints' paths (their ends), and which of them generate.
_MODEL_PATHS: Final = ("/chat/completions", "/completions", "/responses", "/messages")
_EMBEDDING_PATH: Final = "/embeddings"
# Where a request body's prompt text is.
_PROMPT_FIELDS: Final = ("messages", "system", "input", "prompt")
# Past this many bytes a request body is not parsed for an estimate (a file upload).
_MAX_ESTIMATED_BODY: Final = 8 * 1024 * 1024


@runtime_checkable
class UnitMeter(Protocol):
    """What requests cost in other units, before and after (see the module)."""

    def estimate(self, request: RequestView) -> Mapping[str, float] | None:
        """The units to reserve before ``request`` is sent; ``None``: none."""
        ...

    def usage(self, answers: Sequence[object]) -> Mapping[str, float] | None:
        """What the answer used, from its parsed JSON body (one object) or the
        parsed events of its stream that mention ``usage`` (in order); ``None``:
        it does not say (the estimate is kept)."""
        ...


class ModelTokens:
    """The default meter: the tokens of OpenAI and Anthropic model calls.

    Estimate (``POST`` to a path ending in ``/chat/completions``, ``/completions``,
    ``/responses``, ``/messages`` or ``/embeddings``, with a JSON body): the
    prompt's tokens, one per ``chars_per_token`` characters of its text (the
    ``messages``, ``system``, ``input`` and ``prompt`` strings and text parts,
    rounded up), as ``input_tokens``; its ``max_tokens`` (or
    ``max_completion_tokens``, ``max_output_tokens``; ``default_max_tokens`` when
    none is set) as ``output_tokens``, times ``n`` choices; their sum as ``tokens``.
    This is how the vendors count a call against their token limits while it runs
    (OpenAI: the prompt plus ``max_tokens``; Anthropic: input tokens, and output
    tokens estimated from ``max_tokens``). Every other request: ``None``.

    Usage: ``usage`` of the answer (OpenAI ``prompt_tokens`` / ``completion_tokens``
    or ``input_tokens`` / ``output_tokens``; Anthropic ``input_tokens`` plus its
    cache-creation tokens, ``output_tokens``), the stream's last report winning
    for each (Anthropic reports input at the start and output at the end), and
    ``tokens`` their sum.
    """

    def __init__(self, *, chars_per_token: float = 4.0, default_max_tokens: int = 1024) -> None:
        per_token: object = chars_per_token
        most: object = default_max_tokens
        if not is_finite_number(per_token) or per_token <= 0:
            raise ConfigurationError(
                f"chars_per_token must be a positive number, got {chars_per_token!r}"
            )
        if isinstance(most, bool) or not isinstance(most, int) or most < 0:
            raise ConfigurationError(
                f"default_max_tokens must be an integer >= 0, got {default_max_tokens!r}"
            )
        self.chars_per_token = float(chars_per_token)
        self.default_max_tokens = default_max_tokens

    def __repr__(self) -> str:
        return (
            f"ModelTokens(chars_per_token={self.chars_per_token:g}, "
            f"default_max_tokens={self.default_max_tokens})"
        )

    def estimate(self, request: RequestView) -> Mapping[str, float] | None:
        if request.method != "POST":
            return None
        path = request.url.path.rstrip("/")
        embedding = path.endswith(_EMBEDDING_PATH)
        if not embedding and not path.endswith(_MODEL_PATHS):
            return None
        asked = _json_body(request)
        if not isinstance(asked, dict):
            return None
        chars = _text_length(
            [asked.get(name) for name in ("messages", "system", "input", "prompt")]
        )
        prompt = math.ceil(chars / self.chars_per_token) if chars else 1
        if embedding:
            return {"tokens": prompt, "input_tokens": prompt}
        cap = self.default_max_tokens
        for name in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
            value = asked.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                cap = value
                break
        choices = asked.get("n")
        if isinstance(choices, int) and not isinstance(choices, bool) and choices > 1:
            cap *= choices
        return {"tokens": prompt + cap, "input_tokens": prompt, "output_tokens": cap}

    def usage(self, answers: Sequence[object]) -> Mapping[str, float] | None:
        found: dict[str, float] = {}
        for answer in answers:
            usage = _usage_of(answer)
            if usage is None:
                continue
            prompt = _count(usage, "prompt_tokens")
            if prompt is None:
                prompt = _count(usage, "input_tokens")
                created = _count(usage, "cache_creation_input_tokens")
                if prompt is not None and created is not None:
                    prompt += created
            completion = _count(usage, "completion_tokens")
            if completion is None:
                completion = _count(usage, "output_tokens")
            if prompt is not None:
                found["input_tokens"] = prompt
            if completion is not None:
                found["output_tokens"] = completion
        if not found:
            return None
        found["tokens"] = found.get("input_tokens", 0.0) + found.get("output_tokens", 0.0)
        return found


def _json_body(request: RequestView) -> object:
    try:
        content = request.content
    except Exception:  # noqa: BLE001 - a streamed body, not read: no estimate
        return None
    if not content or len(content) > _MAX_ESTIMATED_BODY:
        return None
    try:
        return json.loads(content)
    except ValueError:
        return None


def _text_length(value: object) -> int:
    """Characters of message text in a request body's part: strings, ``content``
    and ``text`` of parts, nested lists (depth-first, without recursion limits)."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.append(item.get("content"))
            text = item.get("text")
            if isinstance(text, str):
                total += len(text)
    return total


def _usage_of(answer: object) -> Mapping[str, object] | None:
    """The ``usage`` object of an answer or a stream event: at the top, or in its
    ``message`` (Anthropic's ``message_start``) or ``response`` (OpenAI's
    ``response.completed``)."""
    if not isinstance(answer, dict):
        return None
    usage = answer.get("usage")
    if isinstance(usage, dict):
        return usage
    for name in ("message", "response"):
        inner = answer.get(name)
        if isinstance(inner, dict) and isinstance(inner.get("usage"), dict):
            found: Mapping[str, object] = inner["usage"]
            return found
    return None


def _count(usage: Mapping[str, object], name: str) -> float | None:
    value = usage.get(name)
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


def request_units(request: RequestView, meter: UnitMeter | None) -> Mapping[str, float] | None:
    """The units ``request`` reserves: its ``ratelimit_units`` extension, else the
    meter's estimate; ``None`` (or empty): none. Nonsense is refused clearly; a
    meter that fails is logged by the caller and counts as no estimate."""
    stated = request.extensions.get(UNITS_EXTENSION)
    if stated is not None:
        return _checked_units(stated, f"request extension {UNITS_EXTENSION!r}")
    if meter is None:
        return None
    estimate = meter.estimate(request)
    if estimate is None:
        return None
    return _checked_units(estimate, f"the meter's estimate ({type(meter).__name__})")


def _checked_units(units: object, source: str) -> dict[str, float]:
    if not isinstance(units, Mapping):
        raise ValueError(
            f"{source} must map unit names to amounts, e.g. {{'tokens': 1200}}, got {units!r}"
        )
    checked: dict[str, float] = {}
    for unit, amount in units.items():
        if not isinstance(unit, str) or not unit or unit == "requests":
            raise ValueError(
                f"{source}: unit names are strings other than 'requests' (the request "
                f"quota's cost is 'ratelimit_cost'), got {unit!r}"
            )
        if not is_finite_number(amount) or amount < 0:
            raise ValueError(f"{source}: {unit!r} must be a finite number >= 0, got {amount!r}")
        if amount > 0:
            checked[unit] = float(amount)
    return checked


def check_meter(meter: object) -> UnitMeter | None:
    """The ``meter`` option: a ``UnitMeter`` or ``None`` (no estimates)."""
    if meter is not None and not isinstance(meter, UnitMeter):
        raise ConfigurationError(
            "meter must have estimate(request) and usage(answers) (a UnitMeter, such as "
            f"ModelTokens()) or be None, got {meter!r}"
        )
    return meter


class UsageTap:
    """Reads the usage of a streamed answer (server-sent events) as it passes: the
    ``data:`` lines that mention ``usage``, parsed; at the end, the meter's reading."""

    __slots__ = ("_events", "_meter", "_partial")

    def __init__(self, meter: UnitMeter) -> None:
        self._meter = meter
        self._partial = b""
        self._events: list[object] = []

    def feed(self, chunk: bytes) -> None:
        data = self._partial + chunk if self._partial else chunk
        end = data.rfind(b"\n")
        if end < 0:
            self._partial = data[-65536:]  # a line longer than that carries no usage we read
            return
        self._partial = data[end + 1 :]
        if b'"usage"' not in data:
            return
        for line in data[:end].split(b"\n"):
            if line.startswith(b"data:") and b'"usage"' in line:
                try:
                    self._events.append(json.loads(line[5:]))
                except ValueError:
                    continue

    def usage(self) -> Mapping[str, float] | None:
        if self._partial:
            self.feed(b"\n")
        return self._meter.usage(self._events) if self._events else None
