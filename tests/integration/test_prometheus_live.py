"""A real Prometheus server (Debian's package) scrapes a running client's metrics
endpoint on 127.0.0.1, loads the shipped alert rules, and the test reads the
client's series back through Prometheus's HTTP API."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import httpx
import prometheus_client
import pytest

from ratelimited_client import (
    OAuth2ClientCredentials,
    PrometheusMetrics,
    Rate,
    RateLimitedClient,
    RetryPolicy,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ratelimited_client.testing.pytest_plugin import MockAPIServerFactory

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str) -> list[dict[str, object]]:
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5).json()
        assert answer["status"] == "success", answer
        result: list[dict[str, object]] = answer["data"]["result"]
        return result


@pytest.fixture
def metrics_endpoint() -> Iterator[tuple[PrometheusMetrics, int]]:
    metrics = PrometheusMetrics()
    port = free_port()
    server, thread = prometheus_client.start_http_server(
        port, addr="127.0.0.1", registry=metrics.registry
    )
    try:
        yield metrics, port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def prometheus(
    tmp_path: Path, metrics_endpoint: tuple[PrometheusMetrics, int]
) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is missing: `python3 dev.py test` installs Debian's prometheus")
    _, target = metrics_endpoint
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  evaluation_interval: 1s\n"
        f"rule_files: ['{ALERTS}']\n"
        "scrape_configs:\n"
        "  - job_name: client\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{target}']\n"
    )
    port = free_port()
    log = tmp_path / "prometheus.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"prometheus did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        yield Prometheus(url)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


async def test_prometheus_scrapes_the_client_and_serves_its_series(
    mock_api_server: MockAPIServerFactory,
    metrics_endpoint: tuple[PrometheusMetrics, int],
    prometheus: Prometheus,
) -> None:
    metrics, _ = metrics_endpoint
    server = mock_api_server(limit=10, window=1.0, dialect="ietf")
    async with RateLimitedClient(
        base_url=server.url, rate=Rate(10, 1.0), metrics=metrics
    ) as client:
        async with anyio.create_task_group() as tg:
            for i in range(25):
                tg.start_soon(client.get, f"/items/{i}")
    # Wait (bounded) for a scrape after the run to reach Prometheus.
    expr = 'sum(ratelimited_client_requests_total{job="client",status_class="2xx"})'
    seen: list[dict[str, object]] = []
    with anyio.fail_after(30):
        while True:
            seen = await anyio.to_thread.run_sync(prometheus.query, expr)
            if seen and seen[0]["value"][1] == "25":  # type: ignore[index]
                break
            await anyio.sleep(0.25)
    assert server.stats().received == 25
    waits = await anyio.to_thread.run_sync(
        prometheus.query, 'ratelimited_client_throttle_wait_seconds_count{job="client"}'
    )
    assert [w["value"][1] for w in waits] == ["25"]  # type: ignore[index]
    limit = await anyio.to_thread.run_sync(
        prometheus.query, 'ratelimited_client_quota_limit{job="client"}'
    )
    assert [q["value"][1] for q in limit] == ["10"]  # type: ignore[index]
    # The shipped rules loaded and evaluate cleanly against the real series.
    rules = await anyio.to_thread.run_sync(
        lambda: httpx.get(f"{prometheus.url}/api/v1/rules", timeout=5).json()
    )
    loaded = [rule for group in rules["data"]["groups"] for rule in group["rules"]]
    assert len(loaded) == 5
    assert {rule["health"] for rule in loaded} <= {"ok", "unknown"}


DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "ratelimited_client.json"
#: What Grafana puts in place of its variables, for a query sent to Prometheus itself.
GRAFANA_VARIABLES = {"$bucket": ".*", "$__rate_interval": "30s", "$__range": "5m"}
#: Panels the workload below must fill (the others may be empty: no corrected burst,
#: no give-up, no exhausted budget).
MUST_SHOW = {
    "Sent per second, and the server's limit",
    "Quota left (server's word)",
    "Queue depth and in flight",
    "Wait in the throttle (p50, p95)",
    "Server pauses, by cause",
    "Rejections seen (429, 503)",
    "Retries and give-ups",
    "Retry budget left",
    "Token refreshes",
    "Request latency (p95)",
}


def exported_names(metrics: PrometheusMetrics) -> set[str]:
    """Every series name the library exports, with or without samples yet."""
    names: set[str] = set()
    for line in metrics.render().decode().splitlines():
        if line.startswith(("# HELP ", "# TYPE ")):
            name = line.split()[2]
            names.add(name)
            if line.startswith("# TYPE ") and line.split()[3] == "histogram":
                names.update(f"{name}_{part}" for part in ("bucket", "count", "sum"))
            if line.startswith("# TYPE ") and line.split()[3] == "counter":
                names.add(f"{name}_total")
        elif line and not line.startswith("#"):
            names.add(line.split("{")[0].split()[0])
    return names


async def test_every_dashboard_query_runs_against_the_real_series(
    mock_api_server: MockAPIServerFactory,
    metrics_endpoint: tuple[PrometheusMetrics, int],
    prometheus: Prometheus,
) -> None:
    """The shipped Grafana dashboard: every series it names is one the library
    exports; every panel's query (Grafana's variables filled in) runs on the real
    Prometheus without error; and after a run with a queue, 429s, pauses, retries
    and an OAuth token, each panel that run should fill returns data."""
    metrics, _ = metrics_endpoint
    dashboard = json.loads(DASHBOARD.read_text())
    targets = [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]
    named = {name for _, expr in targets for name in re.findall(r"ratelimited_client_\w+", expr)}
    assert named - exported_names(metrics) == set()

    # One server states its quota (ietf) and protects it with OAuth: the quota panels,
    # a token; the client's concurrency cap under the load: a queue. The other says
    # only 429 + Retry-After, and the client is told twice its rate: rejections,
    # pauses and retries.
    stating = mock_api_server(limit=5, window=1.0, dialect="ietf", oauth=True)
    silent = mock_api_server(limit=5, window=1.0, dialect="retry-after")
    auth = OAuth2ClientCredentials(
        f"{stating.url}/oauth/token", client_id="mock-client", client_secret="mock-secret"
    )
    async with (
        RateLimitedClient(
            base_url=stating.url, max_concurrency=4, metrics=metrics, auth=auth
        ) as stated,
        RateLimitedClient(
            base_url=silent.url,
            rate=Rate(10, 1.0),
            metrics=metrics,
            retry=RetryPolicy(attempts=6, backoff=0.05),
        ) as told_wrong,
        anyio.create_task_group() as tg,
    ):
        for i in range(20):
            tg.start_soon(stated.get, f"/items/{i}")
            tg.start_soon(told_wrong.get, f"/items/{i}")
    assert silent.stats().rejected > 0
    assert stating.stats().tokens_issued == 1

    async def query(expr: str) -> list[dict[str, object]]:
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        return await anyio.to_thread.run_sync(prometheus.query, expr)  # asserts success

    # Wait (bounded) for a scrape after the run.
    with anyio.fail_after(30):
        while True:
            if await query('ratelimited_client_throttled_responses_total{job="client"}'):
                break
            await anyio.sleep(0.25)
    await anyio.sleep(2.5)  # one more scrape: two samples for every rate()
    filled = set()
    for title, expr in targets:
        if await query(expr):
            filled.add(title)
    assert MUST_SHOW - filled == set()
    buckets = await anyio.to_thread.run_sync(
        lambda: httpx.get(
            f"{prometheus.url}/api/v1/label/bucket/values",
            params={"match[]": "ratelimited_client_requests_total"},
            timeout=5,
        ).json()
    )
    assert sorted(buckets["data"]) == sorted([stating.url, silent.url])  # the variable
