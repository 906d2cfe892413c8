"""What reaches the ``ratelimited_client`` logger at which level: a healthy run at the
limit says nothing at WARNING; a pause the client did not see coming is a WARNING at
most once a minute per bucket, the ones between counted; nothing reaches stderr
without a handler the application configured."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
from email.utils import formatdate
from typing import TYPE_CHECKING

import httpx
import pytest
from test_feedback import Reply, Upstream, fire, make_client

from ratelimited_client import Paused
from ratelimited_client._hooks import _LoggingHooks

if TYPE_CHECKING:
    from ratelimited_client.testing import FakeClock

WALL = 1_790_000_000.0  # the server's epoch at virtual t = 0


def fixed_window_at_the_limit(limit: int, window: float) -> Reply:
    """A fixed window that states its quota on every answer (``X-RateLimit-*``):
    ``remaining=0`` on the last request of each window, a 429 past it."""
    state = {"start": -math.inf, "count": 0}

    def reply(n: int, now: float) -> httpx.Response:
        if now >= state["start"] + window:
            state["start"], state["count"] = math.floor(now / window) * window, 0
        status = 429 if state["count"] >= limit else 200
        state["count"] += status == 200
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(limit - state["count"]),
            "X-RateLimit-Reset": repr(WALL + state["start"] + window),
            "Date": formatdate(math.floor(WALL + now), usegmt=True),
        }
        if status == 429:
            headers["Retry-After"] = str(math.ceil(state["start"] + window - now))
        return httpx.Response(status, headers=headers)

    return reply


@pytest.mark.anyio
async def test_a_healthy_run_at_the_limit_logs_nothing_at_warning(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that goes by the server's headers alone (no rate, no learning, one
    request at a time) against 10 per second stated on every answer: 40 requests,
    a wait for the reset the headers foretold at the end of every window, each at
    DEBUG; not one line at WARNING (there was one per window)."""
    upstream = Upstream(fake_clock, fixed_window_at_the_limit(10, 1.0), latency=0.01)
    caplog.set_level(logging.DEBUG, logger="ratelimited_client")
    async with make_client(fake_clock, upstream, learn=False, max_concurrency=1) as client:
        statuses = await fire(client, fake_clock, 40)
    assert statuses == [200] * 40
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    waits = [r for r in caplog.records if getattr(r, "event", None) == "paused"]
    assert len(waits) == 3  # between the four windows
    assert all(r.levelno == logging.DEBUG for r in waits)
    assert {getattr(r, "source", None) for r in waits} == {"x-ratelimit remaining=0"}


def test_unforeseen_pauses_warn_once_a_minute_per_bucket_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    hooks = _LoggingHooks(clock=lambda: now[0])
    caplog.set_level(logging.DEBUG, logger="ratelimited_client")

    def pause(bucket: str, at: float, source: str = "retry-after") -> None:
        now[0] = at
        hooks.on_paused(Paused(bucket=bucket, delay=1.0, source=source))

    pause("a", 0.0)
    pause("a", 1.0)
    pause("a", 30.0)
    pause("b", 31.0)  # another bucket: its own notice
    pause("a", 45.0, source="x-ratelimit remaining=0")  # foreseen: neither told nor counted
    pause("a", 60.5)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [(r.bucket, r.held_back) for r in warnings] == [("a", 0), ("b", 0), ("a", 2)]  # type: ignore[attr-defined]
    assert "2 more since the last notice" in warnings[-1].getMessage()
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 3


def test_nothing_reaches_stderr_without_a_handler_configured() -> None:
    """Python prints a WARNING with no handler anywhere to stderr ("last resort"); the
    package's NullHandler keeps a library's lines out of an application that did not
    ask for them."""
    code = (
        "import logging, ratelimited_client\n"
        "logging.getLogger('ratelimited_client').warning('should not be seen')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stderr == ""
