"""Quotas in two currencies (issue 21): the same seeded chat-completion workload
against the bundled mock's token quota (60,000 tokens a minute) and request quota
(300 a minute), through two clients, each against a fresh mock:

- the peer: the OpenAI Cookbook's ``api_request_parallel_processor.py`` approach,
  reimplemented here from its documented behaviour over ``httpx2`` and told both
  limits, as its users do (:class:`CookbookProcessor`);
- ours: the ``openai`` SDK over ``ratelimited_client.httpx2.RateLimitedClient``, SDK
  retries off, told nothing: the library is to learn the token quota from the
  ``x-ratelimit-*-tokens`` headers and to settle each call's tokens from its answer.
  Its ``RateLimitError``s are counted per call as failures, never raised.

200 calls (``_model_workload.workload``: prompts of 200-2000 characters,
``max_tokens`` 100-600), ours from 50 tasks. Reported for each: the 429s the mock
sent (those for tokens among them), the calls that succeeded and failed, the wall
time against the least time the quotas allow (``_model_workload.least_time``: an
oracle admitting the calls in order, each at the first instant the mock would), and
the most tokens charged in any sliding window against the quota.

``--window W`` scales the minute down to ``W`` seconds with the limits in proportion
(60,000 × W/60 tokens, 300 × W/60 requests) and, unless ``--calls`` is given, the
calls too (200 × W/60), so the run keeps its shape; the peer's 15 s pause scales
with it. ``--quick`` is ``--window 10`` (33 calls, 15-20 s a client); the default,
the full minute, takes one to two minutes a client. Each client run stops after
5 × the least time + 30 s and reports what it had.

    .venv/bin/python benchmarks/bench_model_tokens.py [--quick] [--window 60]
        [--calls N] [--client peer|ours|both] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import anyio
import httpx2
import openai
from _model_workload import (
    CALLS,
    CONCURRENCY,
    FULL_WINDOW,
    Call,
    Messages,
    Quota,
    least_time,
    mock_config,
    tokens_within_quota,
    workload,
)
from _upstream import Upstream

from ratelimited_client.httpx2 import RateLimitedClient

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

MODEL: Final = "mock-model"
# The cookbook's constants: its pause after a rate-limit error, its main loop's nap,
# its default attempts per request.
COOKBOOK_PAUSE: Final = 15.0
COOKBOOK_LOOP_SLEEP: Final = 0.001
COOKBOOK_ATTEMPTS: Final = 5
# aiohttp's default connector, which the cookbook uses, opens at most 100 connections.
COOKBOOK_CONNECTIONS: Final = 100
CLIENTS: Final = ("peer", "ours")


@dataclass(slots=True)
class Outcome:
    """What one client's run came to, as the client saw it."""

    succeeded: int = 0
    failed: int = 0  # gave up on (the peer: attempts spent; ours: an error raised)
    rate_limited: int = 0  # 429s the client saw (the peer retries; ours: raised)
    other_errors: int = 0
    unfinished: int = 0  # still pending when the run's time ran out
    timed_out: bool = False
    elapsed: float = 0.0
    first_error: str | None = None

    def error(self, problem: BaseException | str) -> None:
        """Note the run's first error other than a 429, for the report."""
        self.other_errors += 1
        if self.first_error is None:
            self.first_error = problem if isinstance(problem, str) else repr(problem)


# -- the peer: the cookbook's parallel processor ------------------------------------


def cookbook_tokens(request: dict[str, Any]) -> int:
    """The cookbook's token estimate of a chat completion (its
    ``num_tokens_consumed_from_request``): 4 a message, the tokens of each of its
    values (a ``name`` replaces the role: one fewer), 2 priming the reply, plus
    ``n × max_tokens``. The cookbook counts with tiktoken, which this project does not
    have; here a value's tokens are ``ceil(chars / 4)``, the rule of thumb tiktoken's
    encodings approximate on English (and the rate the mock charges)."""
    tokens = 2
    for message in request["messages"]:
        tokens += 4
        for key, value in message.items():
            tokens += math.ceil(len(value) / 4)
            if key == "name":
                tokens -= 1
    completions: int = request.get("n", 1) * request.get("max_tokens", 15)
    return tokens + completions


@dataclass(slots=True)
class _Job:
    """One request of the cookbook's queue: its body, estimate and attempts left."""

    body: dict[str, Any]
    tokens: int
    attempts_left: int


