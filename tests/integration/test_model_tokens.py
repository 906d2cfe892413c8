"""Quotas in two currencies against the bundled mock over real sockets: the real
``openai`` SDK through ``ratelimited_client.httpx2.RateLimitedClient``, told no rate.

The mock limits 300 requests and 60,000 tokens a minute, reserving each call's
prompt (characters / 4) plus its ``max_tokens`` and charging the prompt plus a
completion of 30-100 % of ``max_tokens`` (seeded), with OpenAI's token headers.
200 chat calls from 50 tasks (the seeded workload of ``benchmarks/_model_workload.py``,
shared with ``benchmarks/bench_model_tokens.py``): the client learns the token limit
from the first answers, reserves each call's estimate and settles it to the
``usage`` in the answer. The tokens bind: the run takes about a minute.

Shown: at most 3 × 429 (none, in practice), every call answered, never more
tokens in any sliding minute than the limit, the client's settled tokens equal to
what the server charged, and the time within 1.5 × the least the token budget
allows (the loose bound of a busy machine; the benchmark holds the tight target).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import openai
import pytest

from ratelimited_client import UnitsTooLargeError
from ratelimited_client.httpx2 import RateLimitedClient

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
from _model_workload import (  # benchmarks/ is not a package
    CONCURRENCY,
    Quota,
    least_time,
    mock_config,
    workload,
)

if TYPE_CHECKING:
    from ratelimited_client.testing.pytest_plugin import MockAPIServerFactory

pytestmark = [pytest.mark.slow]

API_KEY = "sk-test-not-a-real-key"
MODEL = "mock-model"
SLACK = 1.5


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_openai_sdk_learns_and_keeps_a_token_quota_it_was_not_told(
    mock_api_server: MockAPIServerFactory, anyio_backend: str
) -> None:
    quota = Quota()
    config = mock_config(quota)
    server = mock_api_server(
        **{field.name: getattr(config, field.name) for field in dataclasses.fields(config)}
    )
    calls = workload()
    todo = iter(calls)
    answered = 0
    async with (
        RateLimitedClient() as http_client,
        openai.AsyncOpenAI(
            api_key=API_KEY, base_url=f"{server.url}/v1", http_client=http_client, max_retries=0
        ) as client,
    ):

        async def worker() -> None:
            nonlocal answered
            for messages, max_tokens in todo:
                reply = await client.chat.completions.create(
                    model=MODEL,
                    messages=[{"role": "user", "content": m["content"]} for m in messages],
                    max_tokens=max_tokens,
                )
                assert reply.usage is not None
                answered += 1

        started = time.perf_counter()
        with anyio.fail_after(SLACK * least_time(calls, quota) + 60):
            async with anyio.create_task_group() as tasks:
                for _ in range(CONCURRENCY):
                    tasks.start_soon(worker)
        elapsed = time.perf_counter() - started
        (bucket,) = http_client.statistics().buckets.values()
    stats = server.stats()
    tokens = bucket.units["tokens"]
    assert answered == len(calls)
    assert stats.rejected <= 3
    assert stats.max_model_tokens_in_window <= quota.tokens
    assert (tokens.limit, tokens.learned, tokens.in_flight) == (quota.tokens, True, 0)
    # Every estimate was settled to the usage the server charged.
    assert tokens.settled == stats.model_tokens_used
    assert tokens.reserved > tokens.settled  # max_tokens is an upper bound
    least = least_time(calls, quota)
    assert least > 0.8 * quota.window  # the tokens bind: about a minute
    assert elapsed <= SLACK * least + 1.0, (elapsed, least)


@pytest.mark.anyio
async def test_a_call_whose_tokens_can_never_fit_fails_before_it_is_sent(
    mock_api_server: MockAPIServerFactory,
) -> None:
    """Learned from a first answer, the limit refuses a call asking more than all of it
    at once, before the request leaves: the server never sees it (where it would
    answer 400, the request being larger than the limit)."""
    server = mock_api_server(limit=100, window=1.0, dialect="openai", model_tokens=1000)
    async with (
        RateLimitedClient() as http_client,
        openai.AsyncOpenAI(
            api_key=API_KEY, base_url=f"{server.url}/v1", http_client=http_client, max_retries=0
        ) as client,
    ):
        await client.chat.completions.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hello"}]
        )
        # openai lets the library's own errors through as they are (as QueueFullError).
        with pytest.raises(UnitsTooLargeError, match=r"2002 tokens.*1000 tokens per 60 s"):
            await client.chat.completions.create(
                model=MODEL, max_tokens=2000, messages=[{"role": "user", "content": "hello"}]
            )
    assert server.stats().received == 1
