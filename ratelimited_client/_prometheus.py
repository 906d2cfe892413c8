"""``PrometheusMetrics``: the hook protocol as Prometheus metrics (prometheus-client).

Counters and histograms are updated as events arrive; the gauges that describe
*now* (in flight, queued, retry budget, pauses, quotas) are computed when
Prometheus scrapes, from the attached clients' live statistics, so they can
never drift from the truth however requests end (cancelled ones included).
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import TYPE_CHECKING, Final

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ._errors import ConfigurationError
from ._hooks import Hooks

if TYPE_CHECKING:
    from collections.abc import Iterator

    from prometheus_client.metrics_core import Metric

    from ._hooks import (
        Paused,
        QuotaObserved,
        RequestCompleted,
        StatisticsSource,
        Throttled,
        TokenEvent,
        UnitsSettled,
    )
    from ._retry import RetryEvent

__all__ = ["OVERFLOW_LABEL", "PrometheusMetrics"]

#: The label value that stands for every value past ``max_label_values``.
OVERFLOW_LABEL: Final = "__other__"

# Seconds in the throttle: from the fast path (well under 1 ms) to the policy's cap.
_WAIT_BUCKETS: Final = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)
_DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _status_class(status: int | None) -> str:
    return "error" if status is None else f"{status // 100}xx"


class _Labels:
    """Private. Caps the distinct values of each label: past the cap, ``__other__``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def __call__(self, label: str, value: str | None) -> str:
        text = "" if value is None else value
        seen = self._seen.get(label)
        if seen is not None and text in seen:
            return text
        with self._lock:
            seen = self._seen.setdefault(label, set())
            if text in seen:
                return text
            if len(seen) >= self.limit:
                return OVERFLOW_LABEL
            seen.add(text)
            return text


class _Quota:
    __slots__ = ("limit", "remaining", "reset_wall")

    def __init__(self, limit: float | None, remaining: float | None, reset_wall: float | None):
        self.limit = limit
        self.remaining = remaining
        self.reset_wall = reset_wall


