"""Every benchmark of the suite in one run: results JSON, tables and plots.

    python3 dev.py bench            # the full run (about 15 minutes); updates README.md
    .venv/bin/python benchmarks/run_all.py --quick --out /tmp/bench   # the smoke run

1. limiter micro-benchmarks (``bench_limiters.py``);
2. overhead against plain httpx (``bench_overhead.py``);
3. the scenarios against every peer over real sockets (``bench_scenarios.py``);
4. the peers against real limiters, nginx and slowapi (``bench_real_limiters.py``);
5. the openai and anthropic SDKs over the library and bare (``bench_vendor_sdks.py``);
6. a token quota: the openai SDK over the library against a faithful reimplementation
   of the OpenAI Cookbook's parallel processor (``bench_model_tokens.py``);
7. urgent requests overtaking a saturating batch: FIFO, priorities, a reserve
   (``bench_priorities.py``);
8. fair shares between three weighted tenants, in one process and in three over
   Redis (``bench_fairness.py``).

Writes ``results-<date>.json`` (or ``quick.json``), ``penalty-timeline.png`` and
``lateness.png`` into ``--out`` (default ``benchmarks/results``); with
``--update-readme`` the tables in ``benchmarks/README.md`` are regenerated (and the
plots drawn into ``docs/img`` for the docs site too).
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import anyio
import bench_fairness
import bench_limiters
import bench_model_tokens
import bench_overhead
import bench_priorities
import bench_real_limiters
import bench_scenarios
import bench_vendor_sdks
import report

HERE = Path(__file__).resolve().parent


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def run(quick: bool, only: str | None, peer: str | None = None) -> dict[str, Any]:
    results: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "quick": quick,
    }
    started = time.monotonic()
    if only in (None, "limiters"):
        print("limiters ...", flush=True)
        results["limiters"] = bench_limiters.run(quick)
        print(bench_limiters.report(results["limiters"]), flush=True)
    if only in (None, "overhead"):
        print("overhead ...", flush=True)
        requests, rounds = (300, 1) if quick else (3000, 9)
        results["overhead"] = anyio.run(bench_overhead.measure, requests, 50, rounds)
        print(bench_overhead.report(results["overhead"]), flush=True)
    if only is None or only.startswith("scenarios"):
        print("scenarios ...", flush=True)
        prefix = only.split(":", 1)[1] if only and ":" in only else None
        results["scenarios"] = anyio.run(bench_scenarios.run_all, quick, prefix, peer)
    if only is None or only.startswith("real"):
        print("real limiters ...", flush=True)
        prefix = only.split(":", 1)[1] if only and ":" in only else None
        results["real_limiters"] = anyio.run(bench_real_limiters.run_all, quick, prefix, peer)
    if only in (None, "vendors"):
        print("vendor SDKs ...", flush=True)
        calls = 40 if quick else 200
        results["vendor_sdks"] = bench_vendor_sdks.run(calls, min(calls // 2, 100), quick)
        print(bench_vendor_sdks.report(results["vendor_sdks"]), flush=True)
    if only in (None, "tokens"):
        print("model tokens ...", flush=True)
        # Quick: 8 calls that fit one window (the smoke run); else the minute.
        results["model_tokens"] = (
            bench_model_tokens.run(calls=8, window=10.0) if quick else bench_model_tokens.run()
        )
        print(bench_model_tokens.report(results["model_tokens"]), flush=True)
    if only in (None, "priorities") and not quick:
        print("priorities ...", flush=True)
        results["priorities"] = bench_priorities.measure()
        print(bench_priorities.report(results["priorities"]), flush=True)
    if only in (None, "fairness") and not quick:
        print("fair shares ...", flush=True)
        results["fairness"] = bench_fairness.measure()
        print(bench_fairness.report(results["fairness"]), flush=True)
    results["seconds"] = time.monotonic() - started
    return results


def main() -> None:
    logging.getLogger("stamina").setLevel(logging.ERROR)
    logging.getLogger("ratelimited_client").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results directory")
    parser.add_argument(
        "--only",
        help="limiters, overhead, vendors, tokens, priorities, fairness, "
        "scenarios[:<name prefix>] or "
        "real[:<limiter prefix>] "
        "(default: all)",
    )
    parser.add_argument(
        "--update-readme", action="store_true", help="regenerate benchmarks/README.md's tables"
    )
    parser.add_argument("--peer", help="run the scenarios for this peer only")
    parser.add_argument(
        "--merge", type=Path, help="replace only the parts run in this earlier results file"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = run(args.quick, args.only, args.peer)
    name = "quick.json" if args.quick else f"results-{results['date']}.json"
    path = args.out / name
    if args.merge is not None:
        earlier = json.loads(args.merge.read_text())
        new_runs = results.pop("scenarios", {}).get("runs", [])
        earlier.update({k: v for k, v in results.items() if k != "seconds"})
        if new_runs:
            # Scenario runs are replaced one (scenario, peer) at a time, in place.
            fresh = {(r["scenario"], r["peer"]): r for r in new_runs}
            old_runs = earlier.setdefault("scenarios", {"runs": []})["runs"]
            merged = [fresh.pop((r["scenario"], r["peer"]), r) for r in old_runs]
            earlier["scenarios"]["runs"] = merged + list(fresh.values())
        results, path = earlier, args.merge
        results.setdefault("seconds", 0.0)
    path.write_text(json.dumps(results) + "\n")
    report.plot(results, args.out)
    readme = HERE / "README.md"
    link = os.path.relpath(args.out.resolve(), readme.parent)
    text = report.markdown(results, link)
    if args.update_readme:
        report.update_readme(readme, text)
        # The docs site shows the same plots (docs/how-it-decides.md): its pages can
        # only show files under docs/, so they are copied there with the tables.
        report.plot(results, HERE.parent / "docs" / "img")
    print(text)
    print(f"results: {path} ({results['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
