"""The documentation's promises that code can check: the getting-started program
runs offline and does what its page says, and the README stays a first screen."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run_example(name: str) -> str:
    """Run ``docs/examples/<name>`` as a reader would; what it printed."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "examples" / name)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout.strip()


@pytest.mark.slow
def test_the_getting_started_program_runs_as_its_page_shows() -> None:
    """``docs/examples/first_program.py`` (included in docs/getting-started.md):
    60 requests at a mock that takes 10 a second: all answered, no 429, never more
    than 10 in any second."""
    printed = _run_example("first_program.py")
    assert re.match(
        r"60 × 200, 0 × 429 at the server, at most 10 in any second, \d+\.\d s$", printed
    ), printed
    page = (ROOT / "docs" / "getting-started.md").read_text()
    assert '--8<-- "docs/examples/first_program.py"' in page


@pytest.mark.slow
def test_the_model_api_program_runs_as_its_page_shows() -> None:
    """``docs/examples/model_tokens.py`` (included in docs/model-apis.md): 16 calls
    through the real openai SDK at a mock allowing 4,000 tokens per 5 s: no 429, the
    tokens settled equal to what the server charged, never over 4,000 in 5 s."""
    printed = _run_example("model_tokens.py")
    found = re.match(
        r"reserved 6400 tokens, settled (\d+); the server charged (\d+), "
        r"at most (\d+) in any 5 s, 0 × 429, \d+\.\d s$",
        printed,
    )
    assert found, printed
    settled, charged, most = map(int, found.groups())
    assert settled == charged
    assert most <= 4000
    page = (ROOT / "docs" / "model-apis.md").read_text()
    assert '--8<-- "docs/examples/model_tokens.py"' in page


def test_the_readme_is_a_first_screen_and_links_into_the_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    linked = set(re.findall(r"\]\((docs/[^)#]+)", readme))
    assert linked, "no link into the docs"
    missing = [path for path in sorted(linked) if not (ROOT / path).exists()]
    assert missing == []
    for command in ("python3 dev.py demo", "python3 dev.py test"):
        assert command in readme
