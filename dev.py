#!/usr/bin/env python3
"""Bootstrap and run the project's two everyday commands.

    python3 dev.py demo     # run the demo against the bundled mock API
    python3 dev.py test     # lint, type-check and run the whole test suite
    python3 dev.py loadtest # a headless, time-bounded Locust run against the mock API
    python3 dev.py bench    # every benchmark against the peers (~25 min); updates
                            # benchmarks/README.md and benchmarks/results/
    python3 dev.py quick    # lint, types and the fast tests (not marked slow): < 1 min
    python3 dev.py busy test  # any command above, with two CPU-bound processes
                              # running beside it (how CI on a shared runner feels)

Needs nothing but Python 3.11+: on first use (and whenever pyproject.toml
changes) it creates ``.venv`` beside this file and installs the project into it
with what the command needs: ``demo`` the ``demo`` extra only (the library, the
mock's server and the progress bar, no development tools); every other command
the ``dev`` extra (which has the demo's too). Later runs reuse it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def _stamp(extra: str) -> Path:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    return VENV / f".installed-{digest}-{extra}"


def _requirements(extra: str) -> list[str]:
    """The distributions ``ratelimited_client[extra]`` installs, by name: the base
    dependencies and the extra's, its own extras followed."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras: dict[str, list[str]] = project["optional-dependencies"]
    names: list[str] = []

    def add(requirements: list[str]) -> None:
        for requirement in requirements:
            name = requirement.split(";")[0].split("[")[0]
            for stop in "<>=!~ ":
                name = name.split(stop)[0]
            if name == "ratelimited_client":
                for inner in requirement.split("[", 1)[1].split("]")[0].split(","):
                    add(extras[inner.strip()])
            elif name not in names:
                names.append(name)

    add(project["dependencies"])
    add(extras[extra])
    return names


def ensure_venv(extra: str = "dev") -> None:
    """Create .venv and install the project with ``extra`` into it, unless already
    current (``dev`` has every other extra: it will do for any command)."""
    if sys.version_info < (3, 11):  # noqa: UP036 - the bootstrapper may run on any python3
        sys.exit(f"ratelimited_client needs Python 3.11+, this is {sys.version.split()[0]}")
    if _stamp(extra).exists() or _stamp("dev").exists():
        return
    if not PYTHON.exists():
        print(f"dev.py: creating {VENV.relative_to(ROOT)} ...", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    what = ", ".join(_requirements(extra))
    print(
        f"dev.py: installing ratelimited_client[{extra}] into {VENV.relative_to(ROOT)} "
        f"(first run only): {what}, and what they need ...",
        flush=True,
    )
    pip = [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "--editable", f"{ROOT}[{extra}]"], check=True, cwd=ROOT)
    digest = _stamp(extra).name.split("-")[1]
    for old in VENV.glob(".installed-*"):
        if old.name.split("-")[1] != digest:
            old.unlink()  # pyproject.toml changed since
    _stamp(extra).touch()


# System binaries the tests need, by the Debian package that provides them: a real
# Prometheus (alert rules, a scrape), Redis (the shared backend) and nginx (a real
# limiter, limit_req).
SYSTEM_PACKAGES = {
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "redis-server": "redis-server",
    "nginx": "nginx",
}


