"""The vendor SDKs as users run them: openai and anthropic over
``ratelimited_client.httpx2.RateLimitedClient`` (not told the quota, SDK retries
off) against the bundled mock's strict quota, beside the bare SDK (its own
client, its default two retries) in the same run.

200 calls from 100 tasks, each against a fresh mock: 20 per second for both
SDKs (the vendors' headers: OpenAI's durations, Anthropic's RFC 3339 instants in
whole seconds), and 100 per 5 s for Anthropic, where the whole-second grain of its
resets is a fifth of a window rather than all of it. Reported: the 429s the mock
sent, the calls answered, and the wall time against the least time the quota
allows (``(ceil(calls / limit) - 1) * window``).

    .venv/bin/python benchmarks/bench_vendor_sdks.py [--calls 200] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anthropic
import anyio
import openai
from _upstream import Upstream

from ratelimited_client.httpx2 import RateLimitedClient
from ratelimited_client.testing import MockAPIConfig

Ask = Callable[[int], Awaitable[object]]

# (vendor, limit, window) of each case.
CASES: tuple[tuple[str, int, float], ...] = (
    ("openai", 20, 1.0),
    ("anthropic", 20, 1.0),
    ("anthropic", 100, 5.0),
)


@asynccontextmanager
async def _sdk(vendor: str, url: str, ours: bool) -> AsyncIterator[Ask]:
    """One SDK client on the mock: through our client with SDK retries off, or bare."""
    http_client = RateLimitedClient() if ours else None
    retries = 0 if ours else 2
    if vendor == "openai":
        oa = openai.AsyncOpenAI(
            api_key="sk-mock", base_url=f"{url}/v1", http_client=http_client, max_retries=retries
        )

        async def ask_openai(i: int) -> object:
            return await oa.chat.completions.create(
                model="mock-model", messages=[{"role": "user", "content": f"q{i}"}]
            )

        async with oa:
            yield ask_openai
        return
    an = anthropic.AsyncAnthropic(
        api_key="sk-ant-mock", base_url=url, http_client=http_client, max_retries=retries
    )

    async def ask_anthropic(i: int) -> object:
        return await an.messages.create(
            model="mock-model", max_tokens=16, messages=[{"role": "user", "content": f"q{i}"}]
        )

    async with an:
        yield ask_anthropic


async def _fire(vendor: str, url: str, ours: bool, calls: int, concurrency: int) -> dict[str, Any]:
    answered = failed = 0
    todo = iter(range(calls))
    async with _sdk(vendor, url, ours) as ask:

        async def worker() -> None:
            nonlocal answered, failed
            for i in todo:
                try:
                    await ask(i)
                except Exception:  # noqa: BLE001 - counted: the bare SDK's RateLimitErrors
                    failed += 1
                else:
                    answered += 1

        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            for _ in range(concurrency):
                tg.start_soon(worker)
        elapsed = time.monotonic() - started
    return {"answered": answered, "failed": failed, "elapsed": elapsed}


def run(calls: int = 200, concurrency: int = 100, quick: bool = False) -> list[dict[str, Any]]:
    """Every case (``quick``: the first), ours then the bare SDK, each against a fresh
    mock process."""
    rows: list[dict[str, Any]] = []
    for vendor, limit, window in CASES[:1] if quick else CASES:
        least = (math.ceil(calls / limit) - 1) * window
        for ours in (True, False):
            config = MockAPIConfig(limit=limit, window=window, dialect=vendor)  # type: ignore[arg-type]
            with Upstream(config) as upstream:
                run_ = anyio.run(_fire, vendor, upstream.url, ours, calls, concurrency)
                stats = upstream.stats()
            rows.append(
                {
                    "vendor": vendor,
                    "client": "ratelimited_client.httpx2, max_retries=0" if ours else "bare SDK",
                    "ours": ours,
                    "limit": limit,
                    "window": window,
                    "calls": calls,
                    "rejected": stats.rejected,
                    "least": least,
                    "x_least": run_["elapsed"] / least,
                    **run_,
                }
            )
    return rows


def report(rows: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{r['vendor']:<9} {r['limit']}/{r['window']:g}s {r['client']:<42}: "
        f"{r['answered']}/{r['calls']} answered, {r['rejected']} × 429, "
        f"{r['elapsed']:.2f} s ({r['x_least']:.2f} × least)"
        for r in rows
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="the vendor SDKs over the library, and bare")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args()
    rows = run(args.calls)
    print(report(rows))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
