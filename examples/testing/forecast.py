"""A user's code: a small client of a weather API that allows 60 requests a minute
and says ``429`` with ``Retry-After`` when it is busy. Its tests, on virtual time,
are in ``tests/test_forecast.py``."""

from __future__ import annotations

from typing import Any

from ratelimited_client import RateLimitedClient, RetryPolicy


def make_client(base_url: str = "https://weather.example") -> RateLimitedClient:
    """The client the application uses: its quota, and retries that honour the
    server's ``Retry-After`` (up to two minutes) with jittered backoff."""
    return RateLimitedClient(
        base_url=base_url,
        rate="60/minute",
        retry=RetryPolicy(attempts=3, max_retry_after=120.0),
    )


async def forecast(client: RateLimitedClient, city: str) -> dict[str, Any]:
    """Tomorrow's forecast for ``city``."""
    response = await client.get("/forecast", params={"city": city, "days": 1})
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data
