"""``mlchaos validate`` and ``mlchaos schema``."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def validate(
    files: list[Path] = typer.Argument(..., help="Experiment files (YAML).", show_default=False),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print errors only."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object: each file, valid or its errors."),
    var: list[str] = typer.Option([], "--var", help="Give a variable of the files a value: --var PORT=8080 (repeatable; "
                                  "the environment gives the others)."),
) -> None:
    """Check experiment files; print every error as FILE:LINE:COL: field.path: message.

    Exit 0 when every file is valid, 2 when any is not.
    """
    from mlchaos.cli.run import load_variables
    from mlchaos.spec.check import validate_paths

    variables = load_variables(var)
    if not json_out:
        raise typer.Exit(validate_paths([str(f) for f in files], quiet=quiet, variables=variables))
    raise typer.Exit(_validate_json([str(f) for f in files], variables))


def _validate_json(paths: list[str], variables: dict[str, str] | None = None) -> int:
    """``--json``: the same checks, one object on stdout (errors keep file, line, col, path, message)."""
    import sys

    from mlchaos.cli._common import spec_errors_json
    from mlchaos.spec.loader import SpecErrors, load_file

    results = []
    for f in paths:
        try:
            experiment = load_file(f, variables=variables)
        except SpecErrors as exc:
            for e in exc.errors:
                print(e, file=sys.stderr)
            results.append({"file": f, "valid": False, "errors": spec_errors_json(exc.errors)["errors"]})
        except Exception as exc:  # never a traceback for a user's file
            msg = f"internal error while validating: {type(exc).__name__}: {exc}"
            results.append({"file": f, "valid": False,
                            "errors": [{"file": f, "line": 1, "col": 1, "path": "", "message": msg}]})
        else:
            for note in experiment.notes:  # deprecations: valid, but stderr says what to write now
                print(note, file=sys.stderr)
            results.append({"file": f, "valid": True, "errors": []})
    code = 0 if all(r["valid"] for r in results) else 2
    print(json.dumps({"status": "valid" if code == 0 else "invalid", "exit_code": code, "files": results}))
    return code


def schema() -> None:
    """Print the experiment JSON Schema, with every registered plugin's fields."""
    from mlchaos.spec.loader import json_schema

    print(json.dumps(json_schema(), indent=2))
