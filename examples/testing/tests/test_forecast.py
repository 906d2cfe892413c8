"""The user's own tests of ``forecast.py``, in test mode: a 429 with ``Retry-After:
30`` twice, then the answer. On real time this test would wait a minute; on
virtual time it takes milliseconds, and it can assert when each attempt went."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest
import respx
from forecast import forecast, make_client

if TYPE_CHECKING:
    from ratelimited_client.testing import VirtualTime

pytestmark = pytest.mark.anyio


async def test_forecast_waits_out_retry_after_twice(
    ratelimited_virtual_time: VirtualTime,
) -> None:
    busy = httpx.Response(429, headers={"Retry-After": "30"})
    with respx.mock(base_url="https://weather.example") as api:
        api.get("/forecast").mock(
            side_effect=[busy, busy, httpx.Response(200, json={"city": "Oslo", "high": 3})]
        )
        async with make_client() as client:
            assert await forecast(client, "Oslo") == {"city": "Oslo", "high": 3}

    vt = ratelimited_virtual_time
    # Three attempts, the two retries decided on the server's word.
    assert [sent.attempt for sent in vt.sent] == [1, 2, 3]
    assert vt.statuses == [429, 429, 200]
    assert len(vt.retries) == 2
    # No attempt before Retry-After had passed (a little jitter on top, at most 10 %).
    first, second, third = (sent.at for sent in vt.sent)
    assert 30.0 <= second - first <= 33.0
    assert 30.0 <= third - second <= 33.0
    assert [pause.source for pause in vt.pauses] == ["retry-after", "retry-after"]


async def test_a_quota_spent_elsewhere_gives_up_after_the_attempts(
    ratelimited_virtual_time: VirtualTime,
) -> None:
    """Always busy: three attempts over about a minute of virtual time, then the last
    429 comes back to the caller (``raise_for_status`` raises it)."""
    with respx.mock(base_url="https://weather.example") as api:
        api.get("/forecast").mock(return_value=httpx.Response(429, headers={"Retry-After": "30"}))
        async with make_client() as client:
            with pytest.raises(httpx.HTTPStatusError):
                await forecast(client, "Oslo")

    vt = ratelimited_virtual_time
    assert vt.statuses == [429, 429, 429]
    assert [event.reason for event in vt.gave_up] == ["attempts exhausted"]
    assert 60.0 <= vt.now <= 66.0
