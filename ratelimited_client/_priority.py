"""Which request waits: priorities within a bucket, the promotion of old requests,
and a reserve of the quota for urgent ones.

A request's priority is an integer, higher goes sooner, 0 by default; set per
request with ``extensions={"ratelimit_priority": n}`` (or ``priority(n)``), per
call or per client view with ``CallOptions(priority=n)`` / ``with_options``, or
for every request made inside ``with priority_scope(n):`` (a vendor SDK's).
Requests of one priority keep their order. A request that has waited
``promote_after`` seconds goes before every priority (the oldest first), so a
steady stream of urgent requests cannot park a batch forever. A
``PriorityReserve`` keeps a share of the configured rate for requests at or
above a priority: the others wait while taking their slot would leave less.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ._errors import ConfigurationError
from ._rate import is_finite_number

if TYPE_CHECKING:
    from collections.abc import Hashable, Iterator

__all__ = [
    "DEFAULT_PROMOTE_AFTER",
    "PRIORITY_EXTENSION",
    "TENANT_EXTENSION",
    "PriorityReserve",
    "check_promote_after",
    "check_reserve",
    "check_tenant_weights",
    "priority",
    "priority_scope",
    "request_priority",
]

#: ``request.extensions`` entry carrying the request's priority (an int; higher first).
PRIORITY_EXTENSION: Final = "ratelimit_priority"
#: ``request.extensions`` entry naming the request's tenant (its fair share's owner).
TENANT_EXTENSION: Final = "ratelimit_tenant"
#: Seconds a request waits at most behind higher priorities before it goes first.
DEFAULT_PROMOTE_AFTER: Final = 30.0


def priority(value: int) -> dict[str, int]:
    """The extensions that give one request its priority: ``client.get(url,
    extensions=priority(10))``. Higher goes sooner; 0 is the default."""
    return {PRIORITY_EXTENSION: _checked(value, "priority")}


# The priority of requests made in this context without one of their own.
_SCOPE: ContextVar[int | None] = ContextVar("ratelimit_priority", default=None)


@contextmanager
def priority_scope(value: int) -> Iterator[None]:
    """Give every request made inside the block (in this task or thread, and the
    tasks it starts) this priority, unless it carries its own: the way in for code
    that builds the requests itself, such as a vendor SDK::

        with priority_scope(10):
            await llm.chat.completions.create(...)
    """
    token = _SCOPE.set(_checked(value, "priority"))
    try:
        yield
    finally:
        _SCOPE.reset(token)


def _checked(value: object, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{source} must be an integer (higher goes sooner), got {value!r}")
    return value


def request_priority(extensions: Mapping[str, object]) -> int:
    """The request's priority from its extensions, else the enclosing
    ``priority_scope``'s; 0 when neither."""
    value = extensions.get(PRIORITY_EXTENSION)
    if value is None:
        scoped = _SCOPE.get()
        return 0 if scoped is None else scoped
    return _checked(value, f"request extension {PRIORITY_EXTENSION!r}")


@dataclass(frozen=True, slots=True)
class PriorityReserve:
    """A share of the quota only requests at or above ``priority`` may use.

    With ``PriorityReserve(share=0.25, priority=10)`` and ``rate="20/second"``,
    requests below priority 10 go only while at least 5 slots of the second stay
    free after them, so interactive traffic finds room at once even while a batch
    saturates the bucket. The share is of the configured rate's smallest limit
    (a learned quota has no reserve).

    Raises:
        ConfigurationError: ``share`` outside (0, 1) or ``priority`` not an integer.
    """

    share: float
    priority: int

    def __post_init__(self) -> None:
        share: object = self.share
        if not is_finite_number(share) or not 0 < share < 1:
            raise ConfigurationError(
                f"PriorityReserve share must be a fraction between 0 and 1, got {share!r}"
            )
        level: object = self.priority
        if isinstance(level, bool) or not isinstance(level, int):
            raise ConfigurationError(
                f"PriorityReserve priority must be an integer, got {self.priority!r}"
            )

    def held_back(self, priority: int, limit: float, cost: float) -> float:
        """The units a request of ``priority`` must leave free beside its ``cost``."""
        if priority >= self.priority:
            return 0.0
        return max(0.0, min(self.share * limit, limit - cost))


def check_promote_after(value: object) -> float | None:
    """The ``promote_after`` option: seconds, or ``None`` for strict priorities."""
    if value is None:
        return None
    if not is_finite_number(value) or value <= 0:
        raise ConfigurationError(
            f"promote_after must be a positive number of seconds or None, got {value!r}"
        )
    return float(value)


def check_reserve(value: object) -> PriorityReserve | None:
    if value is not None and not isinstance(value, PriorityReserve):
        raise ConfigurationError(
            "priority_reserve must be a PriorityReserve(share=..., priority=...) or None, "
            f"got {value!r}"
        )
    return value


def check_tenant_weights(value: object) -> dict[Hashable, float]:
    """The ``tenant_weights`` option: each tenant's weight (a positive number; 1 for a
    tenant not named)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"tenant_weights must map tenants to weights, e.g. {{'acme': 2}}, got {value!r}"
        )
    for tenant, weight in value.items():
        if not is_finite_number(weight) or weight <= 0:
            raise ConfigurationError(
                f"tenant_weights[{tenant!r}] must be a positive number, got {weight!r}"
            )
    return {tenant: float(weight) for tenant, weight in value.items()}
