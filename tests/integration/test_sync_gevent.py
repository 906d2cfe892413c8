"""The sync client under gevent (what Locust runs): with the standard library patched,
its waits are greenlet switches, so 50 greenlets share one quota and a heartbeat
greenlet keeps beating while they wait."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ratelimited_client.testing.pytest_plugin import MockAPIServerFactory

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    from gevent import monkey

    monkey.patch_all()

    import json, sys, time
    import gevent
    from ratelimited_client import Rate, SyncRateLimitedClient

    url = sys.argv[1]
    statuses, lateness = [], []
    done = False

    def heartbeat():
        while not done:
            asked = time.monotonic()
            gevent.sleep(0.01)
            lateness.append(time.monotonic() - asked - 0.01)

    with SyncRateLimitedClient(base_url=url, rate=Rate(20, 1.0)) as client:
        beat = gevent.spawn(heartbeat)
        started = time.monotonic()
        jobs = [
            gevent.spawn(lambda i=i: statuses.append(client.get(f"/items/{i}").status_code))
            for i in range(60)
        ]
        gevent.joinall(jobs, timeout=30)
        elapsed = time.monotonic() - started
        done = True
        beat.join(1)
    print(json.dumps({"statuses": statuses, "elapsed": elapsed, "late": max(lateness)}))
    """
)


def test_fifty_greenlets_share_one_quota_and_the_hub_stays_responsive(
    mock_api_server: MockAPIServerFactory,
) -> None:
    server = mock_api_server(limit=20, window=1.0)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, server.url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    stats = server.stats()
    assert outcome["statuses"] == [200] * 60
    assert (stats.rejected, stats.received) == (0, 60)
    assert stats.max_received_in_window <= 20
    # Never faster than the quota allows; the ceiling is a loose sanity bound.
    assert 2.0 <= outcome["elapsed"] <= 2.0 * 1.5
    # Waiting in the throttle never blocks the hub: a blocking wait would hold the
    # heartbeat for the whole 1 s period. On a quiet machine it is late by a burst's
    # CPU work (a few ms); the bound leaves room for a loaded scheduler and still
    # tells a blocked hub (>= 1 s) apart.
    assert outcome["late"] < 0.5
