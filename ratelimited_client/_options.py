"""Private. Validation of the throttle options shared by client and transport."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Final, TypedDict, TypeVar

from ._clock import MONOTONIC, Clock, MonotonicClock
from ._errors import ConfigurationError
from ._metering import ModelTokens
from ._priority import (
    DEFAULT_PROMOTE_AFTER,
    PriorityReserve,
    check_promote_after,
    check_reserve,
    check_tenant_weights,
)
from ._rate import Rate, SlidingWindow, is_finite_number, normalize_rates
from ._retry import RetryBudget, RetryPolicy
from ._signals import DEFAULT_DIALECTS
from ._throttle import DEFAULT_MAX_WAIT, SyncThrottle, Throttle, ThrottleCore

if TYPE_CHECKING:
    from ._backends import RedisBackend
    from ._hooks import Hooks
    from ._metering import UnitMeter
    from ._operations import OperationPolicy
    from ._rate import LimitSpec
    from ._signals import Dialect
    from ._types import KeyFunc, RateTypes

__all__ = [
    "COST_EXTENSION",
    "DEFAULT_METER",
    "DEFAULT_RETRY",
    "KEY_EXTENSION",
    "THROTTLE_DEFAULTS",
    "ThrottleOptions",
    "build_throttle",
    "check_dialects",
    "check_key",
    "check_retry",
    "lists_throttle_options",
    "new_budget",
    "request_cost",
    "resolve_options",
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
    unit_rates: Mapping[str, Rate | str] | None = None,
    promote_after: float | None = DEFAULT_PROMOTE_AFTER,
    priority_reserve: PriorityReserve | None = None,
    tenant_weights: Mapping[Hashable, float] | None = None,
    tenant_rates: Mapping[Hashable, RateTypes] | None = None,
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
        unit_rates=_unit_rates(unit_rates),
        promote_after=check_promote_after(promote_after),
        priority_reserve=check_reserve(priority_reserve),
        tenant_weights=check_tenant_weights(tenant_weights),
        tenant_rates=_bucket_rates(tenant_rates, "tenant_rates"),
    )


def _unit_rates(value: Mapping[str, Rate | str] | None) -> dict[str, Rate]:
    """The ``unit_rates`` option: one rate per unit, e.g. ``{"tokens": "60000/minute"}``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            "unit_rates must map unit names to rates, e.g. {'tokens': '60000/minute'}, "
            f"got {value!r}"
        )
    found: dict[str, Rate] = {}
    for name, rate in value.items():
        unit: object = name
        if not isinstance(unit, str) or not unit or unit == "requests":
            raise ConfigurationError(
                "unit_rates keys are unit names other than 'requests' (the request quota "
                f"is rate=), such as 'tokens' or 'input_tokens'; got {unit!r}"
            )
        specs = normalize_rates(rate, f"unit_rates[{name!r}]")
        if len(specs) != 1 or not isinstance(specs[0], SlidingWindow):
            raise ConfigurationError(
                f"unit_rates[{name!r}] must be one rate, a Rate or a string like "
                f"'60000/minute', got {rate!r}"
            )
        found[name] = specs[0].rate
    return found


