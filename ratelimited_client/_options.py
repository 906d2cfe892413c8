"""Private. Validation of the throttle options shared by client and transport."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Final

from ._clock import MONOTONIC, Clock, MonotonicClock
from ._errors import ConfigurationError
from ._rate import normalize_rates
from ._retry import RetryBudget, RetryPolicy
from ._signals import DEFAULT_DIALECTS
from ._throttle import DEFAULT_MAX_WAIT, SyncThrottle, Throttle, ThrottleCore

if TYPE_CHECKING:
    from ._rate import LimitSpec
    from ._signals import Dialect
    from ._types import KeyFunc, RateTypes

__all__ = [
    "COST_EXTENSION",
    "DEFAULT_RETRY",
    "KEY_EXTENSION",
    "build_throttle",
    "check_dialects",
    "check_key",
    "check_retry",
    "new_budget",
    "request_cost",
]

#: ``request.extensions`` entry carrying the request's cost in quota units (default 1).
COST_EXTENSION = "ratelimit_cost"
#: ``request.extensions`` entry naming the bucket, overriding the ``key`` function.
KEY_EXTENSION = "ratelimit_key"


def _optional_int(name: str, value: object, *, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ConfigurationError(f"{name} must be {kind} or None, got {value!r}")
    return value


def build_throttle(
    *,
    rate: RateTypes | None,
    max_concurrency: int | None,
    max_queued: int | None,
    latency_proof: bool,
    learn: bool,
    clock: Clock | None,
    slow_start: bool = True,
    max_wait: float = DEFAULT_MAX_WAIT,
    sync: bool = False,
    bucket_rates: Mapping[Hashable, RateTypes] | None = None,
    backend: object = None,
) -> ThrottleCore:
    """Validate the options (naming the bad one) and build the throttle."""
    flags = (("latency_proof", latency_proof), ("learn", learn), ("slow_start", slow_start))
    for name, flag in flags:
        if not isinstance(flag, bool):
            raise ConfigurationError(f"{name} must be True or False, got {flag!r}")
    if clock is not None and not isinstance(clock, Clock):
        raise ConfigurationError(f"clock must have now() and sleep_until(), got {clock!r}")
    if sync and clock is not None and not isinstance(clock, MonotonicClock):
        raise ConfigurationError(
            "clock is not supported by the sync client: it waits on real time (threads)"
        )
    if backend is not None:
        from ._backends import RedisBackend

        if not isinstance(backend, RedisBackend):
            raise ConfigurationError(
                f"backend must be a RedisBackend or None (in memory), got {backend!r}"
            )
    cls = SyncThrottle if sync else Throttle
    return cls(
        normalize_rates(rate, "rate"),
        bucket_rates=_bucket_rates(bucket_rates),
        backend=backend,
        max_concurrency=_optional_int("max_concurrency", max_concurrency, minimum=1),
        max_queued=_optional_int("max_queued", max_queued, minimum=0),
        latency_proof=latency_proof,
        learn=learn,
        slow_start=slow_start,
        max_wait=max_wait,
        clock=clock or MONOTONIC,
    )


def _bucket_rates(
    value: Mapping[Hashable, RateTypes] | None,
) -> dict[Hashable, tuple[LimitSpec, ...]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"bucket_rates must map bucket keys to rates, e.g. {{'writes': '10/minute'}}, "
            f"got {value!r}"
        )
    found = {key: normalize_rates(rate, f"bucket_rates[{key!r}]") for key, rate in value.items()}
    for key, rates in found.items():
        if not rates:
            raise ConfigurationError(f"bucket_rates[{key!r}] must be a rate, got None")
    return found


#: The policy used when ``retry`` is not passed.
DEFAULT_RETRY: Final = RetryPolicy()


def check_retry(retry: RetryPolicy | None) -> float:
    """Validate the ``retry`` option; returns the longest server wait it honours."""
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise ConfigurationError(f"retry must be a RetryPolicy or None, got {retry!r}")
    return retry.max_retry_after if retry is not None else DEFAULT_MAX_WAIT


def new_budget(retry: RetryPolicy | None) -> RetryBudget | None:
    """A fresh retry budget for one client (shared by all its transports)."""
    if retry is None or retry.attempts == 1:
        return None
    return RetryBudget(retry.budget, retry.budget_floor, retry.budget_window)


def check_key(key: KeyFunc | None) -> KeyFunc | None:
    if key is not None and not callable(key):
        raise ConfigurationError(f"key must be a callable taking a request, got {key!r}")
    return key


def check_dialects(dialects: Sequence[Dialect] | None) -> tuple[Dialect, ...]:
    """The ``dialects`` option: ``None`` means every built-in dialect."""
    if dialects is None:
        return DEFAULT_DIALECTS
    value: object = dialects
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ConfigurationError(
            f"dialects must be a sequence of parser functions, got {dialects!r}"
        )
    for dialect in dialects:
        if not callable(dialect):
            raise ConfigurationError(f"dialects must hold callables, got {dialect!r}")
    return tuple(dialects)


def request_cost(extensions: dict[str, object]) -> float:
    """The request's cost from its extensions; 1 when absent. Rejects nonsense clearly."""
    cost = extensions.get(COST_EXTENSION, 1)
    if (
        isinstance(cost, bool)
        or not isinstance(cost, int | float)
        or not math.isfinite(cost)
        or cost <= 0
    ):
        raise ValueError(
            f"request extension {COST_EXTENSION!r} must be a positive, finite number, got {cost!r}"
        )
    return float(cost)
