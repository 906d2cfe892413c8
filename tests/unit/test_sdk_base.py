"""Subclassing the clients: class-level defaults and the three SDK methods (respx)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import httpx
import pytest
import respx

from ratelimited_client import (
    ConfigurationError,
    Hooks,
    Paused,
    QuotaObserved,
    QuotaState,
    Rate,
    RateLimitedClient,
    RetryPolicy,
    SignalContext,
    SyncRateLimitedClient,
)

if TYPE_CHECKING:
    from collections.abc import Hashable, Iterator, Mapping

    from ratelimited_client import RateTypes

pytestmark = pytest.mark.anyio

API = "https://acme.test"


class Seen(Hooks):
    def __init__(self) -> None:
        self.pauses: list[Paused] = []
        self.quotas: list[QuotaObserved] = []

    def on_paused(self, event: Paused) -> None:
        self.pauses.append(event)

    def on_quota(self, event: QuotaObserved) -> None:
        self.quotas.append(event)


class AcmeClient(RateLimitedClient):
    default_base_url = API
    default_rate: ClassVar[RateTypes | None] = Rate(100, 1.0)
    default_bucket_rates: ClassVar[Mapping[Hashable, RateTypes] | None] = {"search": "2/s"}
    default_retry: ClassVar[RetryPolicy | None] = RetryPolicy(
        attempts=3, backoff=0.0, max_backoff=0.0
    )

    def bucket_key(self, request: httpx.Request) -> Hashable:
        return "search" if request.url.path.startswith("/search") else "core"

    def is_throttled(self, ctx: SignalContext) -> bool:
        return ctx.status == 403 and ctx.body_get("code") == "SLOW_DOWN"

    def read_rate_limit(self, ctx: SignalContext) -> None:
        left = ctx.number("Acme-Calls-Left", conservative="min")
        if left is not None:
            ctx.add_quota(QuotaState(name="calls", dialect="acme", remaining=left, limit=100.0))
            ctx.recognised("acme")


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=API, assert_all_called=False) as router:
        yield router


async def test_defaults_and_bucket_key(api: respx.MockRouter) -> None:
    api.get("/search").mock(return_value=httpx.Response(200))
    api.get("/items").mock(return_value=httpx.Response(200))
    async with AcmeClient() as client:
        for _ in range(2):
            await client.get("/search")
        await client.get("/items")
        buckets = client.statistics().buckets
    assert set(buckets) == {"search", "core"}
    assert buckets["search"].admitted == 2
    assert client.base_url == httpx.URL(API)
    assert client._shared.throttle.bucket_rates["search"][0].rate == Rate(2, 1.0)


async def test_is_throttled_pauses_and_retries_a_vendor_rejection(api: respx.MockRouter) -> None:
    route = api.get("/items").mock(
        side_effect=[
            httpx.Response(403, json={"code": "SLOW_DOWN"}, headers={"Retry-After": "0"}),
            httpx.Response(200, headers={"Acme-Calls-Left": "41"}),
        ]
    )
    seen = Seen()
    async with AcmeClient(metrics=seen) as client:
        response = await client.get("/items")
    assert response.status_code == 200
    assert route.call_count == 2
    assert [(p.bucket, p.source) for p in seen.pauses] == [("core", "retry-after")]
    assert [(q.name, q.dialect, q.remaining) for q in seen.quotas] == [("calls", "acme", 41.0)]


async def test_a_plain_403_is_not_retried(api: respx.MockRouter) -> None:
    route = api.get("/items").mock(return_value=httpx.Response(403, json={"code": "NOPE"}))
    async with AcmeClient() as client:
        assert (await client.get("/items")).status_code == 403
    assert route.call_count == 1


async def test_options_win_over_class_defaults(api: respx.MockRouter) -> None:
    route = api.get("/items").mock(return_value=httpx.Response(503))
    async with AcmeClient(retry=None, base_url="https://acme.test", rate="5/s") as client:
        assert (await client.get("/items")).status_code == 503
        assert client._shared.throttle.rates[0].rate == Rate(5, 1.0)
    assert route.call_count == 1


def test_sync_client_has_the_same_sdk_surface() -> None:
    class SyncAcme(SyncRateLimitedClient):
        default_base_url = API

        def bucket_key(self, request: httpx.Request) -> Hashable:
            return request.method

    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    with SyncAcme(transport=transport, bucket_rates={"POST": "1/s"}) as client:
        client.get("/a")
        client.post("/b")
        assert set(client.statistics().buckets) == {"GET", "POST"}
        assert str(client.base_url) == API


@pytest.mark.parametrize(
    ("bucket_rates", "message"),
    [
        ("10/s", "bucket_rates must map"),
        ({"writes": None}, r"bucket_rates\['writes'\]"),
        ({"writes": "ten a second"}, r"bucket_rates\['writes'\]"),
    ],
)
def test_bad_bucket_rates_name_the_option(bucket_rates: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RateLimitedClient(bucket_rates=bucket_rates)
    with pytest.raises(ConfigurationError, match=message):
        SyncRateLimitedClient(bucket_rates=bucket_rates)
