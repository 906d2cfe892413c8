"""The mock API speaks each dialect so that the library's parser reads it back exactly."""

from __future__ import annotations

import httpx
import pytest

from ratelimited_client import parse_signal
from ratelimited_client.testing import MockAPI, MockAPIConfig
from ratelimited_client.testing._dialects import DIALECTS, go_duration

pytestmark = pytest.mark.anyio

WALL = 1_800_000_000.0  # the server's wall clock at t = 0 (whole second: Date is exact)
HEADER_DIALECTS = [name for name in DIALECTS if name != "retry-after"]


class Clock:
    def __init__(self, start: float) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t


async def first_answer(dialect: str, skew: float = 0.0) -> httpx.Response:
    config = MockAPIConfig(limit=20, window=10.0, dialect=dialect, clock_skew=skew)  # type: ignore[arg-type]
    app = MockAPI(config, clock=Clock(0.0), wall_clock=Clock(WALL))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://mock") as client:
        return await client.get("/x")


@pytest.mark.parametrize("dialect", HEADER_DIALECTS)
async def test_each_dialect_reads_back_as_limit_remaining_and_reset(dialect: str) -> None:
    """After one request of 20 per 10 s: limit 20, remaining 19, a reset 0.5 to 10 s out."""
    response = await first_answer(dialect)
    signal = parse_signal(response.status_code, response.headers, received_at=100.0, wall_now=WALL)
    requests = [q for q in signal.quotas if q.unit == "requests"]
    assert requests, f"{dialect}: no quota read from {dict(response.headers)}"
    quota = requests[0]
    assert (quota.limit, quota.remaining) == (20, 19)
    assert quota.reset_at is not None
    assert 100.0 + 0.5 <= quota.reset_at <= 100.0 + 10.0
    assert not signal.throttled


@pytest.mark.parametrize("dialect", HEADER_DIALECTS)
async def test_server_clock_skew_does_not_move_deadlines(dialect: str) -> None:
    """The server's clock 10 minutes ahead: the same deadlines, read against its Date."""
    plain = await first_answer(dialect)
    skewed = await first_answer(dialect, skew=600.0)
    deadlines = []
    for response in (plain, skewed):
        signal = parse_signal(
            response.status_code, response.headers, received_at=100.0, wall_now=WALL
        )
        deadlines.append([q.reset_at for q in signal.quotas])
    assert deadlines[0] == deadlines[1]


async def test_retry_after_dialect_sends_no_quota_headers() -> None:
    """The plain dialect says nothing on success."""
    response = await first_answer("retry-after")
    signal = parse_signal(response.status_code, response.headers, received_at=0.0, wall_now=WALL)
    assert signal.quotas == ()
    assert "date" in response.headers


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "0s"), (0.25, "250ms"), (1.5, "1.5s"), (62.5, "1m2.5s"), (360.0, "6m0s")],
)
def test_go_durations_are_spelled_like_go(seconds: float, text: str) -> None:
    """The OpenAI dialect's reset reads like Go's Duration.String()."""
    assert go_duration(seconds) == text
