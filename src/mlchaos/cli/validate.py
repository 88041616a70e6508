"""``mlchaos validate`` and ``mlchaos schema``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer


def validate(
    files: list[Path] = typer.Argument(..., help="Experiment files (YAML).", show_default=False),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print errors only."),
) -> None:
    """Check experiment files; print every error as FILE:LINE:COL: field.path: message.

    Exit 0 when every file is valid, 2 when any is not.
    """
    from mlchaos.spec.loader import SpecErrors, load_file

    bad = 0
    for f in files:
        try:
            load_file(f)
        except SpecErrors as exc:
            bad += 1
            for e in exc.errors:
                print(e, file=sys.stderr)
        except Exception as exc:  # never a traceback for a user's file
            bad += 1
            print(f"{f}:1:1: internal error while validating: {type(exc).__name__}: {exc}", file=sys.stderr)
        else:
            if not quiet:
                print(f"{f}: ok")
    raise typer.Exit(2 if bad else 0)


def schema() -> None:
    """Print the experiment JSON Schema, with every registered plugin's fields."""
    from mlchaos.spec.loader import json_schema

    print(json.dumps(json_schema(), indent=2))
