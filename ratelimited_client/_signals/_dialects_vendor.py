"""One vendor's fields each: OpenAI, Anthropic, Shopify, HubSpot, Zendesk's
tickets index and Azure Resource Manager."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from ._model import QuotaState
from ._values import _number, parse_go_duration

if TYPE_CHECKING:
    from ._context import SignalContext
    from ._model import Unit


_OPENAI_FAMILY: Final = re.compile(r"^x-ratelimit-limit-(?P<family>[a-z_\-]+)$")
_OPENAI_UNITS: Final[dict[str, Unit]] = {"requests": "requests", "tokens": "tokens"}


def openai(ctx: SignalContext) -> None:
    """OpenAI (and Groq, Azure OpenAI): requests and tokens families, Go-duration resets
    to full; ``-1`` means not applicable; ``insufficient_quota`` is terminal."""
    families = {
        m.group("family") for name in ctx.headers if (m := _OPENAI_FAMILY.match(name.lower()))
    }
    for family in sorted(families):
        reset = None
        for line in ctx.values(f"x-ratelimit-reset-{family}"):
            duration = parse_go_duration(line)
            if duration is None:
                deadline = ctx.reset_deadline(line)
            else:
                deadline = ctx.delta_deadline(duration)
            if deadline is not None:
                reset = deadline if reset is None else max(reset, deadline)
        ctx.add_quota(
            QuotaState(
                name=family,
                dialect="openai",
                unit=_OPENAI_UNITS.get(family, "tokens"),
                limit=ctx.number(f"x-ratelimit-limit-{family}", conservative="min"),
                remaining=ctx.number(f"x-ratelimit-remaining-{family}", conservative="min"),
                reset_at=reset,
                reset_kind="full_refill",
            )
        )
    if ctx.body_get("error", "code") == "insufficient_quota":
        ctx.set_terminal()


_ANTHROPIC: Final = re.compile(
    r"^anthropic-(?:ratelimit|priority)-(?P<family>requests|tokens|input-tokens|output-tokens)-limit$"
)
_ANTHROPIC_UNITS: Final[dict[str, Unit]] = {
    "requests": "requests",
    "tokens": "tokens",
    "input-tokens": "input_tokens",
    "output-tokens": "output_tokens",
}


def anthropic(ctx: SignalContext) -> None:
    """Anthropic: ``anthropic-ratelimit-*`` (and priority) families, RFC 3339 resets
    to full, token counts rounded."""
    for name in list(ctx.headers):
        match = _ANTHROPIC.match(name.lower())
        if match is None:
            continue
        base = name.lower()[: -len("-limit")]
        family = match.group("family")
        ctx.add_quota(
            QuotaState(
                name=base.removeprefix("anthropic-").replace("ratelimit-", ""),
                dialect="anthropic",
                unit=_ANTHROPIC_UNITS[family],
                limit=ctx.number(f"{base}-limit", conservative="min"),
                remaining=ctx.number(f"{base}-remaining", conservative="min"),
                reset_at=ctx.latest_reset(f"{base}-reset"),
                reset_kind="full_refill",
                approximate=family != "requests",
            )
        )


def shopify(ctx: SignalContext) -> None:
    """Shopify REST: ``X-Shopify-Shop-Api-Call-Limit: used/size`` (a leaky bucket)."""
    for line in ctx.values("x-shopify-shop-api-call-limit"):
        used_text, _, size_text = line.partition("/")
        used, size = _number(used_text), _number(size_text)
        if used is None or size is None:
            continue
        ctx.add_quota(
            QuotaState(
                name="default",
                dialect="shopify",
                limit=size,
                remaining=max(0.0, size - used),
                reset_kind="unknown",
            )
        )
        return


def hubspot(ctx: SignalContext) -> None:
    """HubSpot: a rolling window of ``-Interval-Milliseconds`` and a daily quota;
    ``policyName: DAILY`` is terminal."""
    interval = ctx.number("x-hubspot-ratelimit-interval-milliseconds", conservative="max")
    window = interval / 1000.0 if interval and interval > 0 else None
    limit = ctx.number("x-hubspot-ratelimit-max", conservative="min")
    remaining = ctx.number("x-hubspot-ratelimit-remaining", conservative="min")
    if limit is not None or remaining is not None:
        ctx.add_quota(
            QuotaState(
                name="rolling",
                dialect="hubspot",
                limit=limit,
                remaining=remaining,
                reset_at=None if window is None else ctx.delta_deadline(window),
                reset_kind="window_end",
                window=window,
            )
        )
    daily = ctx.number("x-hubspot-ratelimit-daily", conservative="min")
    daily_left = ctx.number("x-hubspot-ratelimit-daily-remaining", conservative="min")
    if daily is not None or daily_left is not None:
        ctx.add_quota(
            QuotaState(name="daily", dialect="hubspot", limit=daily, remaining=daily_left)
        )
    if ctx.body_get("policyName") == "DAILY":
        ctx.set_terminal()


def zendesk_tickets(ctx: SignalContext) -> None:
    """Zendesk's ``zendesk-ratelimit-tickets-index: total=N; remaining=N; resets=N``."""
    for line in ctx.values("zendesk-ratelimit-tickets-index"):
        fields = {}
        for part in line.split(";"):
            key, _, value = part.partition("=")
            number = _number(value)
            if number is not None:
                fields[key.strip().lower()] = number
        if "total" in fields or "remaining" in fields:
            resets = fields.get("resets")
            ctx.add_quota(
                QuotaState(
                    name="tickets-index",
                    dialect="zendesk",
                    limit=fields.get("total"),
                    remaining=fields.get("remaining"),
                    reset_at=None if resets is None else ctx.delta_deadline(resets),
                    reset_kind="window_end",
                )
            )


def azure(ctx: SignalContext) -> None:
    """Azure Resource Manager: ``x-ms-ratelimit-remaining-*`` counts (no limit, no reset),
    including the ``Policy;remaining`` list of ``x-ms-ratelimit-remaining-resource``."""
    for name in list(ctx.headers):
        lower = name.lower()
        if not lower.startswith("x-ms-ratelimit-remaining-"):
            continue
        suffix = lower.removeprefix("x-ms-ratelimit-remaining-")
        for line in ctx.values(lower):
            for part in line.split(","):
                policy, sep, value = part.rpartition(";")
                number = _number(value if sep else part)
                if number is not None:
                    ctx.add_quota(
                        QuotaState(
                            name=f"{suffix}:{policy.strip()}" if sep else suffix,
                            dialect="azure",
                            remaining=number,
                        )
                    )
