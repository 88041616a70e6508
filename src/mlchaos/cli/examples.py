"""``mlchaos examples``: list the shipped example experiments, or copy them out to edit.

The examples live in the package only (one source, nothing to keep in step with a checkout),
so an installed mlchaos can hand them to its user: ``mlchaos examples copy DIR`` writes the
classic scenarios with their request logs, ``tiny-pause.yaml`` and the Kubernetes
experiments under DIR, ready for ``mlchaos run DIR/scenarios/replica-kill.yaml``.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="List the example experiments shipped with mlchaos, or copy them out to edit.")

_TITLE = re.compile(r"^title:\s*(.+?)\s*$", re.MULTILINE)


@app.command("list")
def list_() -> None:
    """Print each example file (as `examples copy` lays it out) and its experiment's title."""
    from mlchaos.examples import catalog

    for rel, src in catalog().items():
        m = _TITLE.search(src.read_text()) if src.suffix == ".yaml" else None
        title = m.group(1).strip("'\"") if m else "(request log the scenarios' load replays)"
        print(f"{rel:42} {title}")


@app.command("copy")
def copy(
    dest: Path = typer.Argument(Path("mlchaos-examples"), metavar="DIR", help="Folder to write the examples into."),
    force: bool = typer.Option(False, "--force", help="Overwrite files that already exist."),
) -> None:
    """Copy every shipped example into DIR (refuses to overwrite a file unless --force)."""
    from mlchaos.examples import catalog

    files = catalog()
    clash = [rel for rel in files if (dest / rel).exists()]
    if clash and not force:
        print(f"error: {dest / clash[0]} exists ({len(clash)} of the {len(files)} example files do); "
              "--force overwrites them", file=sys.stderr)
        raise typer.Exit(2)
    for rel, src in files.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest / rel)
    print(f"wrote {len(files)} files under {dest}/ (try: mlchaos run {dest / 'scenarios' / 'replica-kill.yaml'})")
