"""Rate, Rate.parse, the limit specs and the ``rate`` option's normalisation."""

from __future__ import annotations

import dataclasses
import math

import pytest

from ratelimited_client import ConfigurationError, Rate, SlidingWindow, TokenBucket
from ratelimited_client._rate import normalize_rates


@pytest.mark.parametrize(
    ("text", "limit", "period"),
    [
        ("50/minute", 50, 60.0),
        ("5/s", 5, 1.0),
        ("1000/hour", 1000, 3600.0),
        ("10/2.5s", 10, 2.5),
        ("10/2.5", 10, 2.5),
        ("7/500ms", 7, 0.5),
        ("3/day", 3, 86400.0),
        ("100 per 5 minutes", 100, 300.0),
        ("  20 / 1 SEC ", 20, 1.0),
        ("1/.5s", 1, 0.5),
        ("60/min", 60, 60.0),
        ("2/hours", 2, 3600.0),
    ],
)
def test_parse_accepts_common_spellings(text: str, limit: int, period: float) -> None:
    """Every documented spelling parses to the same limit and period."""
    rate = Rate.parse(text)
    assert (rate.limit, rate.period) == (limit, period)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "5",
        "/s",
        "five/s",
        "0/s",
        "-1/s",
        "5/0s",
        "5/0",
        "5/xs",
        "5/fortnight",
        "5/nan",
        "5/-1s",
    ],
)
def test_parse_rejects_nonsense_naming_the_input(text: str) -> None:
    """Unparseable or invalid text raises ConfigurationError (a ValueError)."""
    with pytest.raises(ValueError, match=r"(?i)rate") as info:
        Rate.parse(text)
    assert isinstance(info.value, ConfigurationError)


def test_parse_error_names_the_text_and_unit() -> None:
    """The message quotes what was given, and for a bad unit which unit."""
    with pytest.raises(ConfigurationError, match=r"'5/fortnight'.*unknown unit 'fortnight'"):
        Rate.parse("5/fortnight")


def test_parse_rejects_non_strings() -> None:
    """Rate.parse(50) is a clear error, not a TypeError from re."""
    with pytest.raises(ConfigurationError, match="expects a string"):
        Rate.parse(50)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("limit", "period", "fragment"),
    [
        (0, 1.0, "limit"),
        (-3, 1.0, "limit"),
        (1.5, 1.0, "limit"),
        (True, 1.0, "limit"),
        (5, 0, "period"),
        (5, -1.0, "period"),
        (5, math.nan, "period"),
        (5, math.inf, "period"),
        (5, "1", "period"),
    ],
)
def test_constructor_validates(limit: object, period: object, fragment: str) -> None:
    """Zero, negative, NaN, infinite or mistyped values fail naming the field."""
    with pytest.raises(ConfigurationError, match=fragment):
        Rate(limit, period)  # type: ignore[arg-type]


def test_rate_is_an_immutable_hashable_value() -> None:
    """Equal rates compare and hash equal; fields cannot be reassigned."""
    rate = Rate(5, 1)
    assert rate == Rate.parse("5/s")
    assert hash(rate) == hash(Rate(5, 1.0))
    assert isinstance(rate.period, float)
    assert len({rate, Rate(5, 1.0), Rate(6, 1.0)}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        rate.limit = 6  # type: ignore[misc]


def test_rate_derived_values_and_text() -> None:
    """interval, per_second and str() say the same rate three ways."""
    rate = Rate.parse("50/minute")
    assert rate.interval == pytest.approx(1.2)
    assert rate.per_second == pytest.approx(50 / 60)
    assert str(rate) == "50/60s"
    assert repr(rate) == "Rate(limit=50, period=60.0)"
    # A learned period is a measurement: six significant digits of it.
    assert repr(Rate(20, 1.0400832210000033)) == "Rate(limit=20, period=1.04008)"


def test_token_bucket_defaults_burst_to_the_limit_and_validates() -> None:
    """TokenBucket takes a Rate or text; burst defaults to the limit; bad burst fails."""
    assert TokenBucket(Rate(10, 1)).burst == 10
    assert TokenBucket(Rate(10, 1), burst=3).rate == Rate(10, 1)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ConfigurationError, match="burst"):
            TokenBucket(Rate(10, 1), burst=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="TokenBucket rate"):
        TokenBucket(10)  # type: ignore[arg-type]


def test_normalize_rates_accepts_every_documented_form() -> None:
    """None, one rate, text, specs and lists all become a tuple of specs."""
    assert normalize_rates(None) == ()
    assert normalize_rates("5/s") == (SlidingWindow(Rate(5, 1)),)
    assert normalize_rates(Rate(5, 1)) == (SlidingWindow(Rate(5, 1)),)
    bucket = TokenBucket(Rate(5, 1), burst=2)
    assert normalize_rates([Rate(5, 1), "100/minute", bucket, Rate(5, 1)]) == (
        SlidingWindow(Rate(5, 1)),
        SlidingWindow(Rate(100, 60)),
        bucket,
    )


@pytest.mark.parametrize("value", [[], 5, [None], [["5/s"]], {"a": 1}])
def test_normalize_rates_rejects_other_values_naming_the_option(value: object) -> None:
    """Anything else fails naming the option."""
    with pytest.raises(ConfigurationError, match="rate"):
        normalize_rates(value)
