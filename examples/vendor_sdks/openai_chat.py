"""The OpenAI SDK over ratelimited_client: 60 chat completions, 30 at a time,
against a mock that takes 20 a second and answers with OpenAI's rate-limit headers.

    python examples/vendor_sdks/openai_chat.py          # through RateLimitedClient
    python examples/vendor_sdks/openai_chat.py --bare   # the SDK alone, for contrast

The client is not told the quota: it learns it from the ``x-ratelimit-*``
headers. Nothing leaves the machine: the bundled mock runs in this process on a
free port. Needs ``pip install 'ratelimited_client[httpx2,testing]' openai``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time

import openai

from ratelimited_client.httpx2 import RateLimitedClient
from ratelimited_client.testing import MockAPIConfig, MockAPIServer

CALLS = 60
CONCURRENCY = 30
LIMIT = 20  # per second, a strict sliding window


async def ask_all(base_url: str, *, bare: bool) -> tuple[int, int]:
    """Fire the calls; (answered, failed)."""
    if bare:
        client = openai.AsyncOpenAI(api_key="sk-mock", base_url=base_url)
    else:
        client = openai.AsyncOpenAI(
            api_key="sk-mock",  # the mock checks no key
            base_url=base_url,
            http_client=RateLimitedClient(),  # no rate=: learned from the headers
            max_retries=0,  # retries are the library's (docs/vendor-sdks.md)
        )
    slots = asyncio.Semaphore(CONCURRENCY)

    async def ask(i: int) -> bool:
        async with slots:
            try:
                await client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": f"question {i}"}]
                )
            except openai.RateLimitError:
                return False
        return True

    async with client:
        answered = await asyncio.gather(*(ask(i) for i in range(CALLS)))
    return sum(answered), CALLS - sum(answered)


def main() -> None:
    parser = argparse.ArgumentParser(description="60 SDK calls against a mock quota.")
    parser.add_argument("--bare", action="store_true", help="the SDK alone, no ratelimited_client")
    bare = parser.parse_args().bare
    with MockAPIServer(MockAPIConfig(limit=LIMIT, window=1.0, dialect="openai")) as server:
        started = time.monotonic()
        answered, failed = asyncio.run(ask_all(f"{server.url}/v1", bare=bare))
        elapsed = time.monotonic() - started
        stats = server.stats()
    least = math.ceil(CALLS / LIMIT) - 1  # seconds: the last second's calls go after this
    print(f"{'bare SDK' if bare else 'RateLimitedClient'}: {answered} answered, {failed} failed")
    print(f"429s the mock sent: {stats.rejected}")
    print(f"wall time: {elapsed:.2f} s (the quota allows no less than {least} s)")


if __name__ == "__main__":
    main()
