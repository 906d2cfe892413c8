"""The benchmark suite keeps working: a seconds-long run of all of it, and the
targets check that turns its figures into verdicts.

The real run (``python3 dev.py bench``) takes about fifteen minutes and is not
part of the tests; speed is never asserted here, only that every peer ran, the
library kept its quota in the smoke run's scenarios, and the report and plots
were written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import report  # noqa: E402 - benchmarks/ is not a package

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # half a minute of real runs over sockets
@pytest.mark.timeout(300)
@pytest.mark.heavy
def test_the_whole_suite_runs_quick(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/run_all.py", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    results = json.loads((tmp_path / "quick.json").read_text())

    runs = results["scenarios"]["runs"]
    assert {run["peer"] for run in runs} == {
        "ratelimited_client",
        "aiolimiter",
        "PyrateLimiter",
        "limits",
        "httpx-retries",
        "stamina",
        "naive httpx",
    }
    assert {run["scenario"] for run in runs} == {"known", "unknown/ietf", "penalty"}
    assert not [run for run in runs if run["timed_out"]]
    for run in runs:
        # Every logical request ended, one way or another.
        assert sum(run["outcomes"].values()) == run["requests"]
    ours = {run["scenario"]: run for run in runs if run["peer"] == "ratelimited_client"}
    for name in ("known", "penalty"):
        assert ours[name]["received_429"] == 0, ours[name]
        assert ours[name]["max_in_window"] <= ours[name]["limit"]
        assert ours[name]["outcomes"] == {"200": ours[name]["requests"]}
    naive = next(r for r in runs if r["peer"] == "naive httpx" and r["scenario"] == "penalty")
    assert naive["received_429"] > 0  # the comparison has something to show
    assert naive["arrivals"], "the penalty scenario keeps arrivals for its plot"

    limiters = results["limiters"]
    assert set(limiters["uncontended_us"]) >= {"ratelimited_client", "aiolimiter"}
    assert limiters["contended"]["ratelimited_client (asyncio)"]["measured_admissions"] > 0
    assert limiters["memory_bytes"]["ratelimited_client"] > 0
    overhead = results["overhead"]
    assert overhead["ratio"] > 0
    assert overhead["connections"] == 50
    assert overhead["small_pool"]["connections"] == 10
    assert overhead["small_pool"]["ratio"] > 0
    assert overhead["in_process"]["plain_us"] > 0
    assert overhead["httpx2"]["ratio"] > 0
    # Each client's warm-up is timed apart from its run (first contact, once).
    assert overhead["warm_up"] == overhead["httpx2"]["warm_up"] == 100
    assert overhead["httpx2"]["ours_first_ms"] > 0
    assert overhead["httpx2"]["plain_first_ms"] > 0
    assert overhead["httpx2"]["in_process"]["plain_us"] > 0

    # The vendor SDKs: the smoke run keeps to openai, ours and the bare SDK.
    vendors = {run["client"]: run for run in results["vendor_sdks"]}
    assert len(vendors) == 2
    ours = next(run for run in vendors.values() if run["ours"])
    assert (ours["rejected"], ours["answered"]) == (0, ours["calls"])

    # Real limiters: the smoke run keeps to nginx without burst and three peers.
    real = {run["peer"]: run for run in results["real_limiters"]["runs"]}
    assert set(real) == {
        "ratelimited_client (told)",
        "ratelimited_client (not told)",
        "aiolimiter",
    }
    assert real["ratelimited_client (told)"]["received_429"] == 0
    assert real["ratelimited_client (not told)"]["outcomes"] == {"200": 40}

    for name in ("penalty-timeline.png", "lateness.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG
    assert "### Targets" in done.stdout
    assert "### Real limiters (nginx, slowapi)" in done.stdout
    assert "### The vendor SDKs (openai, anthropic) on the httpx2 stack" in done.stdout


def _results(**changes: Any) -> dict[str, Any]:
    known = {
        "scenario": "known",
        "peer": "ratelimited_client",
        "requests": 400,
        "received_429": 0,
        "max_in_window": 20,
        "limit": 20,
        "ratio": 1.01,
        "bans": 0,
        "upstream_per_logical": 1.0,
        "least": 19.0,
        "elapsed": 19.19,
        "outcomes": {"200": 400},
        "timed_out": False,
    }
    known.update(changes)
    return {"scenarios": {"runs": [known]}}


def test_targets_are_checked_against_the_figures() -> None:
    [row] = report.targets(_results())
    assert row[2] == "met"
    for change in ({"received_429": 1}, {"max_in_window": 21}, {"ratio": 1.03}):
        [row] = report.targets(_results(**change))
        assert row[2] == "**missed**", change


def test_the_readme_section_is_replaced_not_appended(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Benchmarks\n\nintro\n\n{report.BEGIN}\nold\n{report.END}\n\nafter\n")
    report.update_readme(readme, report.markdown(_results()))
    text = readme.read_text()
    assert text.count(report.BEGIN) == 1
    assert "old" not in text
    assert text.startswith("# Benchmarks\n\nintro")
    assert text.rstrip().endswith("after")
    assert "1.010 ×" in text
