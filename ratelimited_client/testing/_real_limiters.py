"""Real rate limiters, off the shelf, on 127.0.0.1: nginx ``limit_req`` and slowapi.

The library is judged against software nobody on this project wrote. Each class
here starts one such limiter on a free loopback port, as its users deploy it,
and reports what it saw from its own records (nginx's access log; a recording
wrapper around the slowapi app), so a test or a benchmark can hold a client to
the same bounds as against the bundled mock. Their quirks are facts of the
world and are left alone: nginx sends a bare 429 and takes no burst unless
told; slowapi pads ``X-RateLimit-Reset`` by one second, stamps ``Retry-After``
on every answer, and is served by uvicorn with its cached ``Date`` header.

Both serve ``GET /items/{n}`` under the limit (one bucket for every ``n``), and
an unlimited ``GET /__health``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess  # nosec B404
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx

from ._server import ThreadedServer

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping
    from types import TracebackType
    from typing import Self

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]

__all__ = ["LimiterRecord", "NginxLimiter", "SlowapiLimiter", "nginx_binary"]

_START_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class LimiterRecord:
    """What a real limiter saw: ``(arrival time in seconds, status)`` per limited
    request, in arrival order (one clock per limiter; only differences matter)."""

    arrivals: tuple[tuple[float, int], ...]

    @property
    def received(self) -> int:
        return len(self.arrivals)

    @property
    def rejected(self) -> int:
        """Answers with status 429."""
        return sum(1 for _, status in self.arrivals if status == 429)

    @property
    def admitted(self) -> int:
        return sum(1 for _, status in self.arrivals if status < 400)

    def max_admitted_in(self, window: float) -> int:
        """The most admitted requests within any half-open interval of ``window`` s."""
        times = [at for at, status in self.arrivals if status < 400]
        best, first = 0, 0
        for last, at in enumerate(times):
            while at - times[first] >= window:
                first += 1
            best = max(best, last - first + 1)
        return best


def nginx_binary() -> str | None:
    """The nginx executable, if installed (Debian puts it in /usr/sbin)."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_NGINX_CONF = """\
worker_processes 1;
{user}pid nginx.pid;
error_log error.log warn;
events {{ worker_connections 4096; }}
http {{
    log_format arrivals '$msec $status $request_uri';
    access_log off;
    client_body_temp_path tmp/client_body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    default_type application/json;
    keepalive_requests 100000;
    limit_req_zone $server_port zone=quota:1m rate={rate}r/s;
    limit_req_status 429;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root html;
        location = /__health {{ return 204; }}
        location /items/ {{
            access_log access.log arrivals;
            limit_req zone=quota{burst};
            try_files /item.json =404;
        }}
    }}
}}
"""


class NginxLimiter:
    """nginx with ``limit_req``, as deployed: a leaky bucket at ``rate`` requests per
    second, ``burst`` extra taken at once with ``nodelay`` (``burst=0``: one request
    per ``1/rate`` s, anything sooner rejected), a bare 429 with no header at all.

    Usage::

        with NginxLimiter(rate=20) as nginx:
            ...  # GET nginx.url + "/items/1"
            assert nginx.record().rejected == 0

    Needs the ``nginx`` binary (Debian's ``nginx`` package; ``dev.py`` installs it
    where missing).
    """

    def __init__(self, rate: int, *, burst: int = 0) -> None:
        if rate < 1:
            raise ValueError(f"rate must be a whole number of requests per second >= 1, got {rate}")
        if burst < 0:
            raise ValueError(f"burst must be >= 0, got {burst}")
        self.rate = rate
        self.burst = burst
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("NginxLimiter is not started")
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> None:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed (Debian: apt-get install nginx)")
        root = Path(tempfile.mkdtemp(prefix="rlc-nginx-"))
        root.chmod(0o755)  # nginx's workers drop to an unprivileged user
        (root / "html").mkdir(mode=0o755)
        (root / "tmp").mkdir(mode=0o755)
        (root / "html" / "item.json").write_text('{"ok": true}\n')
        self._dir, self._port = root, _free_port()
        burst = f" burst={self.burst} nodelay" if self.burst else ""
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = _NGINX_CONF.format(user=user, rate=self.rate, port=self._port, burst=burst)
        (root / "nginx.conf").write_text(conf)
        # The installed nginx, with the config just written (no shell, no user input).
        self._process = subprocess.Popen(  # noqa: S603  # nosec B603
            [binary, "-p", f"{root}/", "-c", "nginx.conf", "-e", "stderr", "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        process = self._process
        assert process is not None  # noqa: S101 - started just before
        while True:
            if process.poll() is not None:
                error = process.stderr.read().decode(errors="replace") if process.stderr else ""
                self.stop()
                raise RuntimeError(f"nginx exited at start: {error.strip()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/__health", timeout=1.0).status_code == 204:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nginx did not start within {_START_TIMEOUT} s")
            time.sleep(0.02)

    def record(self) -> LimiterRecord:
        """The limited requests so far, from nginx's access log (``$msec``: 1 ms grain)."""
        if self._dir is None:
            raise RuntimeError("NginxLimiter is not started")
        log = self._dir / "access.log"
        arrivals: list[tuple[float, int]] = []
        if log.exists():
            for line in log.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 2:
                    arrivals.append((float(parts[0]), int(parts[1])))
        # nginx logs a request when it ends; order by its (cached, 1 ms) clock.
        arrivals.sort(key=lambda item: item[0])
        return LimiterRecord(tuple(arrivals))

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGQUIT)  # graceful: finish and exit
                try:
                    process.wait(5.0)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5.0)
            if process.stderr is not None:
                process.stderr.close()
        root, self._dir = self._dir, None
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not started"
        burst = f" burst={self.burst} nodelay" if self.burst else ""
        return f"<NginxLimiter {where} rate={self.rate}r/s{burst}>"


