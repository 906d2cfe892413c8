"""``parse_signal``: the built-in dialects, in order, run over one response."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from ._context import SignalContext
from ._dialects_standard import ietf, retry_after, should_retry
from ._dialects_vendor import anthropic, azure, hubspot, openai, shopify, zendesk_tickets
from ._dialects_x_ratelimit import x_ratelimit
from ._header_map import header_map
from ._model import RateLimitSignal
from ._scan import quiet, scan_headers

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from ._context import Dialect
    from ._header_map import HeaderMap
    from ._server_clock import ServerClock

logger = logging.getLogger("ratelimited_client")

#: Every built-in dialect, in the order they run.
DEFAULT_DIALECTS: tuple[Dialect, ...] = (
    retry_after,
    should_retry,
    ietf,
    x_ratelimit,
    openai,
    anthropic,
    shopify,
    hubspot,
    zendesk_tickets,
    azure,
)

_BUILTIN: Final = frozenset(DEFAULT_DIALECTS)


def builtin_only(dialects: Iterable[Dialect]) -> bool:
    """Every dialect is a built-in one: an answer that ``quiet`` finds silent says
    nothing any of them reads (any subset or reordering of the defaults qualifies,
    ``list(DEFAULT_DIALECTS)`` included; one parser of your own does not)."""
    return all(dialect in _BUILTIN for dialect in dialects)


def parse_signal(
    status: int,
    headers: HeaderMap | Mapping[str, str] | Sequence[tuple[str, str]],
    *,
    body: object = None,
    received_at: float,
    wall_now: float,
    max_wait: float = 300.0,
    dialects: Iterable[Dialect] = DEFAULT_DIALECTS,
    server_clock: ServerClock | None = None,
) -> RateLimitSignal:
    """Read one response's rate-limit signals. Pure; never raises for any header value.

    Args:
        status: the HTTP status.
        headers: the response headers: ``httpx.Headers``, ``httpx2.Headers`` (any
            :class:`HeaderMap`), or a plain mapping or list of ``(name, value)`` pairs,
            read with names case-insensitive.
        body: the decoded JSON body of a small error response (``None`` otherwise).
        received_at: when the headers arrived, monotonic seconds.
        wall_now: the client's wall clock then (epoch seconds); used only
            when the response has no usable ``Date``.
        max_wait: the longest wait allowed; longer ones are capped and flagged.
        dialects: the parsers to run (default :data:`DEFAULT_DIALECTS`).
        server_clock: the server's clock as estimated from earlier answers (the
            client keeps one per origin); without it, each ``Date`` is read alone.

    .. versionadded:: 0.1
    """
    headers = header_map(headers)
    scan = scan_headers(headers)
    dialects = tuple(dialects)
    if builtin_only(dialects) and quiet(status, body, scan):
        return RateLimitSignal(
            status=status,
            received_at=received_at,
            quotas=(),
            retry=None,
            throttled=False,
            dialects=(),
            cached=scan.cached,
        )
    ctx = SignalContext(
        status,
        headers,
        body=body,
        received_at=received_at,
        wall_now=wall_now,
        max_wait=max_wait,
        # A cached answer's Date is from when it was made: no reading of the clock now.
        server_clock=None if scan.cached else server_clock,
    )
    for dialect in dialects:
        try:
            dialect(ctx)
        except Exception:  # a dialect's bug never breaks a request
            logger.debug("rate-limit dialect %r failed", dialect, exc_info=True)
    return ctx._finish(cached=scan.cached)
