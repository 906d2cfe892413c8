"""Load-test an upstream through ratelimited_client: Locust users share one client.

    locust -f locustfiles/locustfile.py --headless -H http://127.0.0.1:8000 \\
        --peak-users 300 --duration 20 --shape spike --client-rate 50/s

One ``SyncRateLimitedClient`` per Locust process (one quota, as a real service
has), shared by all its users; Locust runs users as gevent greenlets and the
sync client waits cooperatively there. Every HTTP *attempt* is its own Locust
sample (a retry shows as a second sample of the same name), and the time each
attempt waited in the throttle is reported apart, as request type
``THROTTLE`` named after the bucket, so "slow upstream" (the GET/POST
samples) is never confused with "we are throttling" (the THROTTLE samples).

At the end it reads the upstream's ``/__stats`` (the bundled mock upstream
serves it) and fails the run (exit code 1) if any 429 reached the clients,
if the upstream ever counted more than its limit in one window, or if its
penalty was tripped. ``--no-throttle`` turns client-side limiting off, to find
an upstream's real limit (or to show what happens without it).
"""

from __future__ import annotations

import json
import math
import random
import time
from typing import TYPE_CHECKING, Any

import httpx
from locust import LoadTestShape, User, constant, events, task

from ratelimited_client import (
    Hooks,
    RequestCompleted,
    RequestSent,
    RetryPolicy,
    SyncRateLimitedClient,
    Throttled,
)

if TYPE_CHECKING:
    from locust.argument_parser import LocustArgumentParser
    from locust.env import Environment

THROTTLE = "THROTTLE"


