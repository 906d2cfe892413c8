"""The seeded chat-completion workload of ``bench_model_tokens.py``, and its oracle.

Importable by the tests as well (``benchmarks`` is on mypy's path; a test puts it
on ``sys.path``). Everything here is pure: no sockets, no clock.

- :func:`workload`: ``calls`` chat completions, ``(messages, max_tokens)`` each,
  drawn from ``random.Random(seed)``: one user message of 200-2000 characters,
  ``max_tokens`` 100-600, both uniform.
- :func:`reservation`, :func:`prompt_tokens`: what the bundled mock reserves for a
  call before admitting it (``_ModelAsk.read`` in
  ``ratelimited_client/testing/_mock_api.py``): its prompt, ``ceil(chars / 4)``
  tokens (at least 1) of every message's text, plus its ``max_tokens``.
- :func:`completion_draws`: the completion lengths the mock draws, in the order it
  admits calls, from its own generator (``random.Random(seed + 7919)``: one
  ``uniform(0.3, 1.0)`` an admitted model call, ``max(1, round(max_tokens × u))``).
- :func:`admission_times`, :func:`least_time`: the oracle (see
  :func:`admission_times` for exactly what it assumes).
- :func:`tokens_within_quota`: the proof a run never used more tokens in any
  sliding window than the quota, from the mock's statistics.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ratelimited_client.testing import MockAPIConfig

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ratelimited_client.testing import MockAPIStats

__all__ = [
    "CALLS",
    "CONCURRENCY",
    "FULL_WINDOW",
    "MOCK_SEED",
    "REQUESTS_PER_MINUTE",
    "SEED",
    "TOKENS_PER_MINUTE",
    "Call",
    "Messages",
    "Quota",
    "admission_times",
    "completion_draws",
    "least_time",
    "mock_config",
    "prompt_tokens",
    "reservation",
    "tokens_within_quota",
    "workload",
]

CALLS: Final = 200
CONCURRENCY: Final = 50
SEED: Final = 21
MOCK_SEED: Final = 2121
FULL_WINDOW: Final = 60.0
TOKENS_PER_MINUTE: Final = 60_000
REQUESTS_PER_MINUTE: Final = 300
PROMPT_CHARS: Final = (200, 2000)
MAX_TOKENS: Final = (100, 600)
# The mock's completion generator: random.Random(config.seed + 7919), one
# uniform(0.3, 1.0) per admitted model call (MockAPI._model_use).
_COMPLETION_SEED_OFFSET: Final = 7919
_COMPLETION_SHARE: Final = (0.3, 1.0)
_WORDS: Final = (
    "rate",
    "limit",
    "token",
    "quota",
    "window",
    "request",
    "model",
    "answer",
    "prompt",
    "budget",
    "minute",
    "client",
)

Messages = list[dict[str, str]]
Call = tuple[Messages, int]


@dataclass(frozen=True, slots=True)
class Quota:
    """The mock's two quotas: ``tokens`` and ``requests`` per ``window`` seconds (one
    window for both). :meth:`scaled` keeps the per-minute figures' share of the
    window: ``Quota.scaled(10.0)`` is 10,000 tokens and 50 requests per 10 s."""

    tokens: int = TOKENS_PER_MINUTE
    requests: int = REQUESTS_PER_MINUTE
    window: float = FULL_WINDOW

    @classmethod
    def scaled(cls, window: float) -> Quota:
        """60,000 tokens and 300 requests a minute, cut to a ``window`` of seconds."""
        if not (math.isfinite(window) and window > 0):
            raise ValueError(f"window must be a positive number of seconds, got {window!r}")
        share = window / FULL_WINDOW
        return cls(
            tokens=max(1, round(TOKENS_PER_MINUTE * share)),
            requests=max(1, round(REQUESTS_PER_MINUTE * share)),
            window=float(window),
        )


def mock_config(quota: Quota, seed: int = MOCK_SEED) -> MockAPIConfig:
    """The bundled mock with ``quota``, OpenAI's headers, and ``seed`` (which fixes
    its completion draws: :func:`completion_draws`)."""
    return MockAPIConfig(
        limit=quota.requests,
        window=quota.window,
        dialect="openai",
        model_tokens=quota.tokens,
        model_tokens_window=quota.window,
        seed=seed,
    )


def workload(calls: int = CALLS, seed: int = SEED) -> list[Call]:
    """``calls`` chat completions, each one user message of 200-2000 characters
    (words from a small vocabulary, cut to the length drawn) and a ``max_tokens`` of
    100-600, both uniform, drawn from ``random.Random(seed)``."""
    if calls < 0:
        raise ValueError(f"calls must be >= 0, got {calls!r}")
    rng = random.Random(seed)
    made: list[Call] = []
    for index in range(calls):
        length = rng.randint(*PROMPT_CHARS)
        words: list[str] = [f"call {index}:"]
        size = len(words[0])
        while size < length:
            word = rng.choice(_WORDS)
            words.append(word)
            size += len(word) + 1
        text = " ".join(words)[:length]
        made.append(([{"role": "user", "content": text}], rng.randint(*MAX_TOKENS)))
    return made


def prompt_tokens(messages: Messages) -> int:
    """The prompt's tokens as the mock counts them: a quarter token a character of
    the messages' text (``content``; roles are not counted), rounded up, at least 1."""
    chars = sum(len(message.get("content", "")) for message in messages)
    return max(1, math.ceil(chars / 4))


