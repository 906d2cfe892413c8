"""Invalid options fail at construction, naming the option; valid ones build."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ratelimited_client import (
    ConfigurationError,
    Rate,
    RateLimitedClient,
    RateLimitedTransport,
    SyncRateLimitedClient,
    SyncRateLimitedTransport,
)

BAD_OPTIONS: list[tuple[dict[str, Any], str]] = [
    ({"rate": "fast"}, "rate"),
    ({"rate": 5}, "rate"),
    ({"rate": []}, "rate"),
    ({"max_concurrency": 0}, "max_concurrency"),
    ({"max_concurrency": -2}, "max_concurrency"),
    ({"max_concurrency": 1.5}, "max_concurrency"),
    ({"max_concurrency": True}, "max_concurrency"),
    ({"max_queued": -1}, "max_queued"),
    ({"max_queued": "10"}, "max_queued"),
    ({"latency_proof": "yes"}, "latency_proof"),
    ({"key": "origin"}, "key"),
    ({"clock": object()}, "clock"),
    ({"rate": "fast"}, "^rate: cannot parse"),
    ({"bucket_rates": {"writes": "fast"}}, "bucket_rates"),
    ({"metrics": "prometheus"}, "metrics"),
    ({"retry": 3}, "retry"),
]


@pytest.mark.parametrize(("options", "name"), BAD_OPTIONS)
@pytest.mark.parametrize(
    "cls",
    [RateLimitedClient, RateLimitedTransport, SyncRateLimitedClient, SyncRateLimitedTransport],
)
def test_bad_option_fails_at_construction_naming_it(
    cls: type[Any], options: dict[str, Any], name: str
) -> None:
    """Client and transport reject the same bad values with the option's name."""
    with pytest.raises(ConfigurationError, match=name) as info:
        cls(**options)
    assert isinstance(info.value, ValueError)


def test_transport_rejects_a_non_transport() -> None:
    """Wrapping something that is not an async transport is a clear error."""
    with pytest.raises(ConfigurationError, match="transport"):
        RateLimitedTransport(httpx.HTTPTransport())  # type: ignore[arg-type]


def test_valid_options_build_without_an_event_loop() -> None:
    """Construction needs no running loop: nothing binds until first use."""
    client = RateLimitedClient(
        rate=[Rate(50, 60), "5/s"], max_concurrency=4, max_queued=0, latency_proof=True
    )
    stats = client.statistics()
    assert (stats.max_concurrency, stats.max_queued, stats.in_flight) == (4, 0, 0)
    assert "latency_proof=True" in repr(client)
    assert "sliding window 50/60s" in repr(client)


def test_subclass_defaults_apply_and_arguments_override() -> None:
    """SDK subclasses set class-level defaults; explicit arguments still win."""

    class DocsClient(RateLimitedClient):
        default_rate = "50/minute"
        default_max_concurrency = 3

    assert DocsClient().statistics().max_concurrency == 3
    assert "50/60s" in repr(DocsClient())
    assert "7/1s" in repr(DocsClient(rate="7/s"))
    assert DocsClient(max_concurrency=9).statistics().max_concurrency == 9


def test_defaults_are_values_not_identities() -> None:
    """A copy of the built-in dialects, or any subset, keeps the quiet path (silent
    answers are not parsed); a parser of your own turns it off. A new MonotonicClock
    is the real clock, for the sync client too."""
    from ratelimited_client import DEFAULT_DIALECTS
    from ratelimited_client._clock import MonotonicClock

    def mine(ctx: object) -> None:
        return None

    for dialects, quiet in (
        (None, True),
        (list(DEFAULT_DIALECTS), True),
        (list(reversed(DEFAULT_DIALECTS[:3])), True),
        ([*DEFAULT_DIALECTS, mine], False),
    ):
        client = RateLimitedClient(dialects=dialects)
        assert client._shared.builtin_dialects is quiet, dialects
    sync = SyncRateLimitedClient(clock=MonotonicClock())
    assert sync._shared.throttle._real_time
    sync.close()


@pytest.mark.parametrize(
    "cls",
    [RateLimitedClient, RateLimitedTransport, SyncRateLimitedClient, SyncRateLimitedTransport],
)
def test_the_options_are_declared_once_and_listed_by_every_constructor(cls: type[Any]) -> None:
    """Every constructor lists every throttle option in its signature (``help()``),
    typed and with its default, from the one declaration; an unknown name is the
    usual ``TypeError``."""
    import inspect

    from ratelimited_client._options import THROTTLE_DEFAULTS, ThrottleOptions

    parameters = inspect.signature(cls).parameters
    for name, default in THROTTLE_DEFAULTS.items():
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert parameters[name].default is default
        assert parameters[name].annotation
    assert set(ThrottleOptions.__annotations__) == set(THROTTLE_DEFAULTS)
    with pytest.raises(TypeError, match="unexpected keyword argument 'rat'"):
        cls(rat="5/s")


def test_a_class_default_applies_only_where_the_option_was_not_passed() -> None:
    class Api(RateLimitedClient):
        default_rate = "5/s"

    assert "5/1s" in repr(Api())
    assert "no local limit" in repr(Api(rate=None))  # passed: no rate, as asked
