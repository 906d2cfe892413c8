"""Start the bundled mock upstream and run a headless, time-bounded Locust run at it.

    python3 dev.py loadtest [--shape spike] [--users 300] [--run-time 20] [--no-throttle]

The mock upstream is strict (a sliding window of ``--limit`` per second) and
bans clients that collect ``--penalty-after`` rejections in a window, as real
providers do. Locust runs ``locustfile.py`` against it in a subprocess; its
exit code is this command's: 0 when the verdict passed.

To load-test your own upstream instead, run Locust directly:
``locust -f locustfiles/locustfile.py --headless -H https://api.example.com ...``
(the verdict needs the upstream's ``/__stats``; without it, read Locust's figures).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from ratelimited_client.testing import MockAPIConfig, MockAPIServer

HERE = Path(__file__).resolve().parent


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--shape", choices=["steady", "spike", "square"], default="square")
    parser.add_argument("--users", type=int, default=300, help="peak simulated users (300)")
    parser.add_argument("--run-time", type=int, default=20, help="seconds, at most 600 (20)")
    parser.add_argument("--limit", type=int, default=50, help="upstream requests per second (50)")
    parser.add_argument("--penalty-after", type=int, default=10, help="rejections before a ban")
    parser.add_argument("--no-throttle", action="store_true", help="client-side limiting off")
    args = parser.parse_args(argv)
    if not 1 <= args.run_time <= 600:
        parser.error("--run-time must be between 1 and 600 seconds")
    if args.users < 1 or args.limit < 1:
        parser.error("--users and --limit must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    config = MockAPIConfig(
        limit=args.limit,
        window=1.0,
        penalty_after=args.penalty_after,
        penalty_for=5.0,
        latency=(0.0, 0.02),
    )
    with MockAPIServer(config) as server:
        command = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(HERE / "locustfile.py"),
            "--headless",
            "--host",
            server.url,
            "--peak-users",
            str(args.users),
            "--duration",
            str(args.run_time),
            "--shape",
            args.shape,
            "--client-rate",
            f"{args.limit}/s",
            "--stop-timeout",
            "15",
            "--only-summary",
            "--loglevel",
            "WARNING",
        ]
        if args.no_throttle:
            command.append("--no-throttle")
        print(
            f"loadtest: mock upstream {server.url}, {args.limit}/s strict; " + " ".join(command[3:])
        )
        # Bounded twice: the shape stops the run after --duration; this is the backstop.
        return subprocess.run(command, check=False, timeout=args.run_time + 90).returncode


if __name__ == "__main__":
    sys.exit(main())
