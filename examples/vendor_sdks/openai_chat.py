"""The OpenAI SDK over ratelimited_client: 60 chat completions, 30 at a time,
against a mock that takes 20 a second and answers with OpenAI's rate-limit headers.

    python examples/vendor_sdks/openai_chat.py          # through RateLimitedClient
    python examples/vendor_sdks/openai_chat.py --bare   # the SDK alone, for contrast

The client is not told the quota: it learns it from the ``x-ratelimit-*``
headers. Nothing leaves the machine: the bundled mock runs in this process on a
free port. Needs ``pip install 'ratelimited_client[httpx2,testing]' openai``.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import openai
from _demo import run

from ratelimited_client.httpx2 import RateLimitedClient

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable


@asynccontextmanager
async def open_openai(url: str, bare: bool) -> AsyncIterator[Callable[[int], Awaitable[object]]]:
    if bare:
        client = openai.AsyncOpenAI(api_key="sk-mock", base_url=url)
    else:
        client = openai.AsyncOpenAI(
            api_key="sk-mock",  # the mock checks no key
            base_url=url,
            http_client=RateLimitedClient(),  # no rate=: learned from the headers
            max_retries=0,  # retries are the library's (docs/vendor-sdks.md)
        )

    async def ask(i: int) -> object:
        return await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"question {i}"}]
        )

    async with client:
        yield ask


if __name__ == "__main__":
    run("openai", "/v1", open_openai, openai.RateLimitError)
