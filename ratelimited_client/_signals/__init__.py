"""Rate-limit signals: one pure reading of a response's headers (and small JSON body).

``parse_signal`` runs every *dialect* over a response. A dialect is a plain
function that reads a :class:`SignalContext` and writes what it understood
into it: quota states (``add_quota``) and retry delays (``add_retry_delay``),
plus the server's should-retry override and whether the answer is a
throttling rejection. The context then combines them by the rules of the
reference (``shared/RATELIMIT-HEADERS.md`` §4.4):

* the largest explicit wait wins (``retry-after-ms``, ``Retry-After``, a
  Discord body ...); without one, a throttled answer waits for the latest
  reset among its exhausted quotas; a dialect's fallback comes last;
* absolute times are read against the response's ``Date`` header, so a client
  clock that is off does not matter, and every deadline is anchored at the
  moment the response arrived (which errs late, the safe side);
* nothing raises: malformed, negative, NaN, huge or comma-duplicated values
  get the safe reading (a negative limit or remaining means "not applicable",
  duplicates take the most conservative value, waits are clamped to
  ``[0, max_wait]`` and resets to ``[0, MAX_RESET]``), and a dialect that
  raises anyway is skipped and logged.

Everything here is pure: no clock is read, ``received_at`` (monotonic) and
``wall_now`` (epoch seconds) come from the caller.

No HTTP library is imported here: the headers are read through :class:`HeaderMap`,
which ``httpx.Headers`` and ``httpx2.Headers`` both satisfy by their shape.

The modules, by job:

* ``_model``: what a response says (``QuotaState``, ``RetryDirective``,
  ``RateLimitSignal``, ``MAX_RESET``);
* ``_server_clock``: the servers' clocks read from their ``Date`` (``ServerClock``,
  ``ServerClocks``, ``CLOCK_STEP``);
* ``_values``: numbers, Go durations, HTTP-dates and ISO 8601 times in header values;
* ``_header_map``: the ``HeaderMap`` protocol and ``PlainHeaders``, the view of a
  plain mapping or list of pairs;
* ``_context``: ``SignalContext``, what dialects read and write, and how it combines;
* ``_dialects_standard``, ``_dialects_x_ratelimit``, ``_dialects_vendor``: the
  built-in dialects, by family;
* ``_scan``: the one pass over the header lines that tells a quiet answer
  (``scan_headers``, ``quiet``);
* ``_parse``: ``parse_signal``, ``DEFAULT_DIALECTS`` and ``builtin_only``.
"""

from __future__ import annotations

from ._context import Dialect, SignalContext
from ._dialects_standard import ietf, retry_after, should_retry
from ._dialects_vendor import anthropic, azure, hubspot, openai, shopify, zendesk_tickets
from ._dialects_x_ratelimit import x_ratelimit
from ._header_map import HeaderMap, PlainHeaders, header_map
from ._model import MAX_RESET, QuotaState, RateLimitSignal, ResetKind, RetryDirective, Scope, Unit
from ._parse import DEFAULT_DIALECTS, builtin_only, parse_signal
from ._scan import HeaderScan, quiet, scan_headers
from ._server_clock import CLOCK_STEP, ServerClock, ServerClocks
from ._values import parse_go_duration

__all__ = [
    "CLOCK_STEP",
    "DEFAULT_DIALECTS",
    "MAX_RESET",
    "Dialect",
    "HeaderMap",
    "HeaderScan",
    "PlainHeaders",
    "QuotaState",
    "RateLimitSignal",
    "ResetKind",
    "RetryDirective",
    "Scope",
    "ServerClock",
    "ServerClocks",
    "SignalContext",
    "Unit",
    "anthropic",
    "azure",
    "builtin_only",
    "header_map",
    "hubspot",
    "ietf",
    "openai",
    "parse_go_duration",
    "parse_signal",
    "quiet",
    "retry_after",
    "scan_headers",
    "shopify",
    "should_retry",
    "x_ratelimit",
    "zendesk_tickets",
]