def reservation(messages: Messages, max_tokens: int) -> int:
    """What the mock reserves for a call before admitting it: prompt + ``max_tokens``."""
    return prompt_tokens(messages) + max_tokens


def completion_draws(max_tokens: Sequence[int], mock_seed: int = MOCK_SEED) -> list[int]:
    """The completion tokens the mock (``seed=mock_seed``) charges its 1st, 2nd, ...
    admitted model calls, when those ask ``max_tokens[0]``, ``max_tokens[1]``, ...:
    the k-th admission takes the k-th draw of its generator whichever call it is."""
    rng = random.Random(mock_seed + _COMPLETION_SEED_OFFSET)
    return [max(1, round(cap * rng.uniform(*_COMPLETION_SHARE))) for cap in max_tokens]


def admission_times(calls: Sequence[Call], quota: Quota, mock_seed: int = MOCK_SEED) -> list[float]:
    """When the oracle's calls are admitted, seconds after the first.

    The oracle sends the calls in workload order, each at the earliest instant (not
    before the one before it) at which the mock admits it:

    - tokens: the usage charged within the sliding window (entries leave at
      ``admitted + window``) plus the call's :func:`reservation` fit ``quota.tokens``;
    - requests: fewer than ``quota.requests`` calls admitted within the window.

    Each admitted call is charged its *actual usage*, prompt + the completion the mock
    draws for it: admitted in workload order, call k takes the mock's k-th draw
    (:func:`completion_draws`), so for this order the schedule is exact, no estimate.
    A client whose calls the mock admits in another order pairs the same draws with
    other calls; its charges then differ slightly and this is the reference it is
    measured against, not a proven bound for every order. No latency, no retries:
    the oracle never sends a call the mock would refuse.

    Raises:
        ValueError: a call's reservation exceeds the token quota (the mock: 400).
    """
    window = quota.window
    draws = completion_draws([cap for _, cap in calls], mock_seed)
    charged: deque[tuple[float, int]] = deque()  # (expires at, tokens used)
    used = 0
    admitted: deque[float] = deque()  # expiry of each admission still in the window
    now = 0.0
    times: list[float] = []
    for (messages, cap), completion in zip(calls, draws, strict=True):
        prompt = prompt_tokens(messages)
        need = prompt + cap
        if need > quota.tokens:
            raise ValueError(f"a call reserves {need} tokens, over the quota {quota.tokens}")
        # Each pass moves `now` to an expiry still in a log, which the next pass
        # removes: bounded by the logs' lengths.
        for _ in range(len(charged) + len(admitted) + 2):
            while charged and charged[0][0] <= now:
                used -= charged.popleft()[1]
            while admitted and admitted[0] <= now:
                admitted.popleft()
            later = now
            excess = used + need - quota.tokens
            if excess > 0:
                for expires, tokens in charged:
                    excess -= tokens
                    if excess <= 0:
                        later = max(later, expires)
                        break
            if len(admitted) >= quota.requests:
                later = max(later, admitted[0])
            if later == now:
                break
            now = later
        else:  # pragma: no cover - the loop's bound is never reached
            raise AssertionError("the oracle did not converge")
        charged.append((now + window, prompt + completion))
        used += prompt + completion
        admitted.append(now + window)
        times.append(now)
    return times


def least_time(calls: Sequence[Call], quota: Quota, mock_seed: int = MOCK_SEED) -> float:
    """The least time the quotas allow: when the oracle's last call is admitted,
    seconds after its first (:func:`admission_times`; 0.0 with no calls)."""
    times = admission_times(calls, quota, mock_seed)
    return times[-1] if times else 0.0


def tokens_within_quota(stats: MockAPIStats, quota: Quota) -> bool:
    """True when the tokens the mock charged within any sliding window never passed
    the token quota (``max_model_tokens_in_window``: the mock's running maximum of
    its window's usage, taken at every admission, the only moments it grows)."""
    return stats.max_model_tokens_in_window <= quota.tokens
