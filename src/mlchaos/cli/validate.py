"""``mlchaos validate`` and ``mlchaos schema``."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def validate(
    files: list[Path] = typer.Argument(..., help="Experiment files (YAML).", show_default=False),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print errors only."),
) -> None:
    """Check experiment files; print every error as FILE:LINE:COL: field.path: message.

    Exit 0 when every file is valid, 2 when any is not.
    """
    from mlchaos.spec.check import validate_paths

    raise typer.Exit(validate_paths([str(f) for f in files], quiet=quiet))


def schema() -> None:
    """Print the experiment JSON Schema, with every registered plugin's fields."""
    from mlchaos.spec.loader import json_schema

    print(json.dumps(json_schema(), indent=2))
