"""Per-operation policy from an API's OpenAPI description: which bucket each
operation counts against, what it costs, its priority, and whether it is safe to
send twice.

``OperationPolicy.from_openapi(document)`` reads every operation (method and path
template, ``operationId``) of an OpenAPI 3 document; the client given it as
``operations=`` matches each request to its operation and sets, where the request
does not already say, its bucket (``ratelimit_key``), cost (``ratelimit_cost``),
priority (``ratelimit_priority``), route label (``ratelimit_route``: the template)
and retry safety (``ratelimit_idempotent``). Nothing in generated code changes.

Where each comes from, the first that says:

1. the user's ``overrides``, by ``operationId`` (or ``"METHOD /template"``);
2. the operation's own extensions in the document: ``x-ratelimit-bucket``,
   ``x-ratelimit-cost``, ``x-ratelimit-priority``, and the idempotency flag the
   user names (``idempotent_extension``, default ``x-idempotent``);
3. the defaults: writes (``POST``, ``PUT``, ``PATCH``, ``DELETE``) in
   ``write_bucket`` if one is given, else the client's key; cost 1; priority 0;
   idempotent for ``GET``, ``HEAD``, ``OPTIONS``, ``PUT``, ``DELETE``, ``TRACE``,
   and for a ``POST`` or ``PATCH`` only with the flag (or an idempotency key on
   the request, as always).
"""

from __future__ import annotations

import json
import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from ._errors import ConfigurationError
from ._hooks import ROUTE_EXTENSION
from ._options import COST_EXTENSION, KEY_EXTENSION
from ._priority import PRIORITY_EXTENSION
from ._rate import is_finite_number
from ._retry import IDEMPOTENT_EXTENSION, IDEMPOTENT_METHODS

if TYPE_CHECKING:
    from ._http import RequestView

__all__ = ["Operation", "OperationPolicy", "check_operations"]

_METHODS: Final = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_WRITES: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_PARAMETER: Final = re.compile(r"\{[^{}/]+\}")


@dataclass(frozen=True, slots=True)
class Operation:
    """What the policy says of one operation.

    Attributes:
        operation_id: its ``operationId`` (``None`` if the document gives none).
        method: ``"GET"``, ``"POST"``, ...
        path: its path template, ``"/documents/{document_id}"``.
        bucket: the bucket key it counts against (``None``: the client's key).
        cost: its cost in the bucket's quota units.
        priority: its place in the bucket's queue (higher sooner).
        idempotent: safe to send again after a failure that may have reached the
            server (a 5xx, a dropped answer).
    """

    operation_id: str | None
    method: str
    path: str
    bucket: Hashable | None = None
    cost: float = 1.0
    priority: int = 0
    idempotent: bool = False


class OperationPolicy:
    """The operations of one API and what each is (see the module). Build it with
    :meth:`from_openapi`; give it to a client as ``operations=``.

    .. versionadded:: 0.2
    """

    __slots__ = ("_base", "_by_method", "operations")

    def __init__(self, operations: list[Operation], *, base_path: str = "") -> None:
        self.operations = tuple(operations)
        self._base = base_path.rstrip("/")
        # Per method, the templates as patterns, the most literal first (so that
        # "/documents/search" wins over "/documents/{id}").
        self._by_method: dict[str, list[tuple[re.Pattern[str], Operation]]] = {}
        for op in sorted(operations, key=_specificity):
            self._by_method.setdefault(op.method, []).append((_pattern(op.path), op))

    @classmethod
    def from_openapi(
        cls,
        document: Mapping[str, Any] | str | Path,
        *,
        write_bucket: Hashable | None = None,
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
        idempotent_extension: str = "x-idempotent",
    ) -> OperationPolicy:
        """Read ``document`` (a parsed OpenAPI 3 document, its JSON text, or a path to
        a JSON file). ``overrides`` maps an ``operationId`` (or ``"POST /documents"``)
        to fields of :class:`Operation` (``bucket``, ``cost``, ``priority``,
        ``idempotent``).

        Raises:
            ConfigurationError: not an OpenAPI document, or an override naming no
                operation or no field.
        """
        spec = _load(document)
        paths = spec.get("paths")
        if not isinstance(paths, Mapping):
            raise ConfigurationError("the OpenAPI document has no 'paths' object")
        found: list[Operation] = []
        for template, item in paths.items():
            if not isinstance(item, Mapping):
                continue
            for method in _METHODS:
                raw = item.get(method)
                if isinstance(raw, Mapping):
                    op = _operation(
                        str(template), method.upper(), raw, write_bucket, idempotent_extension
                    )
                    found.append(op)
        found = _overridden(found, overrides or {})
        return cls(found, base_path=_base_path(spec))

    def match(self, method: str, path: str) -> Operation | None:
        """The operation a request of ``method`` to ``path`` is, or ``None``."""
        candidates = self._by_method.get(method.upper())
        if not candidates:
            return None
        if self._base and path.startswith(self._base):
            path = path[len(self._base) :] or "/"
        for pattern, op in candidates:
            if pattern.fullmatch(path):
                return op
        return None

    def apply(self, request: RequestView) -> Operation | None:
        """Put the request's operation's policy in its extensions, where the request
        does not say already (a call's own settings win). The operation, or ``None``."""
        op = self.match(request.method, request.url.path)
        if op is None:
            return None
        extensions = request.extensions
        if op.bucket is not None:
            extensions.setdefault(KEY_EXTENSION, op.bucket)
        if op.cost != 1.0:
            extensions.setdefault(COST_EXTENSION, op.cost)
        if op.priority:
            extensions.setdefault(PRIORITY_EXTENSION, op.priority)
        extensions.setdefault(ROUTE_EXTENSION, op.path)
        extensions.setdefault(IDEMPOTENT_EXTENSION, op.idempotent)
        return op

    def __repr__(self) -> str:
        return f"<OperationPolicy {len(self.operations)} operations base={self._base or '/'}>"


