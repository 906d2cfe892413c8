"""The demo: a few hundred concurrent requests against a strict 10-per-second API.

Starts the bundled mock upstream on 127.0.0.1 (a strict sliding window that
answers 429 past its limit), fires the requests first through a plain
``httpx.AsyncClient`` (what a quickly written client does), then through
``RateLimitedClient``, and prints what the server saw. While it runs, the
client's Prometheus metrics are served on http://127.0.0.1:9464/metrics (or a
free port if that one is taken); the key figures are printed at the end.

    python3 dev.py demo [--requests 200] [--limit 10] [--concurrency 100] [--metrics-port 9464]
"""

from __future__ import annotations

import argparse
import errno
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import httpx
import prometheus_client
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ratelimited_client import PrometheusMetrics, Rate, RateLimitedClient
from ratelimited_client.testing import MockAPIConfig, MockAPIServer

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer


@dataclass
class Outcome:
    label: str
    ok: int = 0
    rejected: int = 0
    elapsed: float = 0.0
    server_max_window: int = 0


async def fire(
    client: httpx.AsyncClient, total: int, concurrency: int, progress: Progress, label: str
) -> Outcome:
    outcome = Outcome(label)
    task = progress.add_task(label, total=total)
    todo = iter(range(total))

    async def worker() -> None:
        for i in todo:
            response = await client.get(f"/items/{i}")
            if response.status_code == 429:
                outcome.rejected += 1
            elif response.is_success:
                outcome.ok += 1
            progress.advance(task)

    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    outcome.elapsed = time.monotonic() - started
    return outcome


def serve_metrics(metrics: PrometheusMetrics, port: int) -> tuple[WSGIServer, int]:
    """Serve ``/metrics`` on 127.0.0.1:``port``, or on a free port if it is taken."""
    try:
        server, _ = prometheus_client.start_http_server(
            port, addr="127.0.0.1", registry=metrics.registry
        )
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        server, _ = prometheus_client.start_http_server(
            0, addr="127.0.0.1", registry=metrics.registry
        )
    return server, server.server_port


def key_figures(metrics: PrometheusMetrics) -> Table:
    """The figures an operator looks at first, read back from the registry."""

    def total(name: str, **match: str) -> float:
        found = 0.0
        for family in metrics.registry.collect():
            for sample in family.samples:
                if sample.name == f"ratelimited_client_{name}" and all(
                    sample.labels.get(k) == v for k, v in match.items()
                ):
                    found += sample.value
        return found

    waits = total("throttle_wait_seconds_count")
    table = Table(title="RateLimitedClient's metrics (Prometheus, ratelimited_client_*)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row(
        "requests_total{status_class=2xx}", f"{total('requests_total', status_class='2xx'):g}"
    )
    table.add_row("throttled_responses_total (429s)", f"{total('throttled_responses_total'):g}")
    table.add_row("retries_total", f"{total('retries_total'):g}")
    table.add_row("server_pauses_total", f"{total('server_pauses_total'):g}")
    mean = total("throttle_wait_seconds_sum") / waits if waits else 0.0
    table.add_row("throttle wait, mean", f"{mean:.2f} s over {waits:g} requests")
    table.add_row(
        "throttle wait <= 0.1 s (fast path)",
        f"{total('throttle_wait_seconds_bucket', le='0.1'):g}",
    )
    table.add_row("retry_budget_remaining", f"{total('retry_budget_remaining'):g}")
    return table


async def main(args: argparse.Namespace) -> int:
    console = Console()
    rate = Rate(args.limit, 1.0)
    least = (math.ceil(args.requests / rate.limit) - 1) * rate.period
    config = MockAPIConfig(limit=args.limit, window=1.0, algorithm="sliding")
    metrics = PrometheusMetrics()
    metrics_server, metrics_port = serve_metrics(metrics, args.metrics_port)
    console.print(f"Metrics: [bold]http://127.0.0.1:{metrics_port}/metrics[/] while the demo runs.")
    with MockAPIServer(config) as server:
        console.print(
            f"Mock API at [bold]{server.url}[/]: strict sliding window, "
            f"{args.limit} requests per second, 429 + Retry-After past it.\n"
            f"Sending {args.requests} requests from {args.concurrency} concurrent tasks.\n"
        )
        columns = (
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        outcomes = []
        with Progress(*columns, console=console) as progress:
            async with httpx.AsyncClient(base_url=server.url) as plain:
                plain_outcome = await fire(
                    plain, args.requests, args.concurrency, progress, "httpx.AsyncClient"
                )
            plain_outcome.server_max_window = server.stats().max_received_in_window
            outcomes.append(plain_outcome)
            server.reset()
            await anyio.sleep(rate.period)  # let the server's window empty
            async with RateLimitedClient(
                base_url=server.url, rate=rate, latency_proof=args.latency_proof, metrics=metrics
            ) as client:
                ours = await fire(
                    client, args.requests, args.concurrency, progress, "RateLimitedClient"
                )
            stats = server.stats()
            ours.server_max_window = stats.max_received_in_window
            outcomes.append(ours)

    table = Table(title="What the server saw (max/1s: most requests in any 1 s / limit)")
    table.add_column("client")
    for name in ("200", "429", "max/1s", "elapsed", "rate"):
        table.add_column(name, justify="right")
    for o in outcomes:
        table.add_row(
            o.label,
            str(o.ok),
            str(o.rejected),
            f"{o.server_max_window}/{args.limit}",
            f"{o.elapsed:.2f} s",
            f"{o.ok / o.elapsed:.1f}/s" if o.elapsed else "-",
        )
    console.print(table)
    console.print(key_figures(metrics))
    metrics_server.shutdown()
    ratio = ours.elapsed / least if least else float("nan")
    console.print(
        f"RateLimitedClient: {ours.ok}/{args.requests} succeeded, {ours.rejected} × 429 "
        f"(expected 0); server max {ours.server_max_window} in any second "
        f"(limit {args.limit}); {ours.elapsed:.2f} s against the least possible "
        f"{least:.2f} s ({ratio:.3f}×)."
    )
    good = ours.rejected == 0 and ours.server_max_window <= args.limit
    console.print("[bold green]OK[/]" if good else "[bold red]quota exceeded[/]")
    return 0 if good else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=200, help="requests to send (200)")
    parser.add_argument("--limit", type=int, default=10, help="server limit per second (10)")
    parser.add_argument("--concurrency", type=int, default=100, help="concurrent tasks (100)")
    parser.add_argument(
        "--latency-proof", action="store_true", help="count slots until responses arrive"
    )
    parser.add_argument(
        "--metrics-port", type=int, default=9464, help="port of /metrics on 127.0.0.1 (9464)"
    )
    args = parser.parse_args(argv)
    for name in ("requests", "limit", "concurrency"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name} must be positive")
    return args


if __name__ == "__main__":
    raise SystemExit(anyio.run(main, parse_args()))
