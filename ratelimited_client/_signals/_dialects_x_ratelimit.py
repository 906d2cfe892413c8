"""The ``X-RateLimit-*`` family: the generic fields, GitHub, Discord, X (daily caps
included), Reddit, Jira, Zendesk and Azure DevOps."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._dialects_standard import _policy_window
from ._model import QuotaState

if TYPE_CHECKING:
    from ._context import SignalContext


def _mentions_rate_limit(ctx: SignalContext) -> bool:
    message = ctx.body_get("message")
    return isinstance(message, str) and "rate limit" in message.lower()


def x_ratelimit(ctx: SignalContext) -> None:
    """``X-RateLimit-*`` and ``X-Rate-Limit-*``: generic, GitHub, Discord, X, Reddit,
    Jira, Zendesk, Azure DevOps; resets read by magnitude."""
    for prefix in ("x-ratelimit-", "x-rate-limit-"):
        limit = ctx.number(f"{prefix}limit", conservative="min")
        remaining = ctx.number(f"{prefix}remaining", conservative="min")
        used = ctx.number(f"{prefix}used", conservative="max")
        if limit is None and remaining is None:
            continue
        if prefix == "x-ratelimit-" and (
            ctx.has("x-ratelimit-bucket") or ctx.has("x-ratelimit-reset-after")
        ):
            _discord(ctx, limit, remaining)
            continue
        github = prefix == "x-ratelimit-" and ctx.has("x-ratelimit-resource")
        if limit is None and remaining is not None and used is not None:
            limit = used + remaining  # Reddit sends no limit
        dialect = "github" if github else ("x" if prefix == "x-rate-limit-" else "x-ratelimit")
        ctx.add_quota(
            QuotaState(
                name=ctx.token("x-ratelimit-resource")
                or ctx.token("ratelimit-reason")
                or "default",
                dialect=dialect,
                limit=limit,
                remaining=remaining,
                reset_at=ctx.latest_reset(f"{prefix}reset"),
                reset_kind="window_end",
                window=_policy_window(", ".join(ctx.values(f"{prefix}limit")), limit),
                approximate=remaining is not None and not float(remaining).is_integer(),
            )
        )
        if github and ctx.status in (403, 429):
            _github_throttle(ctx, remaining)
    zendesk_limit = ctx.number("x-rate-limit", conservative="min")
    if zendesk_limit is not None and not ctx.has("x-rate-limit-limit"):
        ctx.add_quota(
            QuotaState(
                name="default",
                dialect="zendesk",
                limit=zendesk_limit,
                remaining=ctx.number("x-rate-limit-remaining", conservative="min"),
                reset_at=ctx.latest_reset("ratelimit-reset"),
                reset_kind="window_end",
            )
        )
    _x_daily(ctx)


def _github_throttle(ctx: SignalContext, remaining: float | None) -> None:
    """403 is a throttle only with evidence (reference edge case 11)."""
    evidence = remaining == 0 or ctx.has("retry-after") or _mentions_rate_limit(ctx)
    if not evidence:
        return
    ctx.set_throttled()
    message = ctx.body_get("message")
    secondary = isinstance(message, str) and "secondary" in message.lower()
    if secondary and not ctx.has("retry-after") and remaining != 0:
        ctx.add_retry_delay(60.0, "github-secondary", fallback=True)


def _discord(ctx: SignalContext, limit: float | None, remaining: float | None) -> None:
    after = ctx.number("x-ratelimit-reset-after", conservative="max")
    reset_at = (
        ctx.delta_deadline(after) if after is not None else ctx.latest_reset("x-ratelimit-reset")
    )
    ctx.add_quota(
        QuotaState(
            name=ctx.values("x-ratelimit-bucket")[0]
            if ctx.values("x-ratelimit-bucket")
            else "default",
            dialect="discord",
            limit=limit,
            remaining=remaining,
            reset_at=reset_at,
            reset_kind="window_end",
        )
    )
    body_wait = ctx.body_get("retry_after")
    if isinstance(body_wait, int | float) and not isinstance(body_wait, bool):
        ctx.add_retry_delay(float(body_wait), "discord-body")
    if ctx.status == 429:
        scope = ctx.token("x-ratelimit-scope")
        if ctx.token("x-ratelimit-global") == "true" or ctx.body_get("global") is True:
            ctx.set_throttled("origin")
        elif scope == "shared":
            ctx.set_throttled("request")  # a per-resource limit, not ours to pause for


def _x_daily(ctx: SignalContext) -> None:
    for who in ("app", "user"):
        prefix = f"x-{who}-limit-24hour-"
        limit = ctx.number(f"{prefix}limit", conservative="min")
        remaining = ctx.number(f"{prefix}remaining", conservative="min")
        if limit is None and remaining is None:
            continue
        ctx.add_quota(
            QuotaState(
                name=f"24hour-{who}",
                dialect="x",
                limit=limit,
                remaining=remaining,
                reset_at=ctx.latest_reset(f"{prefix}reset"),
                reset_kind="window_end",
                window=86400.0,
            )
        )
    problem = ctx.body_get("type")
    if isinstance(problem, str) and problem.endswith("/usage-capped"):
        ctx.set_terminal()
