"""The Anthropic SDK over ratelimited_client: 60 messages, 30 at a time, against a
mock that takes 20 a second and answers with Anthropic's rate-limit headers.

    python examples/vendor_sdks/anthropic_messages.py          # through RateLimitedClient
    python examples/vendor_sdks/anthropic_messages.py --bare   # the SDK alone, for contrast

The client is not told the quota: it learns it from the ``anthropic-ratelimit-*``
headers, whose resets are whole seconds: on this one-second window the first few
windows may go up to a second slower than the quota allows, until pairs of readings
pin the window down (on Anthropic's per-minute quotas the grain hardly shows).
Nothing leaves the machine: the bundled mock runs
in this process on a free port. Needs
``pip install 'ratelimited_client[httpx2,testing]' anthropic``.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anthropic
from _demo import run

from ratelimited_client.httpx2 import RateLimitedClient

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable


@asynccontextmanager
async def open_anthropic(url: str, bare: bool) -> AsyncIterator[Callable[[int], Awaitable[object]]]:
    if bare:
        client = anthropic.AsyncAnthropic(api_key="sk-ant-mock", base_url=url)
    else:
        client = anthropic.AsyncAnthropic(
            api_key="sk-ant-mock",  # the mock checks no key
            base_url=url,  # no /v1: the SDK adds it
            http_client=RateLimitedClient(),  # no rate=: learned from the headers
            max_retries=0,  # retries are the library's (docs/vendor-sdks.md)
        )

    async def ask(i: int) -> object:
        return await client.messages.create(
            model="mock-model",  # a retired model's name would warn; the mock takes any
            max_tokens=64,
            messages=[{"role": "user", "content": f"question {i}"}],
        )

    async with client:
        yield ask


if __name__ == "__main__":
    run("anthropic", "", open_anthropic, anthropic.RateLimitError)
