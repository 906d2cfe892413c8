"""Regenerate ``docservice_client`` from the mock upstream's OpenAPI description.

    python3 examples/openapi/regenerate.py

Starts the bundled mock upstream on 127.0.0.1, saves its ``/openapi.json``
beside this file, and runs openapi-python-client (installed on first use into
``.openapi-venv/`` at the repository root, apart from the project's own
environment, so its pinned dependencies never clash with ours) to rewrite
``docservice_client/``. The generated code is committed; nothing in it is
edited by hand: the rate limiting plugs in from outside (see README.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import httpx

from ratelimited_client.testing import MockAPIConfig, MockAPIServer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
GENERATOR = "openapi-python-client==0.29.1"
TOOL_VENV = ROOT / ".openapi-venv"


def generator() -> Path:
    binary = TOOL_VENV / "bin" / "openapi-python-client"
    if not binary.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(TOOL_VENV)
        pip = [str(TOOL_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, GENERATOR], check=True)
    return binary


def main() -> int:
    config = MockAPIConfig(limit=50, window=60.0, write_limit=10, oauth=True)
    with MockAPIServer(config) as server:
        spec = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    path = HERE / "openapi.json"
    path.write_text(json.dumps(spec, indent=2) + "\n")
    subprocess.run(
        [
            str(generator()),
            "generate",
            "--path",
            str(path),
            "--output-path",
            str(HERE / "docservice_client"),
            "--meta",
            "none",
            "--overwrite",
        ],
        check=True,
        cwd=HERE,
        # The generator formats its output with ruff: the project's own.
        env={
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        },
    )
    print(f"regenerated {HERE / 'docservice_client'} from {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
