"""``python -m mlchaos.proxy --listen 127.0.0.1:0 --upstream 127.0.0.1:8000 [--mode http|tcp] ...``

Prints one JSON line with the bound addresses on stdout once traffic can
flow (what :func:`mlchaos.proxy.spawn` waits for); logs go to stderr.
The token comes from ``--token-file`` or ``$MLCHAOS_PROXY_TOKEN`` (``--token``
still works but is visible to every local user in /proc/PID/cmdline).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

from mlchaos.proxy.limits import FLAGS, Limits
from mlchaos.proxy.server import Config, ConfigError, load_token, print_ready, run
from mlchaos.proxy.sockets import parse_hostport


def limits_from(values: dict[str, Any]) -> Limits:
    """Limits from flag values (``None``: the default); sizes and durations take units ('64KiB', '10s')."""
    from mlchaos.spec import units

    d = Limits()
    conv: dict[str, Callable[[Any], Any]] = {"max_header_bytes": units.parse_size, "max_body_buffer": units.parse_size,
            "header_timeout": units.parse_duration, "idle_timeout": units.parse_duration,
            "max_header_lines": int, "max_connections": int, "max_faults": int}
    out: dict[str, Any] = {}
    for field, fn in conv.items():
        v = values.get(field)
        if v is None:
            out[field] = getattr(d, field)
            continue
        try:
            out[field] = fn(v)
        except (ValueError, ArithmeticError) as exc:
            raise ConfigError(f"{FLAGS[field]} {v}: {exc}") from None
    return Limits(**out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mlchaos.proxy", description="mlchaos fault proxy")
    ap.add_argument("--listen", default="127.0.0.1:0", help="data-path address HOST:PORT (port 0 = any)")
    ap.add_argument("--upstream", required=True, help="upstream HOST:PORT")
    ap.add_argument("--mode", default="http", choices=["http", "tcp"])
    ap.add_argument("--control", default="127.0.0.1:0", help="control API HOST:PORT (loopback by default)")
    ap.add_argument("--token", default=None, help="bearer token (visible in /proc/PID/cmdline: prefer --token-file)")
    ap.add_argument("--token-file", default=None, help="file holding the bearer token (mode 0600)")
    ap.add_argument("--workers", type=int, default=1, help="data-path processes sharing the port (SO_REUSEPORT)")
    ap.add_argument("--loop", default="auto", choices=["auto", "uvloop", "asyncio"])
    ap.add_argument("--log-level", default="WARNING")
    ap.add_argument("--max-header-size", dest="max_header_bytes", help="request line + headers, e.g. 64KiB")
    ap.add_argument("--max-header-lines", dest="max_header_lines", help="header lines per request")
    ap.add_argument("--header-timeout", dest="header_timeout", help="time to send a request's headers, e.g. 10s")
    ap.add_argument("--idle-timeout", dest="idle_timeout", help="idle keep-alive / stalled body timeout, e.g. 300s")
    ap.add_argument("--max-connections", dest="max_connections", help="concurrent client connections")
    ap.add_argument("--max-body-buffer", dest="max_body_buffer", help="request body held during a fault, e.g. 64MiB")
    ap.add_argument("--max-faults", dest="max_faults", help="active faults in the table")
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    try:
        cfg = Config(
            listen=parse_hostport(args.listen), upstream=parse_hostport(args.upstream), mode=args.mode,
            control=parse_hostport(args.control), token=load_token(args.token, args.token_file),
            workers=args.workers, loop=args.loop, limits=limits_from(vars(args)),
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
