"""``mlchaos k8s``: Kubernetes helpers that need no running experiment.

* ``render EXPERIMENT`` prints the Chaos Mesh objects the experiment would
  create, as YAML documents (a dry run: it talks to no cluster).  Steps that
  act through the Kubernetes API (pod delete, scale) are listed as comments.
* ``cleanup`` deletes every Chaos Mesh object this machine created (what
  ``mlchaos stop`` does for Kubernetes), selected by the machine label.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Kubernetes and Chaos Mesh helpers.")


@app.command()
def render(
    experiment: Annotated[Path, typer.Argument(help="Experiment file (YAML).")],
    run_id: Annotated[str, typer.Option(help="Run id put in the objects' labels.")] = "dry-run",
    fmt: Annotated[str, typer.Option("--format", help="yaml or json.")] = "yaml",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file instead of stdout.")] = None,
    output: Annotated[
        str | None, typer.Option("--output", hidden=True, help="Deprecated spelling of --format.")
    ] = None,
    var: Annotated[list[str] | None, typer.Option(
        "--var", help="Give a variable of the file a value: --var PORT=8080 (repeatable; the environment "
                      "gives the others), as in run.")] = None,
) -> None:
    """Print the Chaos Mesh objects EXPERIMENT would create (dry run, no cluster).

    -o is an output path, as in every mlchaos command; the format is --format (--output, its old
    spelling, still works and says so).
    """
    if output is not None:
        typer.echo("mlchaos k8s render: --output is deprecated; use --format (-o is now an output file)", err=True)
        fmt = output
    if fmt not in ("yaml", "json"):
        typer.echo(f"mlchaos k8s render: --format must be yaml or json, not {fmt!r}", err=True)
        raise typer.Exit(2)
    import yaml
    from pydantic import ValidationError

    from mlchaos.cli.run import load_variables
    from mlchaos.platforms.kubernetes.render import render_plan
    from mlchaos.spec.loader import SpecErrors, load_file

    try:  # the whole experiment first, so errors carry FILE:LINE:COL as in `mlchaos validate`
        loaded = load_file(experiment, variables=load_variables(list(var or [])))
    except SpecErrors as exc:
        for e in exc.errors:
            typer.echo(str(e), err=True)
        raise typer.Exit(2) from None
    data = loaded.raw  # ${VAR}s resolved, aliases applied: what `mlchaos run` would run
    try:
        steps = render_plan(data, run_id=run_id)
    except (ValidationError, ValueError) as exc:
        typer.echo(f"{experiment}: {exc}", err=True)
        raise typer.Exit(2) from None
    if fmt == "json":
        text = json.dumps([s.object for s in steps if s.object], indent=2) + "\n"
    else:
        docs: list[str] = []
        for s in steps:
            head = f"# method[{s.index}] {s.fault}: {s.note}\n"
            docs.append(head if s.object is None else head + yaml.safe_dump(s.object, sort_keys=False))
        text = "---\n".join(docs) if docs else "# no method steps\n"
    if out is None:
        sys.stdout.write(text)
        return
    out.write_text(text)
    typer.echo(f"wrote {out}", err=True)


@app.command()
def cleanup(
    kubeconfig: Annotated[str | None, typer.Option(help="Kubeconfig file.")] = None,
    context: Annotated[str | None, typer.Option(help="Kubeconfig context.")] = None,
    server: Annotated[str | None, typer.Option(help="Plain API URL (e.g. kubectl proxy).")] = None,
    namespace: Annotated[
        list[str] | None, typer.Option("--namespace", "-n", help="Only these namespaces (repeatable).")
    ] = None,
) -> None:
    """Delete every Chaos Mesh object this machine created (by the machine label)."""
    from mlchaos.platforms.kubernetes import cleanup as do_cleanup
    from mlchaos.platforms.kubernetes.client import Connection

    result = do_cleanup(
        Connection(kubeconfig=kubeconfig, context=context, server=server), namespaces=namespace or None
    )
    for plural, by_ns in result["deleted"].items():
        for ns, n in by_ns.items():
            typer.echo(f"deleted {n} {plural} in {ns}")
    for err in result["errors"]:
        typer.echo(f"error: {err}", err=True)
    if not result["deleted"] and not result["errors"]:
        typer.echo(f"nothing to delete ({result['selector']})")
    if result["errors"]:
        raise typer.Exit(5)