def _bucket_rates(
    value: Mapping[Hashable, RateTypes] | None, option: str = "bucket_rates"
) -> dict[Hashable, tuple[LimitSpec, ...]]:
    """``bucket_rates`` (or ``tenant_rates``): keys to the rates of their own."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"{option} must map keys to rates, e.g. {{'writes': '10/minute'}}, got {value!r}"
        )
    found = {key: normalize_rates(rate, f"{option}[{key!r}]") for key, rate in value.items()}
    for key, rates in found.items():
        if not rates:
            raise ConfigurationError(f"{option}[{key!r}] must be a rate, got None")
    return found


#: The policy used when ``retry`` is not passed.
DEFAULT_RETRY: Final = RetryPolicy()
#: The meter used when ``meter`` is not passed: the OpenAI and Anthropic token shapes.
DEFAULT_METER: Final = ModelTokens()


class ThrottleOptions(TypedDict, total=False):
    """The options every client and transport takes, declared here once: each public
    constructor takes them as ``**options`` (typed by this), lists them in its
    signature (``lists_throttle_options``) and passes them on whole. Adding one is a
    line here, its default below, its use in ``ClientState.build``, and its
    documentation (``RateLimitedTransport``'s docstring)."""

    rate: RateTypes | None
    bucket_rates: Mapping[Hashable, RateTypes] | None
    max_concurrency: int | None
    max_queued: int | None
    key: KeyFunc | None
    latency_proof: bool
    retry: RetryPolicy | None
    learn: bool
    slow_start: bool
    dialects: Sequence[Dialect] | None
    metrics: Hooks | Sequence[Hooks] | None
    backend: RedisBackend | None
    clock: Clock | None
    unit_rates: Mapping[str, Rate | str] | None
    meter: UnitMeter | None
    promote_after: float | None
    priority_reserve: PriorityReserve | None
    operations: OperationPolicy | None
    tenant: KeyFunc | None
    tenant_weights: Mapping[Hashable, float] | None
    tenant_rates: Mapping[Hashable, RateTypes] | None


#: Each option's value when it is not passed.
THROTTLE_DEFAULTS: Final[ThrottleOptions] = {
    "rate": None,
    "bucket_rates": None,
    "max_concurrency": None,
    "max_queued": None,
    "key": None,
    "latency_proof": False,
    "retry": DEFAULT_RETRY,
    "learn": True,
    "slow_start": True,
    "dialects": None,
    "metrics": None,
    "backend": None,
    "clock": None,
    "unit_rates": None,
    "meter": DEFAULT_METER,
    "promote_after": DEFAULT_PROMOTE_AFTER,
    "priority_reserve": None,
    "operations": None,
    "tenant": None,
    "tenant_weights": None,
    "tenant_rates": None,
}


def resolve_options(options: Mapping[str, object], owner: str) -> ThrottleOptions:
    """Every option, the passed ones over the defaults; an unknown name is the
    ``TypeError`` Python gives for any unexpected keyword."""
    for name in options:
        if name not in THROTTLE_DEFAULTS:
            raise TypeError(f"{owner}() got an unexpected keyword argument {name!r}")
    resolved: ThrottleOptions = {**THROTTLE_DEFAULTS, **options}  # type: ignore[typeddict-item]
    return resolved


_F = TypeVar("_F", bound=Callable[..., None])


def lists_throttle_options(init: _F) -> _F:
    """Give a constructor taking ``**options: Unpack[ThrottleOptions]`` the signature
    that ``help()`` and ``inspect`` show: every option by name, typed, with its
    default, after the positional parameters."""
    signature = inspect.signature(init)
    kept = [p for p in signature.parameters.values() if p.name != "options"]
    at = sum(1 for p in kept if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
    # (A ``**httpx_options`` catch-all, the sync client's, stays last.)
    hints = ThrottleOptions.__annotations__
    listed = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=default,
            annotation=getattr(hints[name], "__forward_arg__", hints[name]),
        )
        for name, default in THROTTLE_DEFAULTS.items()
    ]
    init.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*kept[:at], *listed, *kept[at:]]
    )
    return init


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


def check_key(key: KeyFunc | None, option: str = "key") -> KeyFunc | None:
    if key is not None and not callable(key):
        raise ConfigurationError(f"{option} must be a callable taking a request, got {key!r}")
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


def request_cost(extensions: Mapping[str, object]) -> float:
    """The request's cost from its extensions; 1 when absent. Rejects nonsense clearly."""
    cost = extensions.get(COST_EXTENSION, 1)
    if not is_finite_number(cost) or cost <= 0:
        raise ValueError(
            f"request extension {COST_EXTENSION!r} must be a positive, finite number, got {cost!r}"
        )
    return float(cost)
