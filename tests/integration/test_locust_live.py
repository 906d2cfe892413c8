"""The Locust load test, headless and time-bounded, against the mock upstream: 250
simulated users in square-wave bursts share one client and get 0 × 429 with every
attempt accounted for; the same run with client-side throttling off is rejected
and banned (the control)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.heavy]

RUN = Path(__file__).resolve().parents[2] / "locustfiles" / "run.py"


def loadtest(*args: str) -> tuple[int, dict[str, Any], str]:
    result = subprocess.run(
        [sys.executable, str(RUN), *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("LOADTEST_VERDICT ")]
    assert lines, result.stdout[-3000:] + result.stderr[-3000:]
    verdict = json.loads(lines[-1].removeprefix("LOADTEST_VERDICT "))
    return result.returncode, verdict, result.stdout + result.stderr


def test_square_wave_of_250_users_gets_no_429_and_counts_match() -> None:
    code, verdict, output = loadtest(
        "--shape", "square", "--users", "250", "--run-time", "12", "--limit", "50"
    )
    assert code == 0, output[-3000:]
    assert verdict["passed"] is True
    assert verdict["rejected_429"] == 0
    assert verdict["penalties"] == 0
    assert verdict["max_in_window"] <= verdict["limit"] == 50
    # Every attempt Locust counted reached the upstream, and nothing else did.
    assert verdict["attempts"] == verdict["sent"] == verdict["upstream_received"]
    # Throughput is a speed figure: the quota allows 600 in the 12 s and the square
    # wave idles part of it; two thirds of that is a sanity floor (a stalled throttle
    # sends a fraction) that a machine busy with other work still meets.
    assert verdict["attempts"] >= 12 * 50 / 1.5
    assert verdict["failures"] == 0
    assert "THROTTLE" in output  # waiting in the throttle is reported apart


def test_with_throttling_off_the_same_load_is_rejected_and_banned() -> None:
    code, verdict, _ = loadtest(
        "--shape", "square", "--users", "250", "--run-time", "5", "--limit", "50", "--no-throttle"
    )
    assert code == 1
    assert verdict["passed"] is False
    assert verdict["rejected_429"] > 0
    assert verdict["max_in_window"] > 50
    assert verdict["penalties"] >= 1
    assert verdict["attempts"] == verdict["upstream_received"]
