"""Shared CLI helpers: error output and ``--set`` overrides."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

INVALID = 2
#: The width of a console that is not a terminal: wide enough that no line of a report is ever cut.
PIPE_WIDTH = 100_000


def console(stderr: bool = False) -> Console:
    """A rich console for people that stays correct when piped.

    On a terminal it is rich's usual console.  Piped (a file, ``grep``, a CI log) rich would wrap every
    line at 80 columns and shorten table cells with an ellipsis, cutting numbers; here the width is huge
    and soft wrap is on, so each line comes out whole.  Rich honours ``NO_COLOR`` itself, and a console
    that is not a terminal writes no colour codes.
    """
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr, highlight=False)
    return Console(stderr=stderr, highlight=False, width=PIPE_WIDTH, soft_wrap=True)


def fail(msg: str, code: int = INVALID) -> typer.Exit:
    print(f"mlchaos: {msg}", file=sys.stderr)
    return typer.Exit(code)


def fail_json(json_out: bool, msg: str, code: int = INVALID, **fields: Any) -> typer.Exit:
    """An error, also for scripts: under ``--json`` a JSON object on stdout (stdout is never empty).

    People still get the ``mlchaos: ...`` line on stderr; the exit code is the same either way.
    """
    if json_out:
        import json

        print(json.dumps({"status": "invalid" if code == INVALID else "error", "exit_code": code,
                          "errors": [{"message": msg, **fields}]}))
    return fail(msg, code)


def spec_errors_json(errors: list[Any]) -> dict[str, Any]:
    """Experiment-file errors as one JSON object: what ``--json`` prints on stdout for an invalid file."""
    rows = []
    for e in errors:
        row = {k: getattr(e, k, None) for k in ("file", "line", "col", "path", "message")}
        if getattr(e, "flag", None) is not None:
            row["flag"] = e.flag
        rows.append(row)
    return {"status": "invalid", "exit_code": INVALID, "errors": rows}


def apply_overrides(data: dict[str, Any], sets: list[str], json_out: bool = False) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (value parsed as YAML) to raw experiment data; exit 2 on a bad one.

    A path may go through lists by index: ``--set steady_state.0.max=200ms``.  The rules (and the
    errors, which name the flag) live in :mod:`mlchaos.spec.overrides`; ``mlchaos run`` passes its
    flags to the loader instead, so errors in the values they set name the flag too.
    """
    from mlchaos.spec.errors import SpecErrors
    from mlchaos.spec.overrides import apply_overrides as apply

    try:
        apply(data, sets)
    except SpecErrors as exc:
        for e in exc.errors:
            print(f"mlchaos: {e}", file=sys.stderr)
        if json_out:
            import json

            print(json.dumps(spec_errors_json(exc.errors)))
        raise typer.Exit(INVALID) from None
    return data
