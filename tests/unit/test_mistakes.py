"""Errors that sending again cannot change are raised at once, as the plain client
raises them: no retry, no backoff, no share of the retry budget, no WARNING. The
ones that can change (a refused connect, a timeout, a dropped connection) are
retried as before. On both stacks, async and sync."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import httpx
import httpx2
import pytest

import ratelimited_client
import ratelimited_client.httpx2
from ratelimited_client import RetryPolicy

if TYPE_CHECKING:
    from types import ModuleType

STACKS = [
    pytest.param((httpx, ratelimited_client), id="httpx"),
    pytest.param((httpx2, ratelimited_client.httpx2), id="httpx2"),
]
#: Cannot change by sending again: raised at once whatever the method.
MISTAKES = ["UnsupportedProtocol", "LocalProtocolError", "ProxyError"]
#: Can: retried on a GET.
PASSING = ["ConnectError", "ConnectTimeout", "ReadTimeout", "ReadError", "RemoteProtocolError"]


def policy() -> RetryPolicy:
    # Short backoff: the retried cases take milliseconds of real time.
    return RetryPolicy(attempts=3, backoff=0.001, max_backoff=0.002)


class Raising:
    """A transport (either side) that raises ``error`` for its first ``times`` requests."""

    def __init__(self, library: ModuleType, error: str, times: int) -> None:
        self.library = library
        self.error: Any = getattr(library, error)  # both stacks' TransportErrors
        self.times = times
        self.calls = 0

    def answer(self, request: Any) -> Any:
        self.calls += 1
        if self.calls <= self.times:
            raise self.error("refused", request=request)
        return self.library.Response(200, request=request)


@pytest.mark.anyio
@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("error", MISTAKES + PASSING)
async def test_only_errors_that_can_pass_are_retried(
    stack: tuple[ModuleType, ModuleType], error: str, caplog: pytest.LogCaptureFixture
) -> None:
    library, adapters = stack
    upstream = Raising(library, error, times=1)
    transport = library.MockTransport(upstream.answer)
    caplog.set_level(logging.DEBUG, logger="ratelimited_client")
    async with adapters.RateLimitedClient(
        base_url="http://api.test", transport=transport, retry=policy()
    ) as client:
        if error in MISTAKES:
            budget = client.statistics().retry_budget_left
            with pytest.raises(getattr(library, error)):
                await client.get("/x")
            assert upstream.calls == 1
            assert client.statistics().retry_budget_left >= budget  # none of it spent
        else:
            assert (await client.get("/x")).status_code == 200
            assert upstream.calls == 2
    if error in MISTAKES:
        assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("error", MISTAKES)
def test_the_sync_client_raises_mistakes_at_once_too(
    stack: tuple[ModuleType, ModuleType], error: str
) -> None:
    library, adapters = stack
    upstream = Raising(library, error, times=1)
    with adapters.SyncRateLimitedClient(
        base_url="http://api.test", transport=library.MockTransport(upstream.answer), retry=policy()
    ) as client:
        with pytest.raises(getattr(library, error)):
            client.get("/x")
    assert upstream.calls == 1


@pytest.mark.anyio
@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("url", ["/relative/path", "htp://127.0.0.1:1/x"])
async def test_a_url_with_no_or_a_wrong_scheme_fails_once_like_the_plain_client(
    stack: tuple[ModuleType, ModuleType], url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A relative URL with no ``base_url`` (or a misspelt scheme), through the stack's
    real transport: the plain client's own exception, in one attempt, with the
    default retry policy (which backs off 1.6-2.5 s over four attempts for errors
    that can pass), and nothing logged at WARNING."""
    library, adapters = stack
    caplog.set_level(logging.DEBUG, logger="ratelimited_client")
    async with library.AsyncClient() as plain:
        with pytest.raises(library.UnsupportedProtocol) as expected:
            await plain.get(url)
    async with adapters.RateLimitedClient() as client:
        with pytest.raises(library.UnsupportedProtocol) as raised:
            await client.get(url)
        assert client.statistics().admitted == 1  # one attempt
    assert str(raised.value) == str(expected.value)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
