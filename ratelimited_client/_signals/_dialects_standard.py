"""The standard dialects: ``Retry-After`` and its relatives, the should-retry
overrides, and the IETF ``RateLimit`` draft in all its versions (GitLab's trio too)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from .._structured_fields import parse_dictionary, parse_list
from ._model import QuotaState
from ._values import _http_date, _number

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._context import SignalContext
    from ._model import Unit


def retry_after(ctx: SignalContext) -> None:
    """``Retry-After`` (seconds, decimals, three HTTP-date forms), ``retry-after-ms``,
    ``x-ms-retry-after-ms`` and MailerLite's ``X-RateLimit-Retry-After``."""
    for line in ctx.values("retry-after"):
        if any(c.isalpha() for c in line):
            moment = _http_date(line)  # a date holds a comma: never split it
            if moment is not None:
                ctx.add_retry_delay(moment - ctx.server_now, "retry-after(date)")
            continue
        for part in line.split(","):
            seconds = _number(part)
            if seconds is not None:
                ctx.add_retry_delay(seconds, "retry-after")
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        millis = ctx.number(name, conservative="max")
        if millis is not None:
            ctx.add_retry_delay(millis / 1000.0, name)
    seconds = ctx.number("x-ratelimit-retry-after", conservative="max")
    if seconds is not None:
        ctx.add_retry_delay(seconds, "x-ratelimit-retry-after")
    if ctx.status == 429:
        ctx.set_throttled()
    elif ctx.status in (503, 529) and ctx.has("retry-after"):
        ctx.set_throttled("origin")  # maintenance or overload: the whole host


def should_retry(ctx: SignalContext) -> None:
    """``x-should-retry`` (OpenAI, Anthropic) and ``Stripe-Should-Retry``; Stripe's
    ``lock_timeout`` 429 concerns one object, not the account."""
    for name in ("x-should-retry", "stripe-should-retry"):
        value = ctx.token(name)
        if value in ("true", "false"):
            ctx.set_should_retry(value == "true")
            ctx.recognised("should-retry")
    if ctx.status == 429 and ctx.body_get("error", "code") == "lock_timeout":
        ctx.set_throttled("request")
        ctx.recognised("stripe")


def _sf_lines(ctx: SignalContext, *names: str) -> str:
    return ", ".join(line for name in names for line in ctx.values(name))


def _policies(text: str) -> dict[str, dict[str, Any]]:
    items = parse_list(text) if text else None
    policies: dict[str, dict[str, Any]] = {}
    for value, params in items or ():
        if isinstance(value, str):
            policies[value] = params
    return policies


_IETF_UNITS: Final[dict[str, Unit]] = {
    "requests": "requests",
    "content-bytes": "content_bytes",
    "bytes": "content_bytes",
    "concurrent-requests": "concurrency",
}


def _int_param(params: Mapping[str, Any], key: str) -> float | None:
    value = params.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return float(value)


def _pk(params: Mapping[str, Any]) -> str | None:
    value = params.get("pk")
    if isinstance(value, bytes):
        return value.hex()
    return value if isinstance(value, str) else None


def ietf(ctx: SignalContext) -> None:
    """The IETF draft: ``-08+`` named policies (also ``Beta-`` and Cloudflare's
    ``Ratelimit``), the ``-07`` dictionary, and the split trio (``<= -06``),
    including GitLab's trio whose ``RateLimit-Reset`` is an epoch."""
    for prefix in ("", "beta-"):
        current = _sf_lines(ctx, f"{prefix}ratelimit")
        policy_text = _sf_lines(ctx, f"{prefix}ratelimit-policy")
        if current and _named(ctx, current, policy_text):
            continue
        if current and _dictionary_07(ctx, current, policy_text):
            continue
        if not current and policy_text:
            _named(ctx, "", policy_text)
    _trio(ctx)


def _named(ctx: SignalContext, current: str, policy_text: str) -> bool:
    items = parse_list(current) if current else []
    if items is None or (items and not any("r" in params for _, params in items)):
        return False
    policies = _policies(policy_text)
    seen: set[str] = set()
    for value, params in items:
        if not isinstance(value, str):
            continue
        seen.add(value)
        policy = policies.get(value, {})
        t = _int_param(params, "t")
        _add_named(ctx, value, policy, params, None if t is None else ctx.delta_deadline(t))
    for name, policy in policies.items():
        if name not in seen:
            _add_named(ctx, name, policy, {}, None)
    return True


def _add_named(
    ctx: SignalContext,
    name: str,
    policy: Mapping[str, Any],
    current: Mapping[str, Any],
    reset_at: float | None,
) -> None:
    unit = policy.get("qu", "requests")
    window = _int_param(policy, "w")
    ctx.add_quota(
        QuotaState(
            name=name,
            dialect="ietf",
            unit=_IETF_UNITS.get(unit, "resource_units") if isinstance(unit, str) else "requests",
            limit=_int_param(policy, "q"),
            remaining=_int_param(current, "r"),
            reset_at=reset_at,
            reset_kind="more_available" if reset_at is not None else "unknown",
            window=window if window else None,
            partition=_pk(current) or _pk(policy),
        )
    )


def _policy_window(policy_text: str, limit: float | None) -> float | None:
    """The window of the ``limit;w=`` policy item matching ``limit`` (else the longest)."""
    windows: list[tuple[float, float]] = []
    for value, params in parse_list(policy_text) or ():
        w = _int_param(params, "w")
        if isinstance(value, int) and not isinstance(value, bool) and w:
            windows.append((float(value), w))
    matching = [w for q, w in windows if q == limit]
    return max(matching or [w for _, w in windows], default=None)


def _dictionary_07(ctx: SignalContext, current: str, policy_text: str) -> bool:
    members = parse_dictionary(current)
    if not members or "limit" not in members:
        return False
    fields = {k: _int_param({k: v[0]}, k) for k, v in members.items()}
    reset = fields.get("reset")
    limit = fields.get("limit")
    ctx.add_quota(
        QuotaState(
            name="default",
            dialect="ietf-07",
            limit=limit,
            remaining=fields.get("remaining"),
            reset_at=None if reset is None else ctx.delta_deadline(reset),
            reset_kind="window_end",
            window=_policy_window(policy_text, limit),
        )
    )
    return True


def _trio(ctx: SignalContext) -> None:
    limit_lines = ctx.values("ratelimit-limit")
    remaining = ctx.number("ratelimit-remaining", conservative="min")
    if not limit_lines and remaining is None:
        return
    gitlab = any(
        ctx.has(h) for h in ("ratelimit-name", "ratelimit-observed", "ratelimit-resettime")
    )
    limit = ctx.number("ratelimit-limit", conservative="min")
    reset_at = ctx.latest_reset("ratelimit-reset")  # by magnitude: GitLab sends an epoch
    if reset_at is None and gitlab:
        moments = [m for line in ctx.values("ratelimit-resettime") if (m := _http_date(line))]
        reset_at = ctx.absolute_deadline(max(moments)) if moments else None
    window = _policy_window(", ".join([*limit_lines, *ctx.values("ratelimit-policy")]), limit)
    ctx.add_quota(
        QuotaState(
            name=ctx.token("ratelimit-name") or "default",
            dialect="gitlab" if gitlab else "ietf-trio",
            limit=limit,
            remaining=remaining,
            reset_at=reset_at,
            reset_kind="window_end",
            window=window,
        )
    )
