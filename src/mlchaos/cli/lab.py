"""``mlchaos lab``: start, inspect and stop the built-in ML lab systems.

A thin shell over :class:`mlchaos.lab.Lab`; everything here is also
available from Python.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mlchaos.cli._common import PIPE_WIDTH
from mlchaos.lab import SYSTEMS, VARIANTS, Lab, LabError, LabInputError

app = typer.Typer(
    help="Start, inspect and stop the built-in ML lab systems.", no_args_is_help=True, add_completion=False
)
console = Console(width=None if sys.stdout.isatty() else PIPE_WIDTH, soft_wrap=not sys.stdout.isatty())

DirOpt = Annotated[
    Path | None,
    typer.Option("--lab-dir", help="Lab directory (default: $MLCHAOS_LAB_DIR or ~/.local/state/mlchaos/lab)."),
]
# ``--dir`` was this flag's first spelling; ``--lab-dir`` is the one every command (and ``mlchaos demo``) uses.
OldDirOpt = Annotated[Path | None, typer.Option("--dir", hidden=True, help="Deprecated: --lab-dir.")]


def _dir(lab_dir: Path | None, old: Path | None) -> Path | None:
    """``--lab-dir``, or the old ``--dir`` with a deprecation line on stderr."""
    if old is None:
        return lab_dir
    if lab_dir is not None:
        typer.echo("mlchaos lab: give --lab-dir only (--dir is its old spelling)", err=True)
        raise typer.Exit(2)
    typer.echo("mlchaos lab: --dir is deprecated, write --lab-dir", err=True)
    return old


def _lab(dir: Path | None, load_delay: float = 1.5, feature_store: str | None = None) -> Lab:
    lab = Lab(dir, load_delay=load_delay, feature_store=feature_store)
    reaped = lab.reap_dead()  # a lab whose supervisor was killed: stop what it left, and say so
    if reaped:
        typer.echo(f"reaped {len(reaped)} process(es) left by a dead lab in {lab.paths.root}: "
                   + ", ".join(f"{name} (pid {pid})" for pid, name in sorted(reaped.items())), err=True)
    return lab


def _table(lab: Lab) -> Table:
    t = Table(title=f"lab {lab.paths.root}")
    for col in ("service", "system", "pid", "port", "ready", "variant", "model version", "restarts"):
        t.add_column(col)
    for s in lab.status():
        t.add_row(
            s.name,
            s.system,
            str(s.pid or "-"),
            str(s.port or "-"),
            "[green]yes[/]" if s.ready else "[red]no[/]",
            s.variant or "-",
            (s.model_version or "-")
            + (f" ({s.model_alias})" if s.model_alias and s.model_alias != s.model_version else ""),
            str(s.restarts),
        )
    return t


@app.command()
def up(
    systems: Annotated[
        list[str] | None, typer.Argument(help=f"Systems to start: {', '.join(SYSTEMS)} (default: all but llm).")
    ] = None,
    variant: Annotated[str, typer.Option(help=f"One of {', '.join(VARIANTS)}.")] = "naive",
    lab_dir: DirOpt = None,
    old_dir: OldDirOpt = None,
    port: Annotated[list[str] | None, typer.Option(help="Pin a port: SERVICE=PORT (repeatable).")] = None,
    load_delay: Annotated[float, typer.Option(help="Model-load delay of a serving replica, seconds.")] = 1.5,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for all services to be ready.")] = 60.0,
    feature_store: Annotated[
        str | None,
        typer.Option(
            "--feature-store",
            help="Online store: 'sqlite' or redis://HOST:PORT/DB (default: $MLCHAOS_LAB_REDIS_URL, else sqlite).",
        ),
    ] = None,
) -> None:
    """Start lab systems (or add some to a running lab) and wait until every service is ready."""
    lab = _lab(_dir(lab_dir, old_dir), load_delay, feature_store)
    ports = {}
    for spec in port or []:
        name, _, p = spec.partition("=")
        if not p.isdigit():
            raise typer.BadParameter(f"--port {spec!r}: expected SERVICE=PORT")
        ports[name] = int(p)
    t0 = time.monotonic()
    try:
        with console.status("starting the lab…"):
            lab.up(systems or None, variant, ports=ports, timeout=timeout)
    except LabError as exc:
        console.print(f"[red]lab up failed:[/] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    console.print(_table(lab))
    console.print(f"ready in {time.monotonic() - t0:.1f}s")


@app.command()
def status(
    lab_dir: DirOpt = None,
    old_dir: OldDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the supervisor state as JSON (with running, dir).")] = False,
) -> None:
    """Show each service: pid, port, readiness, variant and model version."""
    lab = _lab(_dir(lab_dir, old_dir))
    if as_json:  # same exit code as the table: 1 when no lab runs (the last state written, if any, still shown)
        up = lab.is_up()
        typer.echo(json.dumps({**lab.state(), "running": up, "dir": str(lab.paths.root)}, indent=2))
        raise typer.Exit(0 if up else 1)
    if not lab.is_up():
        console.print(f"no lab running in {lab.paths.root}")
        raise typer.Exit(1)
    console.print(_table(lab))


@app.command()
def down(lab_dir: DirOpt = None, old_dir: OldDirOpt = None) -> None:
    """Stop every process the lab started."""
    lab = _lab(_dir(lab_dir, old_dir))
    lab.down()
    console.print("lab stopped")


@app.command()
def logs(
    service: Annotated[str, typer.Argument(help="Service name, e.g. serving-0, fraud, supervisor.")],
    lab_dir: DirOpt = None,
    old_dir: OldDirOpt = None,
    lines: Annotated[int, typer.Option("-n", help="Last N lines.")] = 50,
) -> None:
    """Print the last lines of a service's log (JSON lines)."""
    try:
        path = _lab(_dir(lab_dir, old_dir)).log_path(service)
    except LabInputError as exc:
        typer.echo(f"lab logs: {exc}", err=True)
        raise typer.Exit(2) from None
    if not path.exists():
        console.print(f"no log for {service!r} at {path}")
        raise typer.Exit(1)
    for line in path.read_text(errors="replace").splitlines()[-lines:]:
        typer.echo(line)