class _Instruments(Collector):
    """Private. Every metric of one namespace on one registry, shared by all the
    ``PrometheusMetrics`` built on that pair (so a second one never collides)."""

    def __init__(self, registry: CollectorRegistry, namespace: str, max_label_values: int):
        ns = namespace
        self.namespace = ns
        self.labels = _Labels(max_label_values)
        self.sources: weakref.WeakSet[StatisticsSource] = weakref.WeakSet()
        self.quotas: dict[tuple[str, str], _Quota] = {}
        self.requests = Counter(
            f"{ns}_requests",
            "HTTP attempts that ended (each retry counts), by status class.",
            ["method", "status_class", "bucket", "route"],
            registry=registry,
        )
        self.duration = Histogram(
            f"{ns}_request_duration_seconds",
            "Seconds from sending an attempt to its response headers (or failure).",
            ["method", "bucket", "route"],
            buckets=_DURATION_BUCKETS,
            registry=registry,
        )
        self.throttled_responses = Counter(
            f"{ns}_throttled_responses",
            "Responses the server marked as rate-limit rejections (429, 503 + Retry-After).",
            ["bucket", "status"],
            registry=registry,
        )
        self.retries = Counter(
            f"{ns}_retries",
            "Retries scheduled, by reason.",
            ["bucket", "reason"],
            registry=registry,
        )
        self.gave_up = Counter(
            f"{ns}_gave_up",
            "Calls that stopped retrying, by reason.",
            ["bucket", "reason"],
            registry=registry,
        )
        self.ignored_waits = Counter(
            f"{ns}_ignored_retry_after",
            "Successes that carried Retry-After (or its kin), ignored: a wait is a "
            "directive on 429, 503 and 3xx only.",
            ["bucket"],
            registry=registry,
        )
        self.budget_exhausted = Counter(
            f"{ns}_retry_budget_exhausted",
            "Retries refused because the retry budget was spent.",
            ["bucket"],
            registry=registry,
        )
        self.wait = Histogram(
            f"{ns}_throttle_wait_seconds",
            "Seconds an attempt waited in the throttle before it was sent.",
            ["bucket"],
            buckets=_WAIT_BUCKETS,
            registry=registry,
        )
        self.pauses = Counter(
            f"{ns}_server_pauses",
            "Pauses the server imposed on a bucket, by what said so.",
            ["bucket", "source"],
            registry=registry,
        )
        self.pause_seconds = Counter(
            f"{ns}_server_pause_seconds",
            "Seconds of pause the server imposed on a bucket.",
            ["bucket"],
            registry=registry,
        )
        self.priority_wait = Histogram(
            f"{ns}_priority_wait_seconds",
            "Seconds an attempt waited in the throttle, by bucket and priority (its "
            "place in the queue).",
            ["bucket", "priority"],
            buckets=_WAIT_BUCKETS,
            registry=registry,
        )
        self.admitted_by_priority = Counter(
            f"{ns}_admitted_by_priority",
            "Attempts the throttle admitted, by bucket and priority.",
            ["bucket", "priority"],
            registry=registry,
        )
        self.admitted_by_tenant = Counter(
            f"{ns}_admitted_by_tenant",
            "Attempts the throttle admitted, by bucket and tenant (with tenants only).",
            ["bucket", "tenant"],
            registry=registry,
        )
        self.tenant_wait = Histogram(
            f"{ns}_tenant_wait_seconds",
            "Seconds an attempt waited in the throttle, by bucket and tenant (with tenants only).",
            ["bucket", "tenant"],
            buckets=_WAIT_BUCKETS,
            registry=registry,
        )
        self.units_reserved = Counter(
            f"{ns}_units_reserved",
            "Units of other quotas (a model API's tokens) reserved at their estimates "
            "before requests went, by bucket and unit.",
            ["bucket", "unit"],
            registry=registry,
        )
        self.units_settled = Counter(
            f"{ns}_units_settled",
            "What those reservations settled to: the usage the answers reported (compare "
            "with units_reserved to see how far the estimates are off).",
            ["bucket", "unit"],
            registry=registry,
        )
        self.tokens = Counter(
            f"{ns}_token_refreshes",
            "OAuth token requests, by grant and outcome (success, failure).",
            ["grant", "outcome"],
            registry=registry,
        )
        registry.register(self)

    # -- the scrape-time gauges --------------------------------------------------

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        return iter(self._fill(self._families()))

    def _families(self) -> list[GaugeMetricFamily]:
        ns = self.namespace
        return [
            GaugeMetricFamily(
                f"{ns}_in_flight_requests", "Requests admitted whose response is not closed yet."
            ),
            GaugeMetricFamily(
                f"{ns}_queued_requests", "Requests waiting in the throttle.", labels=["bucket"]
            ),
            GaugeMetricFamily(
                f"{ns}_retry_budget_remaining", "Retries the retry budget allows right now."
            ),
            GaugeMetricFamily(
                f"{ns}_server_pause_remaining_seconds",
                "Seconds left on the server's pause of a bucket (0 if none).",
                labels=["bucket"],
            ),
            GaugeMetricFamily(
                f"{ns}_quota_remaining",
                "Units left in the server's quota, from its headers (the limit once reset).",
                labels=["bucket", "quota"],
            ),
            GaugeMetricFamily(
                f"{ns}_quota_limit",
                "Units per window in the server's quota, from its headers.",
                labels=["bucket", "quota"],
            ),
            GaugeMetricFamily(
                f"{ns}_queued_requests_by_priority",
                "Requests waiting in the throttle, by bucket and priority.",
                labels=["bucket", "priority"],
            ),
            GaugeMetricFamily(
                f"{ns}_queued_requests_by_tenant",
                "Requests waiting in the throttle, by bucket and tenant.",
                labels=["bucket", "tenant"],
            ),
            GaugeMetricFamily(
                f"{ns}_reserve_units",
                "Units of a bucket's quota kept for high priorities (priority_reserve).",
                labels=["bucket"],
            ),
            GaugeMetricFamily(
                f"{ns}_reserve_in_use",
                "Units of a bucket's priority reserve taken right now.",
                labels=["bucket"],
            ),
            GaugeMetricFamily(
                f"{ns}_unit_headroom",
                "Units of another quota (tokens) a bucket may still spend in its window now.",
                labels=["bucket", "unit"],
            ),
            GaugeMetricFamily(
                f"{ns}_unit_limit",
                "Units of another quota (tokens) per window, configured or learned.",
                labels=["bucket", "unit"],
            ),
            GaugeMetricFamily(
                f"{ns}_corrected_burst",
                "The burst a bucket adopted after the server rejected the configured one "
                "(the configured rate is wrong in shape; absent where it is not).",
                labels=["bucket"],
            ),
        ]

    def _fill(self, families: list[GaugeMetricFamily]) -> list[GaugeMetricFamily]:
        (
            in_flight,
            queued,
            budget,
            paused,
            remaining,
            limit,
            by_priority,
            by_tenant,
            reserve_units,
            reserve_used,
            headroom,
            unit_limit,
            corrected,
        ) = families
        flying = 0.0
        budget_left = 0.0
        waiting: dict[str, float] = {}
        pause: dict[str, float] = {}
        bursts: dict[str, float] = {}
        room: dict[tuple[str, str], float] = {}
        ranks: dict[tuple[str, str], float] = {}
        tenants: dict[tuple[str, str], float] = {}
        kept: dict[str, float] = {}
        taken: dict[str, float] = {}
        limits: dict[tuple[str, str], float] = {}
        for source in list(self.sources):
            stats = source.statistics()
            flying += stats.in_flight
            budget_left += stats.retry_budget_left or 0.0
            for bucket in stats.buckets.values():
                name = self.labels("bucket", bucket.key)
                waiting[name] = waiting.get(name, 0.0) + bucket.waiting
                pause[name] = max(pause.get(name, 0.0), bucket.paused_for)
                if bucket.corrected is not None and bucket.corrected.burst is not None:
                    burst = float(bucket.corrected.burst)
                    bursts[name] = min(bursts.get(name, burst), burst)
                if bucket.reserve is not None:
                    kept[name] = kept.get(name, 0.0) + bucket.reserve
                    taken[name] = taken.get(name, 0.0) + bucket.reserve_in_use
                for rank, count in bucket.waiting_by_priority.items():
                    key = (name, self.labels("priority", str(rank)))
                    ranks[key] = ranks.get(key, 0.0) + count
                for tenant, count in bucket.waiting_by_tenant.items():
                    key = (name, self.labels("tenant", tenant))
                    tenants[key] = tenants.get(key, 0.0) + count
                for unit in bucket.units.values():
                    if unit.limit is None or unit.headroom is None:
                        continue
                    key = (name, self.labels("unit", unit.unit))
                    room[key] = min(room.get(key, unit.headroom), unit.headroom)
                    limits[key] = unit.limit
        in_flight.add_metric([], flying)
        budget.add_metric([], budget_left)
        for name, value in sorted(waiting.items()):
            queued.add_metric([name], value)
        for name, value in sorted(pause.items()):
            paused.add_metric([name], value)
        for name, value in sorted(bursts.items()):
            corrected.add_metric([name], value)
        for (name, rank_label), value in sorted(ranks.items()):
            by_priority.add_metric([name, rank_label], value)
        for (name, tenant_label), value in sorted(tenants.items()):
            by_tenant.add_metric([name, tenant_label], value)
        for name, value in sorted(kept.items()):
            reserve_units.add_metric([name], value)
            reserve_used.add_metric([name], taken[name])
        for (name, unit_label), value in sorted(room.items()):
            headroom.add_metric([name, unit_label], value)
            unit_limit.add_metric([name, unit_label], limits[(name, unit_label)])
        now = time.time()
        for (bucket_label, quota_label), quota in sorted(self.quotas.items()):
            left = quota.remaining
            if quota.reset_wall is not None and now >= quota.reset_wall:
                left = quota.limit  # the window turned over: the server's next word says more
            if left is not None:
                remaining.add_metric([bucket_label, quota_label], left)
            if quota.limit is not None:
                limit.add_metric([bucket_label, quota_label], quota.limit)
        return families


