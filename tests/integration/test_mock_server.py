"""The mock upstream served by uvicorn on 127.0.0.1: real sockets, real concurrency."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import anyio
import httpx
import pytest

from ratelimited_client.testing import MockAPIConfig, MockAPIServer

pytestmark = pytest.mark.anyio


async def test_concurrent_burst_is_limited_exactly() -> None:
    """8 concurrent requests against 5 per second: exactly 5 × 200 and 3 × 429."""
    with MockAPIServer(MockAPIConfig(limit=5, window=1.0)) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            statuses: list[int] = []
            retry_after: list[str] = []

            async def one(i: int) -> None:
                response = await client.get(f"/n/{i}")
                statuses.append(response.status_code)
                if response.status_code == 429:
                    retry_after.append(response.headers["retry-after"])

            async with anyio.create_task_group() as tg:
                for i in range(8):
                    tg.start_soon(one, i)
            stats = (await client.get("/__stats")).json()
    assert sorted(statuses) == [200] * 5 + [429] * 3
    assert retry_after == ["1"] * 3
    assert (stats["received"], stats["admitted"], stats["rejected"]) == (8, 5, 3)
    assert server.stats().max_received_in_window == 8


async def test_latency_delays_requests_before_they_are_counted() -> None:
    """latency=(0.05, 0.05): every response takes at least 50 ms."""
    with MockAPIServer(MockAPIConfig(limit=10, latency=(0.05, 0.05))) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            started = anyio.current_time()
            response = await client.get("/slow")
            elapsed = anyio.current_time() - started
    assert response.status_code == 200
    assert elapsed >= 0.05
    assert server.stats().max_in_flight == 1


def test_stop_releases_the_port_and_ends_the_thread() -> None:
    """After stop() the port can be bound again and no server thread is left."""
    server = MockAPIServer()
    server.start()
    port, thread = server.port, server._thread
    assert thread is not None
    assert thread.is_alive()
    server.stop()
    assert not thread.is_alive()
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
    server.stop()  # idempotent


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.1", "example.com", "192.168.1.1"])  # noqa: S104
def test_only_loopback_hosts_are_served(host: str) -> None:
    """The mock API never listens beyond this machine."""
    with pytest.raises(ValueError, match="loopback"):
        MockAPIServer(host=host)


def test_url_needs_a_started_server() -> None:
    """Asking for the URL before start is a clear error."""
    with pytest.raises(RuntimeError, match="not started"):
        _ = MockAPIServer().url


def test_command_line_help_and_validation() -> None:
    """`python -m ratelimited_client.testing` documents itself and rejects bad values."""
    help_run = subprocess.run(
        [sys.executable, "-m", "ratelimited_client.testing", "serve", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert help_run.returncode == 0
    assert "--limit" in help_run.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "ratelimited_client.testing", "serve", "--limit", "0"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert bad.returncode == 2
    assert "limit must be a positive integer" in bad.stderr


def test_command_line_serves_and_reports() -> None:
    """`serve --port 0` prints its URL, answers, and prints stats when interrupted."""
    command = [sys.executable, "-m", "ratelimited_client.testing", "serve", "--port", "0"]
    # The context manager closes the pipes whatever happens (an unclosed pipe found by
    # the collector during a later test fails that test instead).
    with subprocess.Popen(
        [*command, "--limit", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            url = first.split()[2]
            assert url.startswith("http://127.0.0.1:")
            assert httpx.get(f"{url}/a", timeout=10).status_code == 200
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=60)  # a loaded machine starts slowly
        finally:
            process.kill()
    assert '"received": 1' in out, err[-3000:]
