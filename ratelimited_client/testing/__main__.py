"""Command line: ``python -m ratelimited_client.testing serve --limit 10``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from ._dialects import DIALECTS
from ._mock_api import MockAPIConfig
from ._server import MockAPIServer


def _latency(text: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH seconds, got {text!r}") from None
    return low, high


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ratelimited_client.testing",
        description="The rate-limited mock API of ratelimited_client.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the mock API until Ctrl-C")
    serve.add_argument("--host", default="127.0.0.1", help="loopback address (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port, 0 for a free one (8000)")
    serve.add_argument("--limit", type=int, default=10, help="requests per window (10)")
    serve.add_argument("--window", type=float, default=1.0, help="window in seconds (1.0)")
    serve.add_argument(
        "--algorithm", default="sliding", help="sliding | fixed | token_bucket (sliding)"
    )
    serve.add_argument(
        "--latency", type=_latency, default=(0.0, 0.0), help="random ingress delay LOW,HIGH s"
    )
    serve.add_argument("--no-retry-after", action="store_true", help="omit Retry-After on 429")
    serve.add_argument("--seed", type=int, default=None, help="seed for the latency jitter")
    serve.add_argument(
        "--dialect",
        default="retry-after",
        help=f"rate-limit headers to send: {' | '.join(DIALECTS)} (retry-after)",
    )
    serve.add_argument(
        "--clock-skew", type=float, default=0.0, help="seconds added to the server's wall clock"
    )
    serve.add_argument(
        "--penalty-after", type=int, default=None, help="ban after N rejections in a window"
    )
    serve.add_argument("--penalty-for", type=float, default=5.0, help="ban length, s (5)")
    serve.add_argument("--fail-rate", type=float, default=0.0, help="share answered 503")
    serve.add_argument("--drop-rate", type=float, default=0.0, help="share dropped mid-answer")
    serve.add_argument(
        "--oauth", action="store_true", help="require bearer tokens (POST /oauth/token)"
    )
    serve.add_argument("--token-ttl", type=float, default=3600.0, help="access token life, s")
    serve.add_argument(
        "--write-limit", type=int, default=None, help="writes per window, apart from --limit"
    )
    serve.add_argument(
        "--model-tokens",
        type=int,
        default=None,
        help="the model endpoints' token quota, tokens per --model-tokens-window",
    )
    serve.add_argument(
        "--model-tokens-window", type=float, default=60.0, help="the token quota's window, s (60)"
    )
    return parser


def _stop_on_signals() -> None:
    """Ctrl-C (SIGINT) and SIGTERM stop the server gracefully, whatever the parent
    process left behind. A child inherits an ignored or a blocked signal across exec:
    a command started in the background by a non-interactive shell has SIGINT ignored
    (POSIX), and so does everything it starts; this mock server, started by a test
    run launched that way, then never stopped on SIGINT. A development server should
    stop when asked."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def main(argv: list[str] | None = None) -> int:
    _stop_on_signals()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = MockAPIConfig(
            limit=args.limit,
            window=args.window,
            algorithm=args.algorithm,
            latency=args.latency,
            retry_after=not args.no_retry_after,
            seed=args.seed,
            dialect=args.dialect,
            clock_skew=args.clock_skew,
            penalty_after=args.penalty_after,
            penalty_for=args.penalty_for,
            fail_rate=args.fail_rate,
            drop_rate=args.drop_rate,
            oauth=args.oauth,
            token_ttl=args.token_ttl,
            write_limit=args.write_limit,
            model_tokens=args.model_tokens,
            model_tokens_window=args.model_tokens_window,
        )
        server = MockAPIServer(config, host=args.host, port=args.port)
    except ValueError as exc:
        parser.error(str(exc))  # exits 2
    with server:
        print(f"mock API: {server.url}  ({config.algorithm}, {config.limit}/{config.window:g}s)")
        print(f"stats:    {server.url}/__stats   reset: POST {server.url}/__reset")
        print(f"openapi:  {server.url}/openapi.json")
        print("Ctrl-C to stop", flush=True)
        stop = threading.Event()
        try:
            # A timed wait, woken twice a second: the interpreter runs Python signal
            # handlers only in the main thread, and a main thread blocked in an
            # untimed lock wait may never see a SIGINT that the OS handed to the
            # server's thread (seen under load: Ctrl-C ignored for good).
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    print(json.dumps(server.stats().as_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
