"""Requests and tokens: 16 chat calls through the real openai SDK to the bundled mock,
which allows 4,000 tokens per 5 s (a small stand-in for a tokens-per-minute quota)
and answers 429 past that. Runs offline (the mock is served on 127.0.0.1).

    pip install 'ratelimited_client[httpx2,testing]' openai
    python model_tokens.py
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import anyio
import openai

from ratelimited_client.httpx2 import RateLimitedClient
from ratelimited_client.testing import MockAPIConfig, MockAPIServer

if TYPE_CHECKING:
    from ratelimited_client import UnitStatistics


async def main(url: str) -> UnitStatistics:
    http_client = RateLimitedClient(
        # Told here, as the window is not a minute; the vendors' per-minute token
        # limits are learned from their headers when nothing is told.
        unit_rates={"tokens": "4000/5s"},
    )
    async with openai.AsyncOpenAI(
        base_url=f"{url}/v1", api_key="sk-test", http_client=http_client, max_retries=0
    ) as client:

        async def ask(i: int) -> None:
            # Reserved: 600 / 4 = 150 prompt tokens + max_tokens 250 = 400;
            # settled to the usage in the answer (30-100 % of max_tokens here).
            await client.chat.completions.create(
                model="mock-model",
                messages=[{"role": "user", "content": f"question {i:03} " + "x" * 587}],
                max_tokens=250,
            )

        async with anyio.create_task_group() as tg:
            for i in range(16):
                tg.start_soon(ask, i)
        (bucket,) = http_client.statistics().buckets.values()
        return bucket.units["tokens"]


if __name__ == "__main__":
    config = MockAPIConfig(
        limit=1000, window=5.0, dialect="openai", model_tokens=4000, model_tokens_window=5.0
    )
    with MockAPIServer(config) as server:
        started = time.monotonic()
        tokens = anyio.run(main, server.url)
        elapsed = time.monotonic() - started
        seen = server.stats()
    print(f"reserved {tokens.reserved:.0f} tokens, settled {tokens.settled:.0f}; ", end="")
    print(f"the server charged {seen.model_tokens_used}, ", end="")
    print(f"at most {seen.max_model_tokens_in_window} in any 5 s, ", end="")
    print(f"{seen.rejected} × 429, {elapsed:.1f} s")
