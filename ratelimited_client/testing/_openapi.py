"""The mock upstream's API, described in OpenAPI 3.0 (served at ``GET /openapi.json``).

Client generators (openapi-python-client, say) read it; ``examples/openapi``
holds a client generated from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._mock_api import MockAPIConfig

__all__ = ["openapi_document"]


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


def _limited(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": _json(schema)}


_THROTTLED: dict[str, Any] = {
    "description": "Over the quota: wait for Retry-After seconds.",
    "headers": {
        "Retry-After": {
            "description": "Seconds to wait before retrying.",
            "schema": {"type": "integer"},
        }
    },
    "content": _json("RateLimited"),
}


def openapi_document(config: MockAPIConfig) -> dict[str, Any]:
    """The OpenAPI 3.0 document for a mock upstream with ``config``."""
    quota = f"{config.limit} requests per {config.window:g} s"
    if config.write_limit is not None:
        quota += f"; writes {config.write_limit} per {config.window:g} s apart"
    security: list[dict[str, list[str]]] = [{"oauth2": []}] if config.oauth else []
    errors = {"401": _limited("Missing, unknown or expired token.", "Error"), "429": _THROTTLED}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Document notification service (mock)",
            "version": "1.0.0",
            "description": f"The rate-limited mock upstream of ratelimited_client: {quota}.",
        },
        "servers": [{"url": "/"}],
        "security": security,
        "paths": {
            "/documents": {
                "get": {
                    "operationId": "list_documents",
                    "summary": "List documents",
                    "responses": {
                        "200": _limited("Every document.", "DocumentList"),
                        **errors,
                    },
                },
                "post": {
                    "operationId": "create_document",
                    "summary": "Create a document",
                    "requestBody": {"required": True, "content": _json("NewDocument")},
                    "responses": {
                        "201": _limited("Created.", "Document"),
                        "422": _limited("Not a valid document.", "Error"),
                        **errors,
                    },
                },
            },
            "/documents/{document_id}": {
                "get": {
                    "operationId": "get_document",
                    "summary": "Get one document",
                    "parameters": [
                        {
                            "name": "document_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer"},
                        }
                    ],
                    "responses": {
                        "200": _limited("The document.", "Document"),
                        "404": _limited("No such document.", "Error"),
                        **errors,
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "oauth2": {
                    "type": "oauth2",
                    "flows": {"clientCredentials": {"tokenUrl": "/oauth/token", "scopes": {}}},
                }
            },
            "schemas": {
                "NewDocument": {
                    "type": "object",
                    "required": ["title"],
                    "properties": {
                        "title": {"type": "string"},
                        "body": {"type": "string", "default": ""},
                    },
                },
                "Document": {
                    "type": "object",
                    "required": ["id", "title", "body", "created_at"],
                    "properties": {
                        "id": {"type": "integer"},
                        "title": {"type": "string"},
                        "body": {"type": "string"},
                        "created_at": {
                            "type": "number",
                            "description": "Creation time, epoch seconds.",
                        },
                    },
                },
                "DocumentList": {
                    "type": "object",
                    "required": ["items", "count"],
                    "properties": {
                        "items": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Document"},
                        },
                        "count": {"type": "integer"},
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
                },
                "RateLimited": {
                    "type": "object",
                    "required": ["error", "retry_after"],
                    "properties": {
                        "error": {"type": "string"},
                        "retry_after": {"type": "number"},
                    },
                },
            },
        },
    }
