"""A ``redis-server`` of the benchmarks' own: on a free 127.0.0.1 port, in a temporary
directory, no persistence, stopped when the block ends."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from typing import TYPE_CHECKING

import redis

if TYPE_CHECKING:
    from collections.abc import Iterator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def local_redis() -> Iterator[str]:
    """``with local_redis() as url:`` a running server's ``redis://`` URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is missing (python3 dev.py test installs it)")
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        server = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", directory],
            stdout=subprocess.DEVNULL,
        )
        try:
            url = f"redis://127.0.0.1:{port}/0"
            probe = redis.Redis.from_url(url)
            for _ in range(100):
                try:
                    probe.ping()
                    break
                except redis.exceptions.ConnectionError:
                    time.sleep(0.05)
            probe.close()
            yield url
        finally:
            server.terminate()
            server.wait(10)
