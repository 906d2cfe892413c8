"""Per-operation policy from an OpenAPI description: each operation's bucket, cost,
priority, route and retry safety, matched by method and path template, with the
user's overrides; through a client over ``respx`` on virtual time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from ratelimited_client import (
    ConfigurationError,
    Operation,
    OperationPolicy,
    RateLimitedClient,
    RetryPolicy,
)
from ratelimited_client.testing import virtual_time

API = "https://api.test"
EXAMPLE = Path(__file__).parents[2] / "examples" / "openapi" / "openapi.json"


def _spec(**paths: Any) -> dict[str, Any]:
    return {"openapi": "3.1.0", "servers": [{"url": "https://api.test/v1"}], "paths": paths}


SPEC = _spec(
    **{
        "/documents": {
            "get": {"operationId": "list_documents"},
            "post": {"operationId": "create_document"},
        },
        "/documents/{document_id}": {
            "get": {"operationId": "get_document"},
            "delete": {"operationId": "delete_document"},
        },
        "/documents/search": {
            "post": {"operationId": "search", "x-idempotent": True, "x-ratelimit-cost": 5},
        },
        "/reports/{year}/{month}": {"get": {"x-ratelimit-bucket": "reports"}},
    }
)


def test_the_examples_own_description_gives_its_operations() -> None:
    policy = OperationPolicy.from_openapi(EXAMPLE, write_bucket="writes")
    found = {(op.method, op.path): op for op in policy.operations}
    assert found[("POST", "/documents")] == Operation(
        "create_document", "POST", "/documents", bucket="writes", idempotent=False
    )
    assert found[("GET", "/documents/{document_id}")].idempotent
    assert policy.match("GET", "/documents/7") == found[("GET", "/documents/{document_id}")]
    assert policy.match("PATCH", "/documents/7") is None
    assert policy.match("GET", "/elsewhere") is None
    # A JSON text works as well as a file or a parsed document.
    assert OperationPolicy.from_openapi(EXAMPLE.read_text()).operations


def test_templates_match_past_the_servers_base_path_the_most_literal_first() -> None:
    policy = OperationPolicy.from_openapi(SPEC, write_bucket="writes")
    search = policy.match("POST", "/v1/documents/search")
    assert search is not None
    assert (search.operation_id, search.cost, search.idempotent, search.bucket) == (
        "search",
        5.0,
        True,  # the document's x-idempotent
        "writes",
    )
    created = policy.match("POST", "/v1/documents")
    assert created is not None
    assert (created.operation_id, created.idempotent) == ("create_document", False)
    deleted = policy.match("DELETE", "/v1/documents/12")
    assert deleted is not None
    assert (deleted.bucket, deleted.idempotent) == ("writes", True)
    report = policy.match("GET", "/v1/reports/2026/11")
    assert report is not None
    assert report.bucket == "reports"  # the document's x-ratelimit-bucket
    assert policy.match("GET", "/v1/reports/2026") is None  # a segment each


def test_the_users_overrides_win_and_are_checked() -> None:
    policy = OperationPolicy.from_openapi(
        SPEC,
        overrides={
            "create_document": {"priority": 5, "idempotent": True, "cost": 2},
            "GET /reports/{year}/{month}": {"bucket": "slow"},
        },
        idempotent_extension="x-safe",  # the document's x-idempotent is not it
    )
    created = policy.match("POST", "/v1/documents")
    assert created is not None
    assert (created.priority, created.idempotent, created.cost) == (5, True, 2.0)
    search = policy.match("POST", "/v1/documents/search")
    assert search is not None
    assert not search.idempotent
    report = policy.match("GET", "/v1/reports/1/2")
    assert report is not None
    assert report.bucket == "slow"


@pytest.mark.parametrize(
    ("document", "options", "match"),
    [
        ({"paths": {}}, {}, "not an OpenAPI 3 document"),
        ("{not json", {}, "is not JSON"),
        ({"openapi": "3.0.0"}, {}, "no 'paths'"),
        (SPEC, {"overrides": {"nope": {"cost": 2}}}, "names 'nope', which is no operationId"),
        (SPEC, {"overrides": {"search": {"speed": 2}}}, r"sets \['speed'\]"),
        (SPEC, {"overrides": {"search": {"cost": 0}}}, "must be a positive number"),
        (SPEC, {"overrides": {"search": {"idempotent": "yes"}}}, "must be True or False"),
        (
            _spec(**{"/x": {"get": {"x-ratelimit-priority": "high"}}}),
            {},
            "GET /x: x-ratelimit-priority must be an integer",
        ),
    ],
)
def test_a_bad_document_or_override_fails_clearly(
    document: Any, options: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        OperationPolicy.from_openapi(document, **options)
    with pytest.raises(ConfigurationError, match=r"^operations must be an OperationPolicy"):
        RateLimitedClient(operations=json.dumps(SPEC))  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_the_client_routes_prices_and_retries_by_operation() -> None:
    """A GET answered 503 is retried; a POST is not, unless the document says it is
    idempotent (or it carries a key); writes count against the write bucket, the
    search at its cost; a call's own extensions win over the policy."""
    policy = OperationPolicy.from_openapi(SPEC, write_bucket="writes")
    with respx.mock(base_url=API) as api, virtual_time():
        flaky = [httpx.Response(503), httpx.Response(200)]
        reads = api.get("/v1/documents").mock(side_effect=[*flaky, httpx.Response(200)])
        creates = api.post("/v1/documents").mock(side_effect=list(flaky))
        searches = api.post("/v1/documents/search").mock(side_effect=list(flaky))
        async with RateLimitedClient(
            base_url=API,
            rate="100/second",
            bucket_rates={"writes": "10/second"},
            operations=policy,
            retry=RetryPolicy(backoff=0.01),
        ) as client:
            assert (await client.get("/v1/documents")).status_code == 200
            assert (await client.post("/v1/documents", json={})).status_code == 503
            assert (await client.post("/v1/documents/search", json={})).status_code == 200
            own = {"ratelimit_key": "mine", "ratelimit_route": "custom"}
            await client.get("/v1/documents", extensions=own)
            buckets = client.statistics().buckets
    assert (reads.call_count, creates.call_count, searches.call_count) == (3, 1, 2)
    assert buckets["writes"].admitted == 1 + 2
    # The search costs 5: its retry did not fit beside the create and its first
    # attempt (1 + 5 + 5 > 10) and went a second later, when those had expired.
    assert buckets["writes"].used == 5
    assert buckets["mine"].admitted == 1


def test_an_sdk_states_its_operations_once() -> None:
    policy = OperationPolicy.from_openapi(SPEC, write_bucket="writes")

    class DocsClient(RateLimitedClient):
        default_base_url = API
        default_operations = policy

    assert DocsClient()._shared.operations is policy
    assert RateLimitedClient()._shared.operations is None