@dataclass(slots=True)
class CookbookProcessor:
    """The OpenAI Cookbook's ``api_request_parallel_processor.py``, rebuilt from its
    documented behaviour on ``httpx2`` and asyncio (not its code):

    - two buckets, requests and tokens per minute, start full and refill continuously
      (``limit × seconds / 60``, capped at the limit); ``period`` is that minute,
      shortened with ``--window``;
    - one dispatcher loop takes the next request (retries first, then the file),
      estimates its tokens before sending (:func:`cookbook_tokens`), and sends it as
      a task of its own when both buckets hold enough (one request, the estimate),
      spending them; else it naps 1 ms and looks again; nothing returns tokens the
      estimate overcharged;
    - a rate-limit error pauses the dispatcher (everyone not yet sent) until
      ``pause`` seconds (15 at full scale) after the latest one; the failed request
      goes back to the retry queue while it has attempts left (5 in all), then is
      given up; other errors are retried the same way without the pause;
    - it ends when no request is left in progress.

    Adapted to the mock: a rate-limit error is an answer with status 429 (the
    cookbook reads OpenAI's error JSON, which the mock does not send). ``deadline``
    (``time.monotonic()``) bounds the run: past it the loop stops, cancels what is in
    flight and counts it unfinished.
    """

    url: str
    requests_per_minute: float
    tokens_per_minute: float
    period: float = FULL_WINDOW
    pause: float = COOKBOOK_PAUSE
    max_attempts: int = COOKBOOK_ATTEMPTS
    outcome: Outcome = field(default_factory=Outcome, init=False)
    _retries: deque[_Job] = field(default_factory=deque, init=False)
    _in_progress: int = field(default=0, init=False)
    _last_rate_limit: float = field(default=-math.inf, init=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    async def run(self, calls: list[Call], deadline: float) -> Outcome:
        fresh = iter(calls)
        requests_left = float(self.requests_per_minute)
        tokens_left = float(self.tokens_per_minute)
        updated = time.monotonic()
        job: _Job | None = None
        more = True
        limits = httpx2.Limits(max_connections=COOKBOOK_CONNECTIONS)
        started = time.monotonic()
        async with httpx2.AsyncClient(
            base_url=self.url, limits=limits, timeout=httpx2.Timeout(60.0)
        ) as http:
            while True:
                if job is None:
                    if self._retries:
                        job = self._retries.popleft()
                    elif more:
                        call = next(fresh, None)
                        if call is None:
                            more = False
                        else:
                            job = self._job(call)
                            self._in_progress += 1
                now = time.monotonic()
                seconds = now - updated
                updated = now
                requests_left = min(
                    requests_left + self.requests_per_minute * seconds / self.period,
                    self.requests_per_minute,
                )
                tokens_left = min(
                    tokens_left + self.tokens_per_minute * seconds / self.period,
                    self.tokens_per_minute,
                )
                if job is not None and requests_left >= 1 and tokens_left >= job.tokens:
                    requests_left -= 1
                    tokens_left -= job.tokens
                    job.attempts_left -= 1
                    task = asyncio.create_task(self._call(http, job))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                    job = None
                if self._in_progress == 0:
                    break
                if now >= deadline:
                    self.outcome.timed_out = True
                    break
                await asyncio.sleep(COOKBOOK_LOOP_SLEEP)
                cooling = self.pause - (time.monotonic() - self._last_rate_limit)
                if cooling > 0:
                    await asyncio.sleep(min(cooling, max(0.0, deadline - time.monotonic())))
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.outcome.elapsed = time.monotonic() - started
        # in flight, waiting to be retried, or never read: all unfinished
        self.outcome.unfinished = len(calls) - self.outcome.succeeded - self.outcome.failed
        return self.outcome

    def _job(self, call: Call) -> _Job:
        messages, max_tokens = call
        body: dict[str, Any] = {"model": MODEL, "messages": messages, "max_tokens": max_tokens}
        return _Job(body=body, tokens=cookbook_tokens(body), attempts_left=self.max_attempts)

    async def _call(self, http: httpx2.AsyncClient, job: _Job) -> None:
        failed = False
        try:
            response = await http.post(
                "/v1/chat/completions",
                json=job.body,
                headers={"Authorization": "Bearer test"},
            )
            answer = response.json()
            if response.status_code == 429:
                self._last_rate_limit = time.monotonic()
                self.outcome.rate_limited += 1
                failed = True
            elif not isinstance(answer, dict) or "error" in answer:
                self.outcome.error(f"{response.status_code}: {str(answer)[:100]}")
                failed = True
        except (httpx2.HTTPError, ValueError) as problem:  # ValueError: not JSON
            self.outcome.error(problem)
            failed = True
        if not failed:
            self.outcome.succeeded += 1
            self._in_progress -= 1
        elif job.attempts_left > 0:
            self._retries.append(job)
        else:
            self.outcome.failed += 1
            self._in_progress -= 1


def _run_peer(url: str, calls: list[Call], quota: Quota, budget: float) -> Outcome:
    processor = CookbookProcessor(
        url=url,
        requests_per_minute=float(quota.requests),
        tokens_per_minute=float(quota.tokens),
        period=quota.window,
        pause=COOKBOOK_PAUSE * quota.window / FULL_WINDOW,
    )
    return asyncio.run(processor.run(calls, time.monotonic() + budget))


# -- ours: the openai SDK over RateLimitedClient, told nothing -----------------------


def _sdk_messages(messages: Messages) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": message["content"]} for message in messages]


async def _ours(url: str, calls: list[Call], concurrency: int, budget: float) -> Outcome:
    outcome = Outcome()
    todo = iter(calls)
    pending = len(calls)
    client = openai.AsyncOpenAI(
        base_url=f"{url}/v1", api_key="test", max_retries=0, http_client=RateLimitedClient()
    )
    async with client:

        async def worker() -> None:
            nonlocal pending
            for messages, max_tokens in todo:
                try:
                    await client.chat.completions.create(
                        model=MODEL, messages=_sdk_messages(messages), max_tokens=max_tokens
                    )
                except openai.RateLimitError:
                    outcome.rate_limited += 1
                    outcome.failed += 1
                except Exception as problem:  # noqa: BLE001 - counted and reported, never raised
                    outcome.error(problem)
                    outcome.failed += 1
                else:
                    outcome.succeeded += 1
                pending -= 1

        started = time.monotonic()
        with anyio.move_on_after(budget) as scope:
            async with anyio.create_task_group() as tg:
                for _ in range(concurrency):
                    tg.start_soon(worker)
        outcome.elapsed = time.monotonic() - started
    outcome.timed_out = scope.cancelled_caught
    outcome.unfinished = pending
    return outcome


# -- the run --------------------------------------------------------------------------


def run(
    calls: int | None = None,
    window: float = FULL_WINDOW,
    clients: tuple[str, ...] = CLIENTS,
    concurrency: int = CONCURRENCY,
) -> list[dict[str, Any]]:
    """Each client in ``clients`` on the same workload, each against a fresh mock
    (same seed, so the same completion draws); one row a client."""
    quota = Quota.scaled(window)
    count = calls if calls is not None else max(1, round(CALLS * window / FULL_WINDOW))
    work = workload(count)
    least = least_time(work, quota)
    budget = 5 * least + 30.0
    rows: list[dict[str, Any]] = []
    for name in clients:
        with Upstream(mock_config(quota)) as upstream:
            if name == "peer":
                outcome = _run_peer(upstream.url, work, quota, budget)
                told = f"told {quota.requests} requests, {quota.tokens} tokens per {window:g} s"
                client = "cookbook parallel processor (httpx2)"
            else:
                outcome = anyio.run(_ours, upstream.url, work, concurrency, budget)
                told = "told nothing"
                client = "openai SDK over RateLimitedClient, max_retries=0"
            stats = upstream.stats()
        rows.append(
            {
                "client": name,
                "description": client,
                "told": told,
                "calls": count,
                "concurrency": concurrency,
                "token_limit": quota.tokens,
                "request_limit": quota.requests,
                "window": quota.window,
                "least": least,
                "budget": budget,
                "x_least": outcome.elapsed / least if least > 0 else None,
                "rejected": stats.rejected,
                "rejected_for_tokens": stats.model_tokens_rejected,
                "received": stats.received,
                "model_tokens_used": stats.model_tokens_used,
                "max_tokens_in_window": stats.max_model_tokens_in_window,
                "max_requests_in_window": stats.max_admitted_in_window,
                "within_token_quota": tokens_within_quota(stats, quota),
                **asdict(outcome),
            }
        )
    return rows


def report(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    head = rows[0]
    lines = [
        f"{head['calls']} chat completions; quota {head['token_limit']} tokens and "
        f"{head['request_limit']} requests per {head['window']:g} s; "
        f"least time {head['least']:.2f} s (run budget {head['budget']:.0f} s)"
    ]
    for r in rows:
        ratio = f"{r['x_least']:.2f} × least" if r["x_least"] is not None else "least 0"
        verdict = "ok" if r["within_token_quota"] else "OVER"
        line = (
            f"{r['client']:<4} {r['description']}, {r['told']}: "
            f"{r['succeeded']}/{r['calls']} succeeded, {r['failed']} failed, "
            f"{r['rejected']} × 429 ({r['rejected_for_tokens']} for tokens), "
            f"{r['elapsed']:.2f} s ({ratio}), "
            f"max {r['max_tokens_in_window']}/{r['token_limit']} tokens in a window ({verdict})"
        )
        if r["unfinished"] or r["timed_out"]:
            line += f", TIMED OUT with {r['unfinished']} unfinished"
        if r["first_error"] is not None:
            line += f", {r['other_errors']} other errors (first: {r['first_error']})"
        lines.append(line)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="token quotas: the cookbook's parallel processor against ours"
    )
    parser.add_argument("--calls", type=int, help=f"default {CALLS} × window / {FULL_WINDOW:g}")
    parser.add_argument(
        "--window",
        type=float,
        default=FULL_WINDOW,
        help="the quotas' window in seconds, the limits scaled in proportion",
    )
    parser.add_argument("--quick", action="store_true", help="--window 10: 15-20 s a client")
    parser.add_argument("--client", choices=(*CLIENTS, "both"), default="both")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args()
    window = 10.0 if args.quick else args.window
    clients = CLIENTS if args.client == "both" else (args.client,)
    rows = run(args.calls, window, clients)
    print(report(rows))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