def ensure_system_packages() -> None:
    """Install the Debian packages behind missing test binaries (Prometheus, Redis),
    only where they are missing."""

    def found(binary: str) -> bool:  # Debian puts daemons in /usr/sbin
        return bool(shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/sbin"))

    missing = sorted({pkg for binary, pkg in SYSTEM_PACKAGES.items() if not found(binary)})
    if not missing:
        return
    apt = shutil.which("apt-get")
    if apt is None:
        sys.exit(f"dev.py: the tests need {', '.join(missing)}; install them (no apt-get here)")
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    print(f"dev.py: installing {', '.join(missing)} with apt-get (missing) ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*prefix, apt, "install", "-y", "--no-install-recommends", *missing]
    if subprocess.run([*install, "-q"], check=False, env=env).returncode != 0:
        subprocess.run([*prefix, apt, "update", "-q"], check=True, env=env)
        subprocess.run([*install, "-q"], check=True, env=env)


def run(*argv: str) -> int:
    print(f"dev.py: $ {' '.join(argv)}", flush=True)
    return subprocess.run(argv, cwd=ROOT, check=False).returncode


def cmd_test(extra: list[str], *, quick: bool = False) -> int:
    if not quick:
        ensure_system_packages()  # the quick tests need no system binary
    os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")  # Material's notice on each build
    # The full run lists its slowest tests, so a run that grows is seen growing. It
    # runs two tests at a time (pytest-xdist): most of its time is spent waiting on
    # quota windows, not on the CPU, and every test holds its own servers on free
    # ports, as it must hold while other work runs on the machine. The few heavy
    # ones (100,000 waiters, many processes, the benchmark smoke run) run after, one
    # at a time, so that they never load the machine under two timing tests at once.
    steps: list[tuple[str, ...]] = [
        (str(BIN / "ruff"), "check", "."),
        (str(BIN / "ruff"), "format", "--check", "."),
        (str(BIN / "mypy"), "--strict"),
        (str(BIN / "bandit"), "-q", "-c", "pyproject.toml", "-r", "ratelimited_client"),
        # The documentation site: a broken link, anchor, snippet or API reference
        # fails it (mkdocs.yml sets strict); built outside the checkout, never kept.
        (str(BIN / "mkdocs"), "build", "--strict", "--quiet", "--site-dir", _site_dir()),
    ]
    pytest = (str(PYTHON), "-m", "pytest")
    if quick:
        steps.append((*pytest, *extra))
    else:
        steps.append((*pytest, "--durations=15", "-n", "2", "-m", "not heavy", *extra))
        steps.append((*pytest, "--durations=5", "-m", "heavy", *extra))
    for step in steps:
        code = run(*step)
        if code == 5 and step[:3] == (str(PYTHON), "-m", "pytest"):
            continue  # no test selected in this part (a -k that matches only the other)
        if code != 0:
            print(f"dev.py: FAILED: {' '.join(step)} (exit {code})", flush=True)
            return code
    return 0


def _site_dir() -> str:
    """Where the docs build goes: a fresh temporary directory (the site is not kept)."""
    return tempfile.mkdtemp(prefix="ratelimited_client-site-")


def cmd_quick(extra: list[str]) -> int:
    """The contributor's loop: the same lint and type steps, then every test not
    marked ``slow`` (unit tests, fake clocks, in-memory transports)."""
    return cmd_test(["-m", "not slow", "-q", *extra], quick=True)


# Each CPU burner stops by itself after this long, even if nobody kills it.
BURNER_LIMIT_S = 45 * 60


def cmd_busy(extra: list[str]) -> int:
    """Run another dev.py command while CPU-bound processes compete for the cores.

    ``python3 dev.py busy [--procs N] COMMAND [ARGS...]``: starts N (default 2)
    processes that spin on the CPU, runs ``dev.py COMMAND ARGS``, then stops them.
    Each burner also ends by itself after ``BURNER_LIMIT_S``, so a killed parent
    leaves nothing spinning for long.
    """
    procs = 2
    if extra[:1] == ["--procs"]:
        procs, extra = int(extra[1]), extra[2:]
    if not extra:
        print("usage: python3 dev.py busy [--procs N] COMMAND [ARGS...]")
        return 2
    spin = (
        f"import time\nend = time.monotonic() + {BURNER_LIMIT_S}\n"
        "while time.monotonic() < end: pass"
    )
    burners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(procs)]
    print(f"dev.py: {procs} CPU-bound processes running beside the command", flush=True)
    try:
        return main(extra)
    finally:
        for burner in burners:
            burner.kill()
        for burner in burners:
            burner.wait()


def cmd_demo(extra: list[str]) -> int:
    return run(str(PYTHON), str(ROOT / "examples" / "demo.py"), *extra)


def cmd_loadtest(extra: list[str]) -> int:
    return run(str(PYTHON), str(ROOT / "locustfiles" / "run.py"), *extra)


def cmd_bench(extra: list[str]) -> int:
    script = str(ROOT / "benchmarks" / "run_all.py")
    return run(str(PYTHON), script, *(extra or ["--update-readme"]))


def main(argv: list[str]) -> int:
    commands = {
        "test": cmd_test,
        "quick": cmd_quick,
        "busy": cmd_busy,
        "demo": cmd_demo,
        "loadtest": cmd_loadtest,
        "bench": cmd_bench,
    }
    if not argv or argv[0] not in commands:
        print(__doc__)
        return 2
    ensure_venv("demo" if argv[0] == "demo" else "dev")
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