class LocustHooks(Hooks):
    """Feeds the client's events to Locust's request event."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.sent = 0

    def on_request_sent(self, event: RequestSent) -> None:
        self.sent += 1

    def on_request_completed(self, event: RequestCompleted) -> None:
        error: Exception | None = None
        if event.error is not None:
            error = ConnectionError(event.error)
        elif event.status is not None and event.status >= 400:
            error = RuntimeError(f"HTTP {event.status}")
        self.environment.events.request.fire(
            request_type=event.method,
            name=event.route or event.path,
            response_time=event.duration * 1000,
            response_length=0,
            exception=error,
            context={"attempt": event.attempt, "status": event.status},
        )

    def on_throttled(self, event: Throttled) -> None:
        self.environment.events.request.fire(
            request_type=THROTTLE,
            name=event.bucket,
            response_time=event.waited * 1000,
            response_length=0,
            exception=None,
            context={"queued": event.queued},
        )


class PlainClient:
    """``--no-throttle``: a bare ``httpx.Client`` (no limit, no pauses, no retries),
    each request reported to Locust the same way."""

    def __init__(self, environment: Environment, hooks: LocustHooks, limits: httpx.Limits) -> None:
        self.environment = environment
        self.hooks = hooks
        self.client = httpx.Client(base_url=environment.host or "", limits=limits)

    def get(self, path: str, *, extensions: dict[str, Any]) -> httpx.Response:
        self.hooks.sent += 1
        started = time.perf_counter()
        try:
            response = self.client.get(path)
        except httpx.HTTPError as exc:
            self._report(path, extensions, None, started, type(exc).__name__)
            raise
        self._report(path, extensions, response.status_code, started, None)
        return response

    def _report(
        self,
        path: str,
        extensions: dict[str, Any],
        status: int | None,
        started: float,
        error: str | None,
    ) -> None:
        route = extensions.get("ratelimit_route")
        self.hooks.on_request_completed(
            RequestCompleted(
                "GET", path, "", route, 1, status, time.perf_counter() - started, error, False
            )
        )

    def close(self) -> None:
        self.client.close()


STATE: dict[str, Any] = {}


@events.init_command_line_parser.add_listener
def _options(parser: LocustArgumentParser) -> None:
    parser.add_argument(
        "--shape",
        choices=["steady", "spike", "square"],
        default="steady",
        help="steady: all users all along; spike: idle, then every user at once; "
        "square: bursts of all users, then a tenth, alternating",
    )
    parser.add_argument("--burst-period", type=float, default=4.0, help="square wave period, s")
    parser.add_argument("--peak-users", type=int, default=200, help="users at the peak (200)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load (20)")
    parser.add_argument("--client-rate", default="50/s", help="the client's rate (50/s)")
    parser.add_argument("--no-throttle", action="store_true", help="no client-side limiting")


@events.test_start.add_listener
def _start(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    hooks = LocustHooks(environment)
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    client: SyncRateLimitedClient | PlainClient
    if options is not None and options.no_throttle:
        client = PlainClient(environment, hooks, limits)
    else:
        rate = options.client_rate if options is not None else "50/s"
        client = SyncRateLimitedClient(
            base_url=environment.host,
            rate=rate,
            retry=RetryPolicy(attempts=3),
            metrics=hooks,
            limits=limits,
        )
    STATE.update(client=client, hooks=hooks)


@events.quitting.add_listener
def _verdict(environment: Environment, **_: Any) -> None:
    client: SyncRateLimitedClient | PlainClient | None = STATE.get("client")
    hooks: LocustHooks | None = STATE.get("hooks")
    if client is None or hooks is None:
        return
    client.close()
    attempts = sum(
        entry.num_requests
        for entry in environment.stats.entries.values()
        if entry.method != THROTTLE
    )
    throttled = [e for e in environment.stats.entries.values() if e.method == THROTTLE]
    upstream = httpx.get(f"{environment.host}/__stats", timeout=10).json()
    verdict = {
        "attempts": attempts,
        "sent": hooks.sent,
        "upstream_received": upstream["received"],
        "rejected_429": upstream["rejected"],
        "max_in_window": upstream["max_received_in_window"],
        "limit": upstream["limit"],
        "window": upstream["window"],
        "penalties": upstream["penalties"],
        "throttle_wait_p95_ms": max(
            (e.get_response_time_percentile(0.95) for e in throttled), default=0
        ),
        "failures": sum(e.num_failures for e in environment.stats.entries.values()),
    }
    problems = []
    if verdict["rejected_429"]:
        problems.append(f"{verdict['rejected_429']} × 429 reached the clients")
    if verdict["max_in_window"] > verdict["limit"]:
        most, limit = verdict["max_in_window"], verdict["limit"]
        problems.append(f"the upstream counted {most} in one window (limit {limit})")
    if verdict["penalties"]:
        problems.append(f"the upstream's penalty tripped {verdict['penalties']} time(s)")
    verdict["passed"] = not problems
    print("LOADTEST_VERDICT " + json.dumps(verdict), flush=True)
    for problem in problems:
        print(f"FAILED: {problem}", flush=True)
    if problems:
        environment.process_exit_code = 1


class ApiUser(User):
    """Reads a document list or one item, as fast as the client lets it."""

    wait_time = constant(0)

    @task(3)
    def list_documents(self) -> None:
        STATE["client"].get("/documents", extensions={"ratelimit_route": "/documents"})

    @task(1)
    def get_item(self) -> None:
        item = random.randrange(1000)
        STATE["client"].get(f"/items/{item}", extensions={"ratelimit_route": "/items/{id}"})


class SelectableShape(LoadTestShape):
    """``--shape`` picks the load over ``--peak-users`` users and ``--duration`` seconds."""

    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options if self.runner else None
        users = int(getattr(options, "peak_users", 200))
        seconds = float(getattr(options, "duration", 20.0))
        shape = getattr(options, "shape", "steady")
        now = self.get_run_time()
        if now >= seconds:
            return None
        if shape == "spike":
            # idle for the first fifth, then every user in one second
            return (0, users) if now < seconds / 5 else (users, users)
        if shape == "square":
            period = float(getattr(options, "burst_period", 4.0))
            high = math.floor(now / (period / 2)) % 2 == 0
            return (users, users) if high else (max(1, users // 10), users)
        return (users, users)
