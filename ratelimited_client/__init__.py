"""ratelimited_client: an async HTTP client for rate-limited APIs.

Every request passes a throttle that knows the quota: never more than the
limit in any window, bursts used, requests served in order.
"""

from __future__ import annotations

import logging as _logging

from ._backends import RedisBackend as RedisBackend
from ._call_options import CALL_EXTENSION as CALL_EXTENSION
from ._call_options import CallOptions as CallOptions
from ._call_options import CallOptionsView as CallOptionsView
from ._call_options import call_options as call_options
from ._errors import BackendUnavailableError as BackendUnavailableError
from ._errors import ConfigurationError as ConfigurationError
from ._errors import DeadlineExceededError as DeadlineExceededError
from ._errors import QueueFullError as QueueFullError
from ._errors import RateLimitedClientError as RateLimitedClientError
from ._errors import RetryAfterTooLongError as RetryAfterTooLongError
from ._errors import TokenRefreshError as TokenRefreshError
from ._errors import UnitsTooLargeError as UnitsTooLargeError
from ._hooks import ROUTE_EXTENSION as ROUTE_EXTENSION
from ._hooks import Hooks as Hooks
from ._hooks import Paused as Paused
from ._hooks import QuotaObserved as QuotaObserved
from ._hooks import RequestCompleted as RequestCompleted
from ._hooks import RequestSent as RequestSent
from ._hooks import StatisticsSource as StatisticsSource
from ._hooks import Throttled as Throttled
from ._hooks import TokenEvent as TokenEvent
from ._hooks import UnitsSettled as UnitsSettled
from ._http import origin_key as origin_key
from ._httpx import OAuth2ClientCredentials as OAuth2ClientCredentials
from ._httpx import OAuth2RefreshToken as OAuth2RefreshToken
from ._httpx import RateLimitedClient as RateLimitedClient
from ._httpx import RateLimitedTransport as RateLimitedTransport
from ._httpx import SyncRateLimitedClient as SyncRateLimitedClient
from ._httpx import SyncRateLimitedTransport as SyncRateLimitedTransport
from ._metering import UNITS_EXTENSION as UNITS_EXTENSION
from ._metering import ModelTokens as ModelTokens
from ._metering import UnitMeter as UnitMeter
from ._oauth import OAuth2Token as OAuth2Token
from ._operations import Operation as Operation
from ._operations import OperationPolicy as OperationPolicy
from ._options import COST_EXTENSION as COST_EXTENSION
from ._options import KEY_EXTENSION as KEY_EXTENSION
from ._options import ThrottleOptions as ThrottleOptions
from ._priority import PRIORITY_EXTENSION as PRIORITY_EXTENSION
from ._priority import TENANT_EXTENSION as TENANT_EXTENSION
from ._priority import PriorityReserve as PriorityReserve
from ._priority import priority as priority
from ._priority import priority_scope as priority_scope
from ._prometheus import PrometheusMetrics as PrometheusMetrics
from ._rate import Rate as Rate
from ._rate import SlidingWindow as SlidingWindow
from ._rate import TokenBucket as TokenBucket
from ._retry import IDEMPOTENT_METHODS as IDEMPOTENT_METHODS
from ._retry import RetryEvent as RetryEvent
from ._retry import RetryPolicy as RetryPolicy
from ._signals import DEFAULT_DIALECTS as DEFAULT_DIALECTS
from ._signals import Dialect as Dialect
from ._signals import QuotaState as QuotaState
from ._signals import RateLimitSignal as RateLimitSignal
from ._signals import RetryDirective as RetryDirective
from ._signals import SignalContext as SignalContext
from ._signals import parse_signal as parse_signal
from ._throttle import BucketStatistics as BucketStatistics
from ._throttle import ThrottleStatistics as ThrottleStatistics
from ._throttle import UnitStatistics as UnitStatistics
from ._types import KeyFunc as KeyFunc
from ._types import RateTypes as RateTypes

__all__ = [
    "CALL_EXTENSION",
    "COST_EXTENSION",
    "DEFAULT_DIALECTS",
    "IDEMPOTENT_METHODS",
    "KEY_EXTENSION",
    "PRIORITY_EXTENSION",
    "ROUTE_EXTENSION",
    "TENANT_EXTENSION",
    "UNITS_EXTENSION",
    "BackendUnavailableError",
    "BucketStatistics",
    "CallOptions",
    "CallOptionsView",
    "ConfigurationError",
    "DeadlineExceededError",
    "Dialect",
    "Hooks",
    "KeyFunc",
    "ModelTokens",
    "OAuth2ClientCredentials",
    "OAuth2RefreshToken",
    "OAuth2Token",
    "Operation",
    "OperationPolicy",
    "Paused",
    "PriorityReserve",
    "PrometheusMetrics",
    "QueueFullError",
    "QuotaObserved",
    "QuotaState",
    "Rate",
    "RateLimitSignal",
    "RateLimitedClient",
    "RateLimitedClientError",
    "RateLimitedTransport",
    "RateTypes",
    "RedisBackend",
    "RequestCompleted",
    "RequestSent",
    "RetryAfterTooLongError",
    "RetryDirective",
    "RetryEvent",
    "RetryPolicy",
    "SignalContext",
    "SlidingWindow",
    "StatisticsSource",
    "SyncRateLimitedClient",
    "SyncRateLimitedTransport",
    "ThrottleOptions",
    "ThrottleStatistics",
    "Throttled",
    "TokenBucket",
    "TokenEvent",
    "TokenRefreshError",
    "UnitMeter",
    "UnitStatistics",
    "UnitsSettled",
    "UnitsTooLargeError",
    "__version__",
    "call_options",
    "origin_key",
    "parse_signal",
    "priority",
    "priority_scope",
]


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import version

        return version("ratelimited_client")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Public classes report the public module, so reprs and docs say ratelimited_client.Rate.
for _name in __all__:
    _obj = globals().get(_name)
    if isinstance(_obj, type) and _obj.__module__.startswith(f"{__name__}._"):
        _obj.__module__ = __name__
del _name, _obj

# A library logs, the application decides where to: without a handler of its own
# configured, nothing of ours reaches stderr (Python's "last resort" would print
# WARNINGs there).
_logging.getLogger(__name__).addHandler(_logging.NullHandler())
