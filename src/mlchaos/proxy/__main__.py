"""``python -m mlchaos.proxy --listen 127.0.0.1:0 --upstream 127.0.0.1:8000 [--mode http|tcp] ...``

Prints one JSON line with the bound addresses on stdout once traffic can
flow (what :func:`mlchaos.proxy.spawn` waits for); logs go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys

from mlchaos.proxy.server import Config, ConfigError, print_ready, run
from mlchaos.proxy.sockets import parse_hostport


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mlchaos.proxy", description="mlchaos fault proxy")
    ap.add_argument("--listen", default="127.0.0.1:0", help="data-path address HOST:PORT (port 0 = any)")
    ap.add_argument("--upstream", required=True, help="upstream HOST:PORT")
    ap.add_argument("--mode", default="http", choices=["http", "tcp"])
    ap.add_argument("--control", default="127.0.0.1:0", help="control API HOST:PORT (loopback by default)")
    ap.add_argument("--token", default=None, help="bearer token for the control API")
    ap.add_argument("--workers", type=int, default=1, help="data-path processes sharing the port (SO_REUSEPORT)")
    ap.add_argument("--loop", default="auto", choices=["auto", "uvloop", "asyncio"])
    ap.add_argument("--log-level", default="WARNING")
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    try:
        cfg = Config(
            listen=parse_hostport(args.listen), upstream=parse_hostport(args.upstream), mode=args.mode,
            control=parse_hostport(args.control), token=args.token, workers=args.workers, loop=args.loop,
        )
        return run(cfg, print_ready)
    except (ConfigError, ValueError) as exc:
        print(f"mlchaos proxy: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"mlchaos proxy: cannot listen: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
