"""Run the SGLang emulator: ``python -m inference.emulator --port 30000``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import uvicorn

from inference.emulator.app import create_app
from inference.emulator.config import CHUNK_SHAPES, EmulatorConfig

_DEFAULTS = EmulatorConfig()


def build_parser() -> argparse.ArgumentParser:
    """Describe the command line (flag names follow ``sglang.launch_server`` where they exist)."""
    p = argparse.ArgumentParser(
        prog="python -m inference.emulator",
        description="SGLang 0.5.23-compatible emulator serving recorded DeepSeek-R1 traces.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=30000)
    p.add_argument("--served-model-name", default=_DEFAULTS.served_model_name)
    p.add_argument("--model-path", default=None)
    p.add_argument("--context-length", type=int, default=_DEFAULTS.context_length)
    p.add_argument("--ttft-ms", type=float, default=_DEFAULTS.ttft_ms)
    p.add_argument(
        "--tps",
        type=float,
        default=_DEFAULTS.tokens_per_second,
        help="tokens per second per stream; <= 0 means as fast as possible",
    )
    p.add_argument(
        "--corpus",
        action="append",
        default=[],
        metavar="PATH",
        help="JSON Lines trace file (repeatable); default: the bundled corpus",
    )
    p.add_argument("--api-key", default=None)
    p.add_argument("--enable-metrics", action="store_true")
    p.add_argument("--chunk-shape", choices=sorted(CHUNK_SHAPES), default="0.5.23")
    p.add_argument(
        "--fault",
        default="none",
        help='default fault for every request, e.g. "drop after=5"',
    )
    p.add_argument("--startup-delay", type=float, default=0.0, metavar="SECONDS")
    p.add_argument("--log-level", default="info")
    p.add_argument(
        "--graceful-shutdown",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="on SIGTERM, stop accepting and let open streams finish for this long "
        "(a replica drained behind a router); then cut them",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and serve until SIGINT/SIGTERM."""
    args = build_parser().parse_args(argv)
    try:
        config = EmulatorConfig(
            served_model_name=args.served_model_name,
            model_path=args.model_path,
            context_length=args.context_length,
            ttft_ms=args.ttft_ms,
            tokens_per_second=args.tps,
            corpus=list(args.corpus),
            api_key=args.api_key,
            enable_metrics=args.enable_metrics,
            chunk_shape=args.chunk_shape,
            fault=args.fault,
            startup_delay_s=args.startup_delay,
        )
        app = create_app(config)
    except (OSError, ValueError) as exc:
        print(f"emulator: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper())
    # uvicorn installs SIGINT/SIGTERM handlers and shuts down gracefully: it stops
    # accepting at once; open streams are cut after --graceful-shutdown seconds
    # (2 by default) so a stalled stream cannot block shutdown.
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            timeout_graceful_shutdown=max(0.0, args.graceful_shutdown),
            lifespan="off",
        )
    )
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
