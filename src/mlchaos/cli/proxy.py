"""``mlchaos proxy``: run the fault proxy in front of a TCP or HTTP upstream."""

from __future__ import annotations

import logging
import sys

import typer


def proxy(
    upstream: str = typer.Option(..., "--upstream", help="Upstream HOST:PORT the proxy forwards to."),
    listen: str = typer.Option("127.0.0.1:0", "--listen", help="Data-path HOST:PORT (port 0: any free port)."),
    mode: str = typer.Option("http", "--mode", help="'http' (per-request faults, JSON corruption) or 'tcp'."),
    control: str = typer.Option(
        "127.0.0.1:0", "--control", help="Control API HOST:PORT; beyond loopback it requires --token."
    ),
    token: str | None = typer.Option(
        None, "--token", help="Bearer token (visible to local users in /proc/PID/cmdline: prefer --token-file "
        "or $MLCHAOS_PROXY_TOKEN)."
    ),
    token_file: str | None = typer.Option(None, "--token-file", help="File holding the bearer token (mode 0600)."),
    workers: int = typer.Option(1, "--workers", help="Data-path processes sharing the port (SO_REUSEPORT)."),
    loop: str = typer.Option("auto", "--loop", help="Event loop: auto (uvloop if installed), uvloop, asyncio."),
    log_level: str = typer.Option("WARNING", "--log-level", help="Log level for stderr (INFO shows fault changes)."),
    max_header_size: str | None = typer.Option(None, "--max-header-size", help="Request line + headers [64KiB]."),
    max_header_lines: str | None = typer.Option(None, "--max-header-lines", help="Header lines per request [1000]."),
    header_timeout: str | None = typer.Option(None, "--header-timeout", help="Time to send the headers [10s]."),
    idle_timeout: str | None = typer.Option(None, "--idle-timeout", help="Idle keep-alive / stalled body [300s]."),
    max_connections: str | None = typer.Option(None, "--max-connections", help="Client connections [10000]."),
    max_body_buffer: str | None = typer.Option(None, "--max-body-buffer", help="Body held by a fault [64MiB]."),
    max_faults: str | None = typer.Option(None, "--max-faults", help="Active faults [1000]."),
) -> None:
    """Run the fault proxy until Ctrl-C; prints its addresses as one JSON line on stdout.

    Faults are added through the control API (see docs/proxy.md), e.g.
    ``curl -XPOST $CONTROL/faults -d '{"kind":"latency","delay":"200ms","ttl":"60s"}'``.
    """
    from mlchaos.proxy.__main__ import limits_from
    from mlchaos.proxy.server import Config, ConfigError, load_token, print_ready, run
    from mlchaos.proxy.sockets import parse_hostport

    logging.basicConfig(level=log_level.upper(), stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    try:
        cfg = Config(
            listen=parse_hostport(listen), upstream=parse_hostport(upstream), mode=mode,
            control=parse_hostport(control), token=load_token(token, token_file), workers=workers, loop=loop,
            limits=limits_from({
                "max_header_bytes": max_header_size, "max_header_lines": max_header_lines,
                "header_timeout": header_timeout, "idle_timeout": idle_timeout, "max_connections": max_connections,
                "max_body_buffer": max_body_buffer, "max_faults": max_faults,
            }),
        )
        code = run(cfg, print_ready)
    except (ConfigError, ValueError) as exc:
        typer.echo(f"mlchaos proxy: {exc}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        typer.echo(f"mlchaos proxy: cannot listen: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)
