"""The example SDK against the mock upstream over real sockets (asyncio and trio)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest
from docservice import (
    DocServiceClient,
    Document,
    DocumentNotFoundError,
    InvalidDocumentError,
)

from ratelimited_client import PrometheusMetrics, Rate

if TYPE_CHECKING:
    from ratelimited_client.testing.pytest_plugin import MockAPIServerFactory

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def connect(url: str, **options: object) -> DocServiceClient:
    return DocServiceClient.connect(
        url, client_id="mock-client", client_secret="mock-secret", **options
    )


async def test_typed_methods_and_errors(mock_api_server: MockAPIServerFactory) -> None:
    server = mock_api_server(limit=50, window=1.0, oauth=True)
    async with connect(server.url) as docs:
        created = await docs.create_document("Q3 report", "numbers")
        assert created == await docs.get_document(created.id)
        assert isinstance(created, Document)
        assert [d.title for d in await docs.list_documents()] == ["Q3 report"]
        with pytest.raises(DocumentNotFoundError):
            await docs.get_document(999)
        with pytest.raises(InvalidDocumentError) as caught:
            await docs.create_document("")
        assert caught.value.status == 422
        assert "title" in caught.value.detail
    assert server.stats().tokens_issued == 1


async def test_class_defaults_state_the_quota() -> None:
    docs = DocServiceClient(base_url="http://127.0.0.1:9")
    stats = docs.statistics()
    assert stats.buckets == {}
    assert docs._shared.throttle.rates[0].rate == Rate(50, 60.0)
    assert docs._shared.throttle.bucket_rates["writes"][0].rate == Rate(10, 60.0)
    await docs.aclose()


async def test_reads_and_writes_burst_together_without_a_429(
    mock_api_server: MockAPIServerFactory,
) -> None:
    """60 reads and 15 writes at once; the service allows 20 reads and 5 writes per
    second: the SDK's two buckets keep both, 0 × 429, never faster than the quotas
    allow."""
    server = mock_api_server(limit=20, window=1.0, write_limit=5, oauth=True)
    metrics = PrometheusMetrics()
    async with connect(
        server.url,
        rate=Rate(20, 1.0),
        bucket_rates={"writes": Rate(5, 1.0)},
        metrics=metrics,
    ) as docs:
        started = anyio.current_time()
        async with anyio.create_task_group() as tg:
            for i in range(15):
                tg.start_soon(docs.create_document, f"doc {i}")
            for _ in range(60):
                tg.start_soon(docs.list_documents)
        elapsed = anyio.current_time() - started
        assert len(await docs.list_documents()) == 15
    stats = server.stats()
    assert stats.rejected == 0
    assert stats.max_writes_in_window <= 5
    assert stats.max_received_in_window <= 20
    # 60 reads, 15 writes: three bursts each, 2 s at least. Slots are dated when their
    # answers arrive, so each period may add a burst's round trip; the ceiling is a
    # loose sanity bound a busy machine still meets (speed is the benchmarks' job).
    assert 2.0 <= elapsed <= 2.0 * 1.5
    created = metrics.registry.get_sample_value(
        "ratelimited_client_requests_total",
        {"method": "POST", "status_class": "2xx", "bucket": "writes", "route": "/documents"},
    )
    assert created == 15