# One _Instruments per (registry, namespace); registries are kept weakly.
_SHARED: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, _Instruments]] = (
    weakref.WeakKeyDictionary()
)
_SHARED_LOCK: Final = threading.Lock()


def _instruments(registry: CollectorRegistry, namespace: str, limit: int) -> _Instruments:
    with _SHARED_LOCK:
        by_namespace = _SHARED.setdefault(registry, {})
        found = by_namespace.get(namespace)
        if found is None:
            found = by_namespace[namespace] = _Instruments(registry, namespace, limit)
        return found


class PrometheusMetrics(Hooks):
    """Prometheus metrics for every decision a client takes.

    Pass it as ``metrics=`` to :class:`RateLimitedClient` or
    :class:`RateLimitedTransport`; one object may serve several clients (their
    figures add up). Expose ``metrics.registry`` the usual ways::

        metrics = PrometheusMetrics()
        prometheus_client.start_http_server(9464, addr="127.0.0.1", registry=metrics.registry)
        # or in an ASGI app:
        app.mount("/metrics", prometheus_client.make_asgi_app(metrics.registry))

    Args:
        registry: the ``CollectorRegistry`` to register on. Default: a new,
            private one (two clients, or two tests, never collide). Pass
            ``prometheus_client.REGISTRY`` to use the global one; building a
            second ``PrometheusMetrics`` on the same registry and namespace
            shares the first one's metrics instead of raising "Duplicated
            timeseries".
        namespace: the prefix of every metric name.
        max_label_values: the most distinct values kept per label (bucket,
            route, reason, quota ...); later ones are reported as
            ``"__other__"``, so a key function that makes a bucket per user
            cannot blow up the time-series count.

    Labels never carry URLs, query strings or credentials: ``bucket`` is the
    bucket key (by default ``scheme://host:port``), ``route`` is what you put in
    ``extensions["ratelimit_route"]`` (a template such as ``"/documents/{id}"``),
    empty otherwise.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        namespace: str = "ratelimited_client",
        max_label_values: int = 100,
    ) -> None:
        if registry is not None and not isinstance(registry, CollectorRegistry):
            raise ConfigurationError(
                f"registry must be a prometheus_client.CollectorRegistry, got {registry!r}"
            )
        name: object = namespace
        if (
            not isinstance(name, str)
            or not namespace
            or not namespace.replace("_", "a").isalnum()
            or not namespace.isascii()
            or namespace[0].isdigit()
        ):
            raise ConfigurationError(
                f"namespace must be a Prometheus name ([a-zA-Z_][a-zA-Z0-9_]*), got {namespace!r}"
            )
        limit: object = max_label_values
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError(
                f"max_label_values must be a positive integer, got {max_label_values!r}"
            )
        self.registry = registry if registry is not None else CollectorRegistry()
        self.namespace = namespace
        self._m = _instruments(self.registry, namespace, max_label_values)

    def render(self) -> bytes:
        """The registry in Prometheus's text exposition format."""
        return generate_latest(self.registry)

    def __repr__(self) -> str:
        return f"<PrometheusMetrics namespace={self.namespace!r}>"

    # -- the hook protocol ---------------------------------------------------------

    def on_attach(self, source: StatisticsSource) -> None:
        self._m.sources.add(source)

    def on_request_completed(self, event: RequestCompleted) -> None:
        m = self._m
        bucket = m.labels("bucket", event.bucket)
        route = m.labels("route", event.route)
        method = m.labels("method", event.method)
        m.requests.labels(method, _status_class(event.status), bucket, route).inc()
        m.duration.labels(method, bucket, route).observe(event.duration)
        if event.throttled:
            m.throttled_responses.labels(bucket, str(event.status)).inc()
        if event.ignored_wait:
            m.ignored_waits.labels(bucket).inc()

    def on_throttled(self, event: Throttled) -> None:
        m = self._m
        bucket = m.labels("bucket", event.bucket)
        m.wait.labels(bucket).observe(event.waited)
        rank = m.labels("priority", str(event.priority))
        m.priority_wait.labels(bucket, rank).observe(event.waited)
        m.admitted_by_priority.labels(bucket, rank).inc()
        if event.tenant is not None:
            tenant = m.labels("tenant", event.tenant)
            m.admitted_by_tenant.labels(bucket, tenant).inc()
            m.tenant_wait.labels(bucket, tenant).observe(event.waited)

    def on_paused(self, event: Paused) -> None:
        m = self._m
        bucket = m.labels("bucket", event.bucket)
        m.pauses.labels(bucket, m.labels("source", event.source)).inc()
        m.pause_seconds.labels(bucket).inc(max(0.0, event.delay))

    def on_quota(self, event: QuotaObserved) -> None:
        m = self._m
        key = (m.labels("bucket", event.bucket), m.labels("quota", event.name))
        reset_wall = None if event.reset_in is None else time.time() + event.reset_in
        m.quotas[key] = _Quota(event.limit, event.remaining, reset_wall)

    def on_retry(self, event: RetryEvent) -> None:
        m = self._m
        m.retries.labels(m.labels("bucket", event.bucket), m.labels("reason", event.reason)).inc()

    def on_give_up(self, event: RetryEvent) -> None:
        m = self._m
        m.gave_up.labels(m.labels("bucket", event.bucket), m.labels("reason", event.reason)).inc()

    def on_budget_exhausted(self, event: RetryEvent) -> None:
        m = self._m
        m.budget_exhausted.labels(m.labels("bucket", event.bucket)).inc()

    def on_token(self, event: TokenEvent) -> None:
        self._m.tokens.labels(
            self._m.labels("grant", event.grant), "success" if event.ok else "failure"
        ).inc()

    def on_units_settled(self, event: UnitsSettled) -> None:
        m = self._m
        labels = (m.labels("bucket", event.bucket), m.labels("unit", event.unit))
        m.units_reserved.labels(*labels).inc(event.reserved)
        m.units_settled.labels(*labels).inc(event.settled)
