"""Serving a ``MockAPI`` with uvicorn on 127.0.0.1, in a background thread."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from ._mock_api import MockAPI, MockAPIConfig, MockAPIStats

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

__all__ = ["MockAPIServer"]

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


def _check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"host must be a loopback address (127.0.0.0/8, ::1, localhost), got {host!r}"
        )


class ThreadedServer:
    """Private base. Serves an ASGI app under uvicorn on a loopback address, in a
    daemon thread; the mock API and the real limiters (``_real_limiters``) share it."""

    _kind = "server"

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        date_header: bool = True,
        log_level: str = "critical",
    ) -> None:
        _check_loopback(host)
        self._asgi = app
        self.host = host
        self._requested_port = port
        self._date_header = date_header
        self._log_level = log_level
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._server: object | None = None
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        """The port the server listens on (known once started)."""
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._port

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Bind, start serving in a background thread, and wait until it accepts."""
        import uvicorn

        if self._thread is not None:
            raise RuntimeError(f"{type(self).__name__} is already started")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit this: without it a kept-alive connection's
        # answer (headers, then body, in two writes) waits ~40 ms for a delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((self.host, self._requested_port))
            sock.listen(2048)
        except BaseException:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._asgi,
            log_level=self._log_level,
            lifespan="on",
            access_log=False,
            timeout_keep_alive=30,
            date_header=self._date_header,
            server_header=False,
            backlog=2048,
        )
        server = uvicorn.Server(config)
        self._server = server

        def serve() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
                self._error = exc
            finally:
                sock.close()

        self._thread = threading.Thread(
            target=serve, name=f"{type(self).__name__}:{self._port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if self._error is not None or not self._thread.is_alive():
                self._thread.join(1.0)
                self._thread = None
                raise RuntimeError(f"{self._kind} failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self._kind} did not start within {_START_TIMEOUT} s")
            time.sleep(0.005)

    def stop(self) -> None:
        """Stop serving and wait for the thread to end (bounded)."""
        thread, server = self._thread, self._server
        if thread is None or server is None:
            return
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join(_STOP_TIMEOUT)
        if thread.is_alive():  # pragma: no cover - uvicorn ignored should_exit
            server.force_exit = True  # type: ignore[attr-defined]
            thread.join(_STOP_TIMEOUT)
        self._thread = None
        self._server = None

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


class MockAPIServer(ThreadedServer):
    """Runs a :class:`MockAPI` under uvicorn on a loopback address, in a daemon thread.

    Usage::

        with MockAPIServer(MockAPIConfig(limit=20, window=1.0)) as server:
            ...  # send requests to server.url
            assert server.stats().max_received_in_window <= 20

    Args:
        app: the app, or a config to build one from (default ``MockAPIConfig()``).
        host: a loopback address; anything else is refused.
        port: ``0`` (the default) picks a free port.

    Needs ``uvicorn`` (the ``testing`` extra).

    .. versionadded:: 0.1
    """

    _kind = "mock API server"

    def __init__(
        self,
        app: MockAPI | MockAPIConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.app = app if isinstance(app, MockAPI) else MockAPI(app)
        # The app sends its own Date (it may be skewed on purpose); injected dropped
        # connections would log tracebacks, hence the quiet log level.
        super().__init__(self.app, host=host, port=port, date_header=False)

    def stats(self) -> MockAPIStats:
        """What the server has seen (see :class:`MockAPIStats`)."""
        return self.app.stats()

    def arrivals(self) -> list[tuple[float, int]]:
        """``(time.monotonic(), status)`` of each limited request, in arrival order."""
        return self.app.arrivals()

    def reset(self) -> None:
        """Forget counters and limiter state."""
        self.app.reset()

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not started"
        return f"<MockAPIServer {where} {self.app!r}>"
