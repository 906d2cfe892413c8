"""Private. What ``RateLimitedClient`` and ``SyncRateLimitedClient`` share for SDK
authors: class-level defaults and three methods to override.

An SDK subclasses a client, states its API's defaults once at class level and
overrides what its vendor does differently::

    class DocsClient(RateLimitedClient):
        default_base_url = "https://docs.example.com"
        default_rate = "50/minute"
        default_bucket_rates = {"writes": "10/minute"}

        def bucket_key(self, request):
            return "writes" if request.method in ("POST", "PUT", "DELETE") else "reads"

        def is_throttled(self, ctx):
            return ctx.status == 403 and ctx.body_get("code") == "RATE_LIMIT"
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ._call import ClientState
from ._http import origin_key
from ._options import DEFAULT_RETRY, ThrottleOptions, resolve_options
from ._signals import DEFAULT_DIALECTS

if TYPE_CHECKING:
    from collections.abc import Hashable, Mapping, Sequence

    from ._operations import OperationPolicy
    from ._retry import RetryPolicy
    from ._signals import Dialect, SignalContext
    from ._types import RateTypes

__all__ = ["ClientDefaults"]


class ClientDefaults:
    """Private mixin. Class-level defaults and the overridable SDK methods."""

    #: Used when ``base_url`` is not passed.
    default_base_url: ClassVar[str] = ""
    #: Used when ``rate`` is not passed (subclasses set their API's quota here).
    default_rate: ClassVar[RateTypes | None] = None
    #: Used when ``bucket_rates`` is not passed: buckets with a quota of their own.
    default_bucket_rates: ClassVar[Mapping[Hashable, RateTypes] | None] = None
    #: Used when ``max_concurrency`` is not passed.
    default_max_concurrency: ClassVar[int | None] = None
    #: Used when ``retry`` is not passed.
    default_retry: ClassVar[RetryPolicy | None] = DEFAULT_RETRY
    #: Used when ``dialects`` is not passed (``None``: every built-in dialect).
    default_dialects: ClassVar[Sequence[Dialect] | None] = None
    #: Used when ``operations`` is not passed: the API's per-operation policy, e.g.
    #: ``OperationPolicy.from_openapi(SPEC, write_bucket="writes")``.
    default_operations: ClassVar[OperationPolicy | None] = None

    # -- override these ---------------------------------------------------------------

    def bucket_key(self, request: Any) -> Hashable:
        """The quota bucket a request counts against (unless ``key=`` was passed).

        Default: one bucket per origin. Override to key by endpoint, e.g. a
        ``"search"`` bucket apart from ``"core"``; give such buckets their own
        quota with ``default_bucket_rates``.
        """
        return origin_key(request)

    def is_throttled(self, ctx: SignalContext) -> bool:
        """Whether this answer is a rate-limit rejection the built-in dialects miss
        (a vendor's 403 with a "rate limit" code, say). A ``True`` pauses the bucket
        like a 429 and makes the request retryable. Default: ``False``."""
        return False

    def read_rate_limit(self, ctx: SignalContext) -> None:
        """Read a vendor's own rate-limit headers or error body into ``ctx``
        (``ctx.add_quota``, ``ctx.add_retry_delay`` ...), after the built-in
        dialects. Default: nothing."""

    # -- wiring -----------------------------------------------------------------------

    def _sdk_dialect(self, ctx: SignalContext) -> None:
        if self.is_throttled(ctx):
            ctx.set_throttled()
            ctx.set_should_retry(True)
            ctx.recognised("sdk")
        self.read_rate_limit(ctx)

    def _overrides(self, name: str) -> bool:
        return getattr(type(self), name) is not getattr(ClientDefaults, name)

    def _choose_base_url(self, base_url: Any) -> Any:
        return base_url if base_url != "" else self.default_base_url

    def _build_state(self, options: ThrottleOptions, owner: str, *, sync: bool) -> ClientState:
        """The options passed, else the class's defaults; validated, naming the bad one.
        (A class default applies where the option was not passed at all: ``rate=None``
        passed means no rate, whatever the class says.)"""
        resolved = resolve_options(options, owner)
        for name, default in (
            ("rate", self.default_rate),
            ("bucket_rates", self.default_bucket_rates),
            ("max_concurrency", self.default_max_concurrency),
            ("retry", self.default_retry),
            ("dialects", self.default_dialects),
            ("operations", self.default_operations),
        ):
            if name not in options:
                resolved[name] = default  # type: ignore[literal-required]
        if self._overrides("is_throttled") or self._overrides("read_rate_limit"):
            chosen = resolved["dialects"]
            base = DEFAULT_DIALECTS if chosen is None else tuple(chosen)
            resolved["dialects"] = (*base, self._sdk_dialect)
        if "key" not in options and self._overrides("bucket_key"):
            resolved["key"] = self.bucket_key
        return ClientState.build(resolved, sync=sync)
