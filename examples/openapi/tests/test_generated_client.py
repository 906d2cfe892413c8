"""The client openapi-python-client generated from the mock upstream's description,
throttled without editing a line of it, over real sockets.

Two ways in: ``RateLimitedTransport`` through the generated client's
``httpx_args``, and a whole ``RateLimitedClient`` injected with
``set_async_httpx_client``. Either way a burst of reads and writes against a
strict, OAuth-protected upstream that also fails now and then gets 0 × 429,
one token request, and every call answered.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from docservice_client import Client
from docservice_client.api.default import create_document, get_document, list_documents
from docservice_client.models import Document, DocumentList, NewDocument

from ratelimited_client import (
    OAuth2ClientCredentials,
    OperationPolicy,
    Rate,
    RateLimitedClient,
    RateLimitedTransport,
    RetryPolicy,
    SyncRateLimitedTransport,
    origin_key,
)

if TYPE_CHECKING:
    import httpx

    from ratelimited_client.testing.pytest_plugin import MockAPIServerFactory

pytestmark = pytest.mark.slow

#: The API's own description, from which the generated client was made.
SPEC = Path(__file__).parents[1] / "openapi.json"

# POSTs are retried too: an Idempotency-Key is added to each, so a 503 is safe to repeat.
POLICY = RetryPolicy(attempts=6, backoff=0.01, max_backoff=0.1, auto_idempotency_key=True)


def by_kind(request: httpx.Request) -> str:
    return "writes" if request.method == "POST" else "reads"


def options() -> dict[str, Any]:
    return {
        "rate": Rate(20, 1.0),
        "bucket_rates": {"writes": Rate(5, 1.0)},
        "key": by_kind,
        "retry": POLICY,
    }


def upstream(mock_api_server: MockAPIServerFactory) -> Any:
    return mock_api_server(limit=20, window=1.0, write_limit=5, oauth=True, fail_rate=0.05, seed=5)


def oauth(url: str) -> OAuth2ClientCredentials:
    return OAuth2ClientCredentials(
        f"{url}/oauth/token", client_id="mock-client", client_secret="mock-secret"
    )


async def burst(client: Client) -> tuple[list[object], list[object]]:
    created: list[object] = []
    listed: list[object] = []

    async def write(i: int) -> None:
        created.append(
            await create_document.asyncio(client=client, body=NewDocument(title=f"doc {i}"))
        )

    async def read() -> None:
        listed.append(await list_documents.asyncio(client=client))

    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(write, i)
        for _ in range(40):
            tg.start_soon(read)
    return created, listed


def check(server: Any, created: list[object], listed: list[object], *, extra: int = 0) -> None:
    stats = server.stats()
    assert all(isinstance(doc, Document) for doc in created), created
    assert all(isinstance(page, DocumentList) for page in listed), listed
    assert (len(created), len(listed)) == (10, 40)
    assert stats.rejected == 0
    assert stats.max_writes_in_window <= 5
    assert stats.max_received_in_window <= 20
    assert stats.tokens_issued == 1
    assert stats.received == 50 + extra + stats.faults  # every injected 503 retried, once


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_transport_through_httpx_args(mock_api_server: MockAPIServerFactory) -> None:
    server = upstream(mock_api_server)
    transport = RateLimitedTransport(**options())
    client = Client(
        base_url=server.url, httpx_args={"transport": transport, "auth": oauth(server.url)}
    )
    async with client:
        created, listed = await burst(client)
        one = await get_document.asyncio(client=client, document_id=1)
    check(server, created, listed, extra=1)
    assert isinstance(one, Document)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_rate_limited_client_injected(mock_api_server: MockAPIServerFactory) -> None:
    server = upstream(mock_api_server)
    client = Client(base_url=server.url).set_async_httpx_client(
        RateLimitedClient(base_url=server.url, auth=oauth(server.url), **options())
    )
    async with client:
        created, listed = await burst(client)
    check(server, created, listed)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_the_policy_from_openapi_json_routes_and_retries_each_operation(
    mock_api_server: MockAPIServerFactory,
) -> None:
    """The policy read from the API's own ``openapi.json`` (no key function, no retry
    settings of the user's): writes go to the write bucket (the mock's stricter write
    quota sees no 429), a GET answered 503 is retried, a POST answered 503 without an
    idempotency key is not (it may have been applied)."""
    server = mock_api_server(limit=20, window=1.0, write_limit=5, fail_rate=0.15, seed=11)
    policy = OperationPolicy.from_openapi(SPEC, write_bucket="writes")
    http = RateLimitedClient(
        base_url=server.url,
        rate=Rate(20, 1.0),
        bucket_rates={"writes": Rate(5, 1.0)},
        operations=policy,
        retry=RetryPolicy(backoff=0.01, max_backoff=0.05, budget=1.0),
    )
    client = Client(base_url=server.url).set_async_httpx_client(http)
    writes: list[int] = []
    reads: list[int] = []

    async def write(i: int) -> None:
        answer = await create_document.asyncio_detailed(
            client=client, body=NewDocument(title=f"doc {i}")
        )
        writes.append(answer.status_code)

    async def read() -> None:
        reads.append((await list_documents.asyncio_detailed(client=client)).status_code)

    async with client:
        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(write, i)
            for _ in range(30):
                tg.start_soon(read)
        buckets = http.statistics().buckets
    stats = server.stats()
    assert stats.rejected == 0
    assert stats.max_writes_in_window <= 5
    # Every read answered 200 (its 503s retried); a failed write is given back as is.
    assert reads == [200] * 30
    failed_writes = writes.count(503)
    assert sorted(set(writes)) <= [201, 503]
    assert stats.received == 40 + stats.faults - failed_writes  # only reads were retried
    assert stats.faults > failed_writes > 0  # seeded: both kinds of 503 happen
    assert buckets["writes"].admitted == 10
    assert buckets[origin_key(http.build_request("GET", "/"))].admitted == 30 + (
        stats.faults - failed_writes
    )


def test_sync_transport_through_httpx_args_on_threads(
    mock_api_server: MockAPIServerFactory,
) -> None:
    server = upstream(mock_api_server)
    transport = SyncRateLimitedTransport(**options())
    client = Client(
        base_url=server.url, httpx_args={"transport": transport, "auth": oauth(server.url)}
    )
    created: list[object] = []
    listed: list[object] = []
    lock = threading.Lock()

    def call(i: int) -> None:
        if i < 10:
            result: object = create_document.sync(client=client, body=NewDocument(title=f"d{i}"))
            target = created
        else:
            result = list_documents.sync(client=client)
            target = listed
        with lock:
            target.append(result)

    with client, ThreadPoolExecutor(16) as pool:
        list(pool.map(call, range(50)))
    check(server, created, listed)
