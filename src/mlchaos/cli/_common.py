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
    """Apply ``key.path=value`` overrides (value parsed as YAML) to raw experiment data.

    A path may go through lists by index: ``--set steady_state.0.max=200ms``.
    """
    import yaml

    def fail(msg: str) -> typer.Exit:
        return fail_json(json_out, msg, flag="--set")

    for item in sets:
        if "=" not in item:
            raise fail(f"--set {item!r}: expected KEY=VALUE, e.g. --set phases.baseline=2s")
        key, _, raw = item.partition("=")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        cur: Any = data
        parts = key.split(".")
        for part in parts[:-1]:
            if isinstance(cur, list):
                try:
                    cur = cur[int(part)]
                except (ValueError, IndexError):
                    raise fail(f"--set {key}: no list index {part!r}") from None
            else:
                cur = cur.setdefault(part, {})
        last = parts[-1]
        if isinstance(cur, list):
            try:
                cur[int(last)] = value
            except (ValueError, IndexError):
                raise fail(f"--set {key}: no list index {last!r}") from None
        elif isinstance(cur, dict):
            cur[last] = value
        else:
            raise fail(f"--set {key}: {'.'.join(parts[:-1])} is not a mapping")
    return data