class _Recorder:
    """Private. Wraps an ASGI app; records ``(time.time(), status)`` of every request
    under ``/items/``, as the server answered it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._arrivals: list[tuple[float, int]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith("/items/"):
            await self.app(scope, receive, send)
            return
        arrived = time.time()

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                with self._lock:
                    self._arrivals.append((arrived, int(message["status"])))
            await send(message)

        await self.app(scope, receive, recording_send)

    def record(self) -> LimiterRecord:
        with self._lock:
            return LimiterRecord(tuple(sorted(self._arrivals)))


Strategy = Literal["moving-window", "fixed-window"]


def slowapi_app(limit: str, strategy: Strategy = "moving-window") -> Any:
    """A FastAPI app limited by slowapi as its documentation sets it up, with headers
    on and one bucket for the endpoint (``key_style="endpoint"``; slowapi's default
    keys every distinct path separately)."""
    from fastapi import FastAPI, Request, Response
    from slowapi import Limiter, _rate_limit_exceeded_handler
    from slowapi.errors import RateLimitExceeded
    from slowapi.util import get_remote_address

    limiter = Limiter(
        key_func=get_remote_address,
        headers_enabled=True,
        strategy=strategy,
        key_style="endpoint",
        storage_uri="memory://",
    )
    app = FastAPI()
    app.state.limiter = limiter
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]

    async def item(request: Any, response: Any, n: Any) -> dict[str, int]:
        return {"n": n}

    async def health() -> None:
        return None

    # FastAPI reads parameter types from the annotations, which this module's
    # ``from __future__ import annotations`` turns into names it cannot resolve here.
    item.__annotations__ = {"request": Request, "response": Response, "n": int}
    health.__annotations__ = {"return": None}
    app.get("/items/{n}")(limiter.limit(limit)(item))
    app.get("/__health", status_code=204)(health)
    return app


class SlowapiLimiter(ThreadedServer):
    """A FastAPI app limited by slowapi (moving or fixed window), served by uvicorn
    with its defaults (its own cached ``Date`` header) in a background thread.

    Usage::

        with SlowapiLimiter("20/second") as api:
            ...
            assert api.record().max_admitted_in(1.0) <= 20

    Needs ``slowapi`` and ``fastapi`` (the ``limiters`` extra).
    """

    _kind = "slowapi server"

    def __init__(self, limit: str, *, strategy: Strategy = "moving-window") -> None:
        self.limit = limit
        self.strategy = strategy
        self._recorder = _Recorder(slowapi_app(limit, strategy))
        super().__init__(self._recorder, date_header=True)

    def record(self) -> LimiterRecord:
        """The limited requests so far, as the app answered them."""
        return self._recorder.record()

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not started"
        return f"<SlowapiLimiter {where} {self.limit} {self.strategy}>"