def check_operations(value: object) -> OperationPolicy | None:
    """The ``operations`` option: an ``OperationPolicy`` or ``None``."""
    if value is not None and not isinstance(value, OperationPolicy):
        raise ConfigurationError(
            "operations must be an OperationPolicy (OperationPolicy.from_openapi(...)) or "
            f"None, got {value!r}"
        )
    return value


def _load(document: Mapping[str, Any] | str | Path) -> Mapping[str, Any]:
    if isinstance(document, Mapping):
        spec: object = document
    else:
        text = document.read_text() if isinstance(document, Path) else document
        try:
            spec = json.loads(text)
        except ValueError as error:
            raise ConfigurationError(f"the OpenAPI document is not JSON: {error}") from None
    if not isinstance(spec, Mapping) or "openapi" not in spec:
        raise ConfigurationError("not an OpenAPI 3 document (no 'openapi' field)")
    return spec


def _base_path(spec: Mapping[str, Any]) -> str:
    """The path of the document's first server URL (``/v1`` of
    ``https://api.example.com/v1``): requests carry it, templates do not."""
    servers = spec.get("servers")
    if isinstance(servers, list) and servers and isinstance(servers[0], Mapping):
        url = servers[0].get("url")
        if isinstance(url, str):
            return urlsplit(url).path.rstrip("/")
    return ""


def _operation(
    template: str,
    method: str,
    raw: Mapping[str, Any],
    write_bucket: Hashable | None,
    idempotent_extension: str,
) -> Operation:
    operation_id = raw.get("operationId")
    name = operation_id if isinstance(operation_id, str) else f"{method} {template}"
    bucket = raw.get("x-ratelimit-bucket")
    if bucket is None and method in _WRITES:
        bucket = write_bucket
    return Operation(
        operation_id=operation_id if isinstance(operation_id, str) else None,
        method=method,
        path=template,
        bucket=bucket,
        cost=_number(raw.get("x-ratelimit-cost", 1.0), f"{name}: x-ratelimit-cost"),
        priority=_integer(raw.get("x-ratelimit-priority", 0), f"{name}: x-ratelimit-priority"),
        idempotent=method in IDEMPOTENT_METHODS or raw.get(idempotent_extension) is True,
    )


def _overridden(
    found: list[Operation], overrides: Mapping[str, Mapping[str, Any]]
) -> list[Operation]:
    allowed = {"bucket", "cost", "priority", "idempotent"}
    by_name = {op.operation_id: i for i, op in enumerate(found) if op.operation_id}
    by_name.update({f"{op.method} {op.path}": i for i, op in enumerate(found)})
    for name, fields in overrides.items():
        index = by_name.get(name)
        if index is None:
            raise ConfigurationError(
                f"overrides names {name!r}, which is no operationId or 'METHOD /path' of "
                "the document"
            )
        unknown = set(fields) - allowed
        if unknown:
            raise ConfigurationError(
                f"overrides[{name!r}] sets {sorted(unknown)}; the fields are {sorted(allowed)}"
            )
        changes = dict(fields)
        if "cost" in changes:
            changes["cost"] = _number(changes["cost"], f"overrides[{name!r}]['cost']")
        if "priority" in changes:
            changes["priority"] = _integer(changes["priority"], f"overrides[{name!r}]['priority']")
        if "idempotent" in changes and not isinstance(changes["idempotent"], bool):
            raise ConfigurationError(f"overrides[{name!r}]['idempotent'] must be True or False")
        found[index] = replace(found[index], **changes)
    return found


def _number(value: object, source: str) -> float:
    if not is_finite_number(value) or value <= 0:
        raise ConfigurationError(f"{source} must be a positive number, got {value!r}")
    return float(value)


def _integer(value: object, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{source} must be an integer, got {value!r}")
    return value


def _pattern(template: str) -> re.Pattern[str]:
    parts = _PARAMETER.split(template)
    return re.compile("[^/]+".join(re.escape(part) for part in parts))


def _specificity(op: Operation) -> tuple[int, int]:
    """Sort key: more literal characters first, then fewer parameters."""
    literal = len(_PARAMETER.sub("", op.path))
    return (-literal, len(_PARAMETER.findall(op.path)))
