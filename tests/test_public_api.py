"""The curated public surface: complete, sorted, and nothing private leaks."""

from __future__ import annotations

import importlib
import pathlib

import pytest

import ratelimited_client
import ratelimited_client.testing

PUBLIC_MODULES = [ratelimited_client, ratelimited_client.testing]


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_all_is_sorted_and_resolves(module: object) -> None:
    """__all__ has no duplicates (ruff's RUF022 keeps it sorted) and every name exists."""
    names = list(module.__all__)  # type: ignore[attr-defined]
    assert len(names) == len(set(names))
    for name in names:
        assert getattr(module, name) is not None


def test_every_public_name_is_exported() -> None:
    """No public (non-underscore) attribute is missing from __all__."""
    public = {
        name
        for name in vars(ratelimited_client)
        if not name.startswith("_")
        and name != "annotations"  # from __future__ import annotations
        and not isinstance(getattr(ratelimited_client, name), type(pathlib))
    }
    assert public <= set(ratelimited_client.__all__)


def test_design_contract_names_are_present() -> None:
    """The names DESIGN.md fixes that this release provides are importable."""
    for name in (
        "Rate",
        "RateLimitedClient",
        "RateLimitedTransport",
        "RateLimitedClientError",
        "QueueFullError",
        "RetryAfterTooLongError",
        "TokenRefreshError",
        "RetryPolicy",
        "OAuth2ClientCredentials",
        "PrometheusMetrics",
    ):
        assert name in ratelimited_client.__all__


def test_public_classes_report_the_public_module() -> None:
    """Reprs and docs show ratelimited_client.Rate, not a private module path."""
    assert ratelimited_client.Rate.__module__ == "ratelimited_client"
    assert ratelimited_client.RateLimitedClient.__module__ == "ratelimited_client"


def test_version_is_available_and_modules_are_private() -> None:
    """__version__ comes from the installed metadata; implementation modules are private."""
    assert ratelimited_client.__version__
    package = pathlib.Path(ratelimited_client.__file__).parent
    for path in package.rglob("*.py"):
        parts = path.relative_to(package).parts
        if (
            parts[0] == "testing"
            and len(parts) == 2
            and parts[1] in {"__init__.py", "pytest_plugin.py", "__main__.py"}
        ):
            continue
        if parts[-1] == "__init__.py" or parts[-1] == "demo.py":
            continue
        if parts == ("httpx2.py",):  # the httpx2 adapters: a public module by design
            continue
        assert any(p.startswith("_") for p in parts), f"{path} should be private"
    assert (package / "py.typed").exists()
    importlib.import_module("ratelimited_client.testing.pytest_plugin")
