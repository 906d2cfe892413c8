"""The hook protocol, PrometheusMetrics' bookkeeping and the logger, at unit level (respx)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import httpx
import prometheus_client
import pytest
import respx

from ratelimited_client import (
    ConfigurationError,
    Hooks,
    Paused,
    PrometheusMetrics,
    QuotaObserved,
    RateLimitedClient,
    RateLimitedTransport,
    RequestCompleted,
    RequestSent,
    RetryEvent,
    RetryPolicy,
    Throttled,
)
from ratelimited_client._hooks import redact_headers

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.anyio

API = "https://api.test"
BUCKET = "https://api.test:443"
FAST_RETRY = RetryPolicy(attempts=3, backoff=0.0, max_backoff=0.0)


class Recorder(Hooks):
    """Keeps every event, in order, as (method name, event)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def _keep(self, name: str, event: object) -> None:
        self.events.append((name, event))

    def on_request_sent(self, event: RequestSent) -> None:
        self._keep("sent", event)

    def on_request_completed(self, event: RequestCompleted) -> None:
        self._keep("completed", event)

    def on_throttled(self, event: Throttled) -> None:
        self._keep("throttled", event)

    def on_paused(self, event: Paused) -> None:
        self._keep("paused", event)

    def on_quota(self, event: QuotaObserved) -> None:
        self._keep("quota", event)

    def on_retry(self, event: RetryEvent) -> None:
        self._keep("retry", event)

    def on_give_up(self, event: RetryEvent) -> None:
        self._keep("give_up", event)

    def on_budget_exhausted(self, event: RetryEvent) -> None:
        self._keep("budget", event)

    def names(self) -> list[str]:
        return [name for name, _ in self.events]


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=API, assert_all_called=False) as router:
        yield router


