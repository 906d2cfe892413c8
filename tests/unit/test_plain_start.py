"""The plainest start of a request (``_plain_start`` of the transports) keeps every
per-request option.

Once first contact is over, most requests are admitted at once with nothing to do
before sending, and the transports start them without building a flow or a call.
A request that asks anything of its own (a cost, other units, its own call
options, OAuth, a bucket key, a metered model call) must still get it: each test
warms a client up until its requests take that start, then sends one that asks
something, and checks it was done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest
import respx

from ratelimited_client import (
    COST_EXTENSION,
    UNITS_EXTENSION,
    OAuth2ClientCredentials,
    RateLimitedClient,
    RetryPolicy,
    SyncRateLimitedClient,
    call_options,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.anyio

API = "https://api.test"
BUCKET = "https://api.test:443"
FAST_RETRY = RetryPolicy(attempts=3, backoff=0.0, max_backoff=0.0)
CHAT = "/v1/chat/completions"


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=API, assert_all_called=False) as router:
        yield router


def _client(**options: Any) -> RateLimitedClient:
    """A client whose warm requests are admitted at once (no slow start to wait out)."""
    return RateLimitedClient(base_url=API, rate="1000/s", slow_start=False, **options)


async def _warm(client: RateLimitedClient) -> None:
    for _ in range(3):
        await client.get("/x")
    assert client.statistics().buckets[BUCKET].admitted == 3


def _routes(api: respx.MockRouter) -> None:
    api.get("/x").mock(return_value=httpx.Response(200))
    usage = {"prompt_tokens": 10, "completion_tokens": 5}
    api.post(CHAT).mock(return_value=httpx.Response(200, json={"usage": usage}))


async def test_a_cost_is_charged_in_full(api: respx.MockRouter) -> None:
    _routes(api)
    async with _client() as client:
        await _warm(client)
        await client.get("/x", extensions={COST_EXTENSION: 5})
        assert client.statistics().buckets[BUCKET].used == 3 + 5


async def test_stated_units_are_reserved(api: respx.MockRouter) -> None:
    _routes(api)
    async with _client() as client:  # no unit quota configured: the bucket stays fast
        await _warm(client)
        await client.get("/x", extensions={UNITS_EXTENSION: {"tokens": 50}})  # not metered
        tokens = client.statistics().buckets[BUCKET].units["tokens"]
    assert (tokens.reserved, tokens.settled) == (50, 50)


async def test_a_metered_model_call_is_reserved_and_settled(api: respx.MockRouter) -> None:
    _routes(api)
    async with _client(unit_rates={"tokens": "1000/minute"}) as client:
        await _warm(client)
        ask = {"model": "m", "messages": [{"content": "x" * 40}], "max_tokens": 20}
        await client.post(CHAT, json=ask)  # priced by the default meter: a POST
        tokens = client.statistics().buckets[BUCKET].units["tokens"]
    assert tokens.reserved > 20  # the estimate: at least the completion's maximum
    assert tokens.settled == 15  # the answer's usage


async def test_a_calls_own_options_replace_the_clients_policy(api: respx.MockRouter) -> None:
    route = api.get("/flaky").mock(return_value=httpx.Response(503))
    api.get("/x").mock(return_value=httpx.Response(200))
    async with _client(retry=FAST_RETRY) as client:
        await _warm(client)
        response = await client.get("/flaky", extensions=call_options(attempts=1))
        assert (response.status_code, route.call_count) == (503, 1)
        await client.get("/flaky")
        assert route.call_count == 1 + 3  # the client's own policy: three attempts


async def test_a_bucket_key_picks_the_bucket(api: respx.MockRouter) -> None:
    _routes(api)
    async with _client() as client:
        await _warm(client)
        await client.get("/x", extensions={"ratelimit_key": "reports"})
        buckets = client.statistics().buckets
    assert (buckets[BUCKET].admitted, buckets["reports"].admitted) == (3, 1)


class _Counted(OAuth2ClientCredentials):
    """Counts the transport's look at the token just before each send."""

    checked = 0

    async def before_send(self, request: Any) -> None:
        self.checked += 1
        await super().before_send(request)


async def test_oauth_checks_the_token_before_every_send(api: respx.MockRouter) -> None:
    tokens = 0

    def token(request: httpx.Request) -> httpx.Response:
        nonlocal tokens
        tokens += 1
        return httpx.Response(200, json={"access_token": "t1", "expires_in": 3600})

    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200)

    api.get("/x").mock(side_effect=answer)
    token_client = httpx.AsyncClient(transport=httpx.MockTransport(token))
    auth = _Counted(
        "https://auth.test/token", client_id="app", client_secret="s", token_client=token_client
    )
    async with token_client, _client(auth=auth) as client:
        for _ in range(6):
            await client.get("/x")
    assert (seen, tokens, auth.checked) == (["Bearer t1"] * 6, 1, 6)


def test_the_sync_client_keeps_a_cost_and_a_key(api: respx.MockRouter) -> None:
    _routes(api)
    with SyncRateLimitedClient(base_url=API, rate="1000/s", slow_start=False) as client:
        for _ in range(3):
            client.get("/x")
        client.get("/x", extensions={COST_EXTENSION: 5})
        client.get("/x", extensions={"ratelimit_key": "reports"})
        buckets = client.statistics().buckets
    assert (buckets[BUCKET].used, buckets["reports"].admitted) == (3 + 5, 1)
