"""docservice: a small, complete SDK for the document notification service.

The service is the mock upstream bundled with ratelimited_client
(``python -m ratelimited_client.testing serve --oauth --write-limit 10``). The
SDK shows the pattern for building one on ``RateLimitedClient``:

* the API's quota stated once, at class level (``default_rate``, a stricter
  ``default_bucket_rates["writes"]``), and the bucket chosen per request
  (``bucket_key``);
* OAuth 2.0 client credentials, refreshed once however many calls need it;
* typed methods returning typed objects and raising typed errors, each naming
  its route template for metrics.

Usage::

    async with DocServiceClient.connect(URL, client_id="app", client_secret=SECRET) as docs:
        created = await docs.create_document("Q3 report", "numbers")
        again = await docs.get_document(created.id)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ratelimited_client import OAuth2ClientCredentials, Rate, RateLimitedClient

if TYPE_CHECKING:
    from collections.abc import Hashable, Mapping

    import httpx

    from ratelimited_client import RateTypes

__all__ = [
    "DocServiceClient",
    "DocServiceError",
    "Document",
    "DocumentNotFoundError",
    "InvalidDocumentError",
]

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True, slots=True)
class Document:
    """A document as the service stores it."""

    id: int
    title: str
    body: str
    created_at: float

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Document:
        return cls(
            id=int(data["id"]),
            title=str(data["title"]),
            body=str(data["body"]),
            created_at=float(data["created_at"]),
        )


class DocServiceError(Exception):
    """The service answered with an error this SDK does not map to a result."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"document service answered {status}: {detail}")
        self.status = status
        self.detail = detail


class DocumentNotFoundError(DocServiceError):
    """No document with that id."""


class InvalidDocumentError(DocServiceError):
    """The service refused the document (422)."""


class DocServiceClient(RateLimitedClient):
    """The document service's client: throttled, retried, authenticated, typed.

    Its quota (50 requests a minute, writes 10 a minute in a bucket of their
    own) is the class default; pass ``rate=`` / ``bucket_rates=`` to override,
    and any other ``RateLimitedClient`` option as usual.
    """

    default_rate: ClassVar[RateTypes | None] = Rate(50, 60.0)
    default_bucket_rates: ClassVar[Mapping[Hashable, RateTypes] | None] = {"writes": Rate(10, 60.0)}

    @classmethod
    def connect(
        cls, base_url: str, *, client_id: str, client_secret: str, **options: Any
    ) -> DocServiceClient:
        """A client for the service at ``base_url``, with OAuth at ``/oauth/token``."""
        auth = OAuth2ClientCredentials(
            f"{base_url.rstrip('/')}/oauth/token", client_id=client_id, client_secret=client_secret
        )
        return cls(base_url=base_url, auth=auth, **options)

    def bucket_key(self, request: httpx.Request) -> Hashable:
        """Writes count against their own, stricter bucket; everything else is a read."""
        return "writes" if request.method in WRITES else "reads"

    # -- typed methods --------------------------------------------------------------

    async def list_documents(self) -> list[Document]:
        response = await self.get("/documents", extensions={"ratelimit_route": "/documents"})
        data = _checked(response)
        return [Document.from_json(item) for item in data["items"]]

    async def get_document(self, document_id: int) -> Document:
        response = await self.get(
            f"/documents/{int(document_id)}",
            extensions={"ratelimit_route": "/documents/{id}"},
        )
        return Document.from_json(_checked(response))

    async def create_document(self, title: str, body: str = "") -> Document:
        response = await self.post(
            "/documents",
            json={"title": title, "body": body},
            extensions={"ratelimit_route": "/documents"},
        )
        return Document.from_json(_checked(response))


def _checked(response: httpx.Response) -> dict[str, Any]:
    """The JSON body of a success, or the matching typed error."""
    try:
        data = response.json()
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    if response.is_success:
        return data
    detail = str(data.get("detail") or data.get("error") or response.reason_phrase)
    if response.status_code == 404:
        raise DocumentNotFoundError(404, detail)
    if response.status_code == 422:
        raise InvalidDocumentError(422, detail)
    raise DocServiceError(response.status_code, detail)