@app.command()
def variant(
    new_variant: Annotated[str, typer.Argument(metavar="VARIANT", help=f"One of {', '.join(VARIANTS)}.")],
    systems: Annotated[list[str] | None, typer.Argument(help="Systems (default: all running).")] = None,
    lab_dir: DirOpt = None,
    old_dir: OldDirOpt = None,
) -> None:
    """Switch running systems to another variant without restarting them."""
    lab = _lab(_dir(lab_dir, old_dir))
    lab.set_variant(new_variant, systems or None)
    console.print(_table(lab))


@app.command()
def model(
    version: Annotated[str, typer.Argument(help="current, stale, or a version id (fraud-v2, fraud-v1).")],
    services: Annotated[
        list[str] | None, typer.Argument(help="Services (default: every serving replica).")
    ] = None,
    lab_dir: DirOpt = None,
    old_dir: OldDirOpt = None,
) -> None:
    """Serve another model version on some replicas (the stale-model fault, and its rollback)."""
    try:
        names = _lab(_dir(lab_dir, old_dir)).set_model_version(version, services or None)
    except LabError as exc:
        typer.echo(f"lab model failed: {exc}", err=True)
        raise typer.Exit(2 if isinstance(exc, LabInputError) else 1) from None
    console.print(f"{', '.join(names)} now serve {version}")


@app.command("batch")
def batch(
    variant: Annotated[str | None, typer.Option(help="naive or mitigated (default: the lab's).")] = None,
    date: Annotated[str | None, typer.Option(help="Day to score (default: latest).")] = None,
    lab_dir: DirOpt = None,
    old_dir: OldDirOpt = None,
) -> None:
    """Run the batch prediction pipeline once and print its result."""
    try:
        res = _lab(_dir(lab_dir, old_dir)).run_batch(variant, date)
    except LabError as exc:
        typer.echo(f"lab batch failed: {exc}", err=True)
        raise typer.Exit(2 if isinstance(exc, LabInputError) else 1) from None
    typer.echo(json.dumps(res, indent=2))
    raise typer.Exit(0 if res.get("status") == "ok" else 1)


def _register_manifests() -> None:
    # Kubernetes manifests of the lab systems (practice project 1 on Minikube), from the k8s platform.
    from mlchaos.cli.lab_manifests import manifests

    app.command("manifests", help="Write Kubernetes manifests for the lab systems (and matching experiments).")(
        manifests)


_register_manifests()
