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
        None, "--token", envvar="MLCHAOS_PROXY_TOKEN", help="Bearer token required by the control API."
    ),
    workers: int = typer.Option(1, "--workers", help="Data-path processes sharing the port (SO_REUSEPORT)."),
    loop: str = typer.Option("auto", "--loop", help="Event loop: auto (uvloop if installed), uvloop, asyncio."),
    log_level: str = typer.Option("WARNING", "--log-level", help="Log level for stderr (INFO shows fault changes)."),
) -> None:
    """Run the fault proxy until Ctrl-C; prints its addresses as one JSON line on stdout.

    Faults are added through the control API (see docs/proxy.md), e.g.
    ``curl -XPOST $CONTROL/faults -d '{"kind":"latency","delay":"200ms","ttl":"60s"}'``.
    """
    from mlchaos.proxy.server import Config, ConfigError, print_ready, run
    from mlchaos.proxy.sockets import parse_hostport

    logging.basicConfig(level=log_level.upper(), stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    try:
        cfg = Config(
            listen=parse_hostport(listen), upstream=parse_hostport(upstream), mode=mode,
            control=parse_hostport(control), token=token, workers=workers, loop=loop,
        )
        code = run(cfg, print_ready)
    except (ConfigError, ValueError) as exc:
        typer.echo(f"mlchaos proxy: {exc}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        typer.echo(f"mlchaos proxy: cannot listen: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)
