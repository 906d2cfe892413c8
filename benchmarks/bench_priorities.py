"""Urgent requests overtaking a batch (issue 22): the scenario of
``_priority_scenario.py`` against the bundled mock (a strict sliding window of 20 a
second, in a process of its own), three ways: FIFO (everything at priority 0), the
interactive requests at priority 10, and the same with a 25 % reserve for priority
>= 10. Reported: the interactive requests' p99 and worst wait in the throttle, the
server's most in any second, when the batch finished and the run's time against
the least for all 325 requests together.

Targets: at priority 10 each interactive request takes the first slot that frees
after it arrives (p99 <= 1 window + 50 ms), with the reserve p99 <= 100 ms, never
more than 20 in a second, and the run within 1.05 x the least time (priority).

    .venv/bin/python benchmarks/bench_priorities.py [--json PATH]
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path
from typing import Any

import anyio
from _priority_scenario import LEAST, LIMIT, p99, run
from _upstream import Upstream

from ratelimited_client import PriorityReserve
from ratelimited_client.testing import MockAPIConfig

MODES: dict[str, tuple[int, dict[str, Any]]] = {
    "fifo": (0, {}),
    "priority": (10, {}),
    "reserve": (10, {"priority_reserve": PriorityReserve(share=0.25, priority=10)}),
}


def measure() -> list[dict[str, Any]]:
    rows = []
    for mode, (urgent, options) in MODES.items():
        with Upstream(MockAPIConfig(limit=LIMIT, window=1.0)) as upstream:
            outcome = anyio.run(functools.partial(run, upstream.url, urgent, **options))
            stats = upstream.stats()
        waits = outcome.waits[urgent] if urgent else outcome.waits[0][-25:]
        rows.append(
            {
                "mode": mode,
                "interactive_p99": p99(outcome.waits.get(urgent, [])) if urgent else None,
                "interactive_max": max(waits),
                "fifo_p99": p99(outcome.waits[0]) if not urgent else None,
                "rejected": stats.rejected,
                "max_in_window": stats.max_received_in_window,
                "limit": LIMIT,
                "batch_done": outcome.batch_done,
                "elapsed": outcome.elapsed,
                "least": LEAST,
                "x_least": outcome.elapsed / LEAST,
            }
        )
    return rows


def report(rows: list[dict[str, Any]]) -> str:
    lines = []
    for r in rows:
        p99_text = (
            f"interactive p99 wait {r['interactive_p99'] * 1000:.0f} ms"
            if r["interactive_p99"] is not None
            else f"p99 wait of all (FIFO) {r['fifo_p99']:.2f} s"
        )
        lines.append(
            f"{r['mode']:<9}: {p99_text}, {r['rejected']} × 429, max {r['max_in_window']}/"
            f"{r['limit']} in a second, batch done {r['batch_done']:.2f} s, run "
            f"{r['elapsed']:.2f} s ({r['x_least']:.3f} × least {r['least']:.0f} s)"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="priorities: interactive over a batch")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args()
    rows = measure()
    print(report(rows))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