async def test_events_of_a_retried_request_in_order(api: respx.MockRouter) -> None:
    """503 + Retry-After then 200: every step reported, with bucket, route and attempt."""
    api.get("/documents/7").mock(
        side_effect=[
            httpx.Response(503, headers={"Retry-After": "0"}),
            httpx.Response(
                200,
                headers={"X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "41"},
            ),
        ]
    )
    recorder = Recorder()
    async with RateLimitedClient(base_url=API, retry=FAST_RETRY, metrics=recorder) as client:
        response = await client.get(
            "/documents/7?api_key=hunter2", extensions={"ratelimit_route": "/documents/{id}"}
        )
    assert response.status_code == 200
    assert recorder.names() == [
        "throttled",
        "sent",
        "completed",
        "paused",
        "retry",
        "throttled",
        "sent",
        "completed",
        "quota",
    ]
    events = [event for _, event in recorder.events]
    sent = [e for e in events if isinstance(e, RequestSent)]
    assert [(e.method, e.path, e.bucket, e.route, e.attempt) for e in sent] == [
        ("GET", "/documents/7", BUCKET, "/documents/{id}", 1),
        ("GET", "/documents/7", BUCKET, "/documents/{id}", 2),
    ]
    done = [e for e in events if isinstance(e, RequestCompleted)]
    assert [(e.status, e.throttled, e.error) for e in done] == [
        (503, True, None),
        (200, False, None),
    ]
    retry = next(e for e in events if isinstance(e, RetryEvent))
    assert (retry.attempt, retry.reason, retry.status, retry.bucket, retry.route) == (
        1,
        "status 503",
        503,
        BUCKET,
        "/documents/{id}",
    )
    pause = next(e for e in events if isinstance(e, Paused))
    assert (pause.bucket, pause.delay, pause.source) == (BUCKET, 0.0, "retry-after")
    quota = next(e for e in events if isinstance(e, QuotaObserved))
    assert (quota.bucket, quota.limit, quota.remaining) == (BUCKET, 50.0, 41.0)
    # The query string (which may carry a key) reaches no event.
    assert "hunter2" not in repr(recorder.events)


async def test_give_up_and_budget_exhausted(api: respx.MockRouter) -> None:
    """A budget of one retry: the second call's retry is refused and reported."""
    api.get("/x").mock(return_value=httpx.Response(502))
    recorder = Recorder()
    policy = RetryPolicy(attempts=3, backoff=0.0, budget=0.0, budget_floor=0.1, budget_window=10)
    async with RateLimitedClient(base_url=API, retry=policy, metrics=recorder) as client:
        first = await client.get("/x")
        second = await client.get("/x")
    assert (first.status_code, second.status_code) == (502, 502)
    names = recorder.names()
    assert names.count("sent") == 3  # 2 + 1: one retry in the budget
    assert names.count("retry") == 1
    assert names.count("budget") == 2
    gave_up = [e for n, e in recorder.events if n == "give_up"]
    assert [e.reason for e in gave_up] == ["retry budget exhausted"] * 2  # type: ignore[attr-defined]


async def test_a_raising_hook_never_breaks_a_request_and_is_logged_once(
    api: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Hooks):
        def on_request_sent(self, event: RequestSent) -> None:
            raise RuntimeError("hook bug")

    api.get("/x").mock(return_value=httpx.Response(200))
    recorder = Recorder()
    with caplog.at_level(logging.WARNING, logger="ratelimited_client"):
        async with RateLimitedClient(base_url=API, metrics=[Broken(), recorder]) as client:
            statuses = [(await client.get("/x")).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    assert recorder.names().count("completed") == 3  # later hooks still run
    failures = [r for r in caplog.records if getattr(r, "event", None) == "hook_failed"]
    assert len(failures) == 1
    assert "Broken.on_request_sent" in failures[0].getMessage()


async def test_logging_is_quiet_at_info_and_tells_every_decision_at_debug(
    api: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    api.get("/x").mock(return_value=httpx.Response(200))
    with caplog.at_level(logging.INFO, logger="ratelimited_client"):
        async with RateLimitedClient(base_url=API) as client:
            for _ in range(5):
                await client.get("/x", headers={"Authorization": "Bearer tok-secret"})
    assert [r for r in caplog.records if r.name == "ratelimited_client"] == []
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="ratelimited_client"):
        async with RateLimitedClient(base_url=API) as client:
            await client.get("/x?token=tok-secret")
    events = [getattr(r, "event", None) for r in caplog.records if r.name == "ratelimited_client"]
    assert events == ["throttled", "request_sent", "request_completed"]
    record = caplog.records[-1]
    assert (record.method, record.path, record.status, record.bucket) == (  # type: ignore[attr-defined]
        "GET",
        "/x",
        200,
        BUCKET,
    )
    assert "tok-secret" not in caplog.text


async def test_debug_logging_tells_every_request_that_the_fast_path_admits(
    api: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    """A client whose requests are admitted at once, with no hook of the user's: turning
    DEBUG on mid-run makes the very next request tell its events, and turning it off
    silences the ones after (the fast path asks the logger's level every time)."""
    api.get("/x").mock(return_value=httpx.Response(200))
    async with RateLimitedClient(base_url=API, rate="1000/s", slow_start=False) as client:
        for _ in range(3):
            await client.get("/x")  # first contact over: admitted at once from here
        with caplog.at_level(logging.DEBUG, logger="ratelimited_client"):
            for _ in range(4):
                await client.get("/x")
        for _ in range(2):
            await client.get("/x")
    events = [getattr(r, "event", None) for r in caplog.records if r.name == "ratelimited_client"]
    assert events == ["throttled", "request_sent", "request_completed"] * 4


async def test_one_warning_per_pause(
    api: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    api.get("/x").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(200)]
    )
    with caplog.at_level(logging.WARNING, logger="ratelimited_client"):
        async with RateLimitedClient(base_url=API, retry=FAST_RETRY) as client:
            assert (await client.get("/x")).status_code == 200
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [getattr(r, "event", None) for r in warnings] == ["paused"]
    assert (warnings[0].bucket, warnings[0].source) == (BUCKET, "retry-after")  # type: ignore[attr-defined]


def test_redact_headers() -> None:
    headers = {"Authorization": "Bearer x", "X-Api-Key": "k", "Accept": "application/json"}
    assert redact_headers(headers) == {
        "Authorization": "[redacted]",
        "X-Api-Key": "[redacted]",
        "Accept": "application/json",
    }


# -- PrometheusMetrics --------------------------------------------------------------


def value(metrics: PrometheusMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_prometheus_counts_of_a_retried_request(api: respx.MockRouter) -> None:
    api.get("/x").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "0", "RateLimit-Limit": "10"}),
            httpx.Response(200, headers={"RateLimit-Limit": "10", "RateLimit-Remaining": "9"}),
        ]
    )
    metrics = PrometheusMetrics()
    async with RateLimitedClient(base_url=API, retry=FAST_RETRY, metrics=metrics) as client:
        await client.get("/x", extensions={"ratelimit_route": "/x"})
    ns = "ratelimited_client"
    labels = {"method": "GET", "bucket": BUCKET, "route": "/x"}
    assert value(metrics, f"{ns}_requests_total", status_class="4xx", **labels) == 1
    assert value(metrics, f"{ns}_requests_total", status_class="2xx", **labels) == 1
    assert value(metrics, f"{ns}_request_duration_seconds_count", **labels) == 2
    assert value(metrics, f"{ns}_throttled_responses_total", bucket=BUCKET, status="429") == 1
    assert value(metrics, f"{ns}_retries_total", bucket=BUCKET, reason="status 429") == 1
    assert value(metrics, f"{ns}_server_pauses_total", bucket=BUCKET, source="retry-after") == 1
    assert value(metrics, f"{ns}_throttle_wait_seconds_count", bucket=BUCKET) == 2
    assert value(metrics, f"{ns}_in_flight_requests") == 0
    assert value(metrics, f"{ns}_quota_limit", bucket=BUCKET, quota="default") == 10


