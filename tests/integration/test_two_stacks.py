"""httpx and httpx2 in one process: each client on its own stack with its own quota,
nothing patched, and ``ratelimited_client`` importable without httpx2."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import anyio
import httpx
import httpx2
import pytest

import ratelimited_client
import ratelimited_client.httpx2
from ratelimited_client import Rate

if TYPE_CHECKING:
    from ratelimited_client.testing.pytest_plugin import MockAPIServerFactory

pytestmark = pytest.mark.slow


@pytest.mark.anyio
async def test_an_httpx_and_an_httpx2_client_side_by_side_each_keep_their_quota(
    mock_api_server: MockAPIServerFactory, anyio_backend: str
) -> None:
    """Two upstreams, two quotas (20/s and 10/s), two stacks, one event loop: 0 × 429
    on each, neither over its limit in any window, and each client's requests all
    went through its own library."""
    fast, slow = mock_api_server(limit=20, window=1.0), mock_api_server(limit=10, window=1.0)
    first = ratelimited_client.RateLimitedClient(base_url=fast.url, rate=Rate(20, 1.0))
    second = ratelimited_client.httpx2.RateLimitedClient(base_url=slow.url, rate=Rate(10, 1.0))
    answers: dict[str, list[object]] = {"httpx": [], "httpx2": []}

    async def fire(name: str, client: httpx.AsyncClient | httpx2.AsyncClient, total: int) -> None:
        async def one(i: int) -> None:
            answers[name].append(await client.get(f"/items/{i}"))

        async with anyio.create_task_group() as tg:
            for i in range(total):
                tg.start_soon(one, i)

    with anyio.fail_after(30):
        async with first, second, anyio.create_task_group() as tg:
            tg.start_soon(fire, "httpx", first, 60)
            tg.start_soon(fire, "httpx2", second, 30)

    assert all(isinstance(r, httpx.Response) for r in answers["httpx"])
    assert all(isinstance(r, httpx2.Response) for r in answers["httpx2"])
    for server, limit, total in ((fast, 20, 60), (slow, 10, 30)):
        stats = server.stats()
        assert (stats.received, stats.rejected) == (total, 0)
        assert stats.max_received_in_window <= limit
    assert first.statistics().admitted == 60
    assert second.statistics().admitted == 30
    # Nothing was patched: each package is its own.
    assert sys.modules["httpx"] is httpx
    assert httpx is not httpx2


def test_the_httpx2_classes_hold_nothing_from_the_httpx_package() -> None:
    """What anthropic checks before it takes an ``http_client``: no class in the MRO
    from the ``httpx`` package (and an ``httpx2.AsyncClient`` / ``httpx2.Client``)."""
    adapters = ratelimited_client.httpx2
    for cls, base in (
        (adapters.RateLimitedClient, httpx2.AsyncClient),
        (adapters.SyncRateLimitedClient, httpx2.Client),
        (adapters.RateLimitedTransport, httpx2.AsyncBaseTransport),
        (adapters.SyncRateLimitedTransport, httpx2.BaseTransport),
        (adapters.OAuth2ClientCredentials, httpx2.Auth),
        (adapters.OAuth2RefreshToken, httpx2.Auth),
    ):
        assert issubclass(cls, base)
        packages = {klass.__module__.partition(".")[0] for klass in cls.__mro__}
        assert "httpx" not in packages, (cls, packages)
    with pytest.raises(ratelimited_client.ConfigurationError, match=r"httpx2\.AsyncBaseTransport"):
        adapters.RateLimitedTransport(httpx.AsyncHTTPTransport())  # type: ignore[arg-type]


def test_ratelimited_client_imports_without_httpx2_and_says_what_is_missing() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["httpx2"] = None  # as if not installed
        import ratelimited_client
        assert "httpx2" not in {name for name, module in sys.modules.items() if module}
        client = ratelimited_client.RateLimitedClient(rate="5/second")
        try:
            import ratelimited_client.httpx2
        except ImportError as error:
            print(error)
        else:
            raise SystemExit("imported without httpx2")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'ratelimited_client[httpx2]'" in done.stdout