async def test_label_values_are_capped(api: respx.MockRouter) -> None:
    """A key per tenant cannot blow up the series count: past the cap, ``__other__``."""
    api.get("/x").mock(return_value=httpx.Response(200))
    metrics = PrometheusMetrics(max_label_values=2)
    async with RateLimitedClient(base_url=API, metrics=metrics) as client:
        for tenant in ("a", "b", "c", "d"):
            await client.get("/x", extensions={"ratelimit_key": f"tenant-{tenant}"})
    name = "ratelimited_client_throttle_wait_seconds_count"
    assert value(metrics, name, bucket="tenant-a") == 1
    assert value(metrics, name, bucket="tenant-b") == 1
    assert value(metrics, name, bucket="__other__") == 2
    assert value(metrics, name, bucket="tenant-c") is None


def test_two_clients_never_collide() -> None:
    """Private registries by default; on one shared registry the metrics are shared."""
    first, second = PrometheusMetrics(), PrometheusMetrics()
    assert first.registry is not second.registry
    RateLimitedClient(metrics=first)
    RateLimitedClient(metrics=second)
    registry = prometheus_client.CollectorRegistry()
    a = PrometheusMetrics(registry)
    b = PrometheusMetrics(registry)  # would raise "Duplicated timeseries" if re-registered
    RateLimitedTransport(metrics=a)
    RateLimitedTransport(metrics=b)
    assert a._m is b._m
    text = a.render().decode()
    assert text.count("# TYPE ratelimited_client_requests_total counter") == 1
    other = PrometheusMetrics(registry, namespace="other_app")
    assert "other_app_requests_total" in other.render().decode()


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"registry": "global"}, "registry"),
        ({"namespace": "9lives"}, "namespace"),
        ({"namespace": "has-dash"}, "namespace"),
        ({"namespace": ""}, "namespace"),
        ({"max_label_values": 0}, "max_label_values"),
        ({"max_label_values": True}, "max_label_values"),
    ],
)
def test_prometheus_bad_options_name_the_option(kwargs: dict[str, object], option: str) -> None:
    with pytest.raises(ConfigurationError, match=option):
        PrometheusMetrics(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("metrics", ["prometheus", 3, [Hooks(), object()]])
def test_metrics_option_is_validated(metrics: object) -> None:
    with pytest.raises(ConfigurationError, match="metrics"):
        RateLimitedClient(metrics=metrics)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="metrics"):
        RateLimitedTransport(metrics=metrics)  # type: ignore[arg-type]
