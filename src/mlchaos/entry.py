"""The console-script entry point: answer the commonest cheap calls before importing the CLI framework.

``mlchaos validate FILE...`` runs in editors and pre-commit hooks on every save, and
``--version`` in every bug report; importing typer (and its click) costs about as much as
validating a file. So these exact forms are answered here with plain ``sys.argv`` checks;
anything else (an unknown option, ``--help``, every other command) goes to the typer app,
which also documents these commands.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def main(argv: list[str] | None = None) -> Any:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:
        from mlchaos import __version__

        print(f"mlchaos {__version__}")
        return 0
    if len(args) >= 2 and args[0] == "validate":
        rest = args[1:]
        quiet = False
        while rest and rest[0] in ("-q", "--quiet"):
            quiet, rest = True, rest[1:]
        if rest and not any(a.startswith("-") for a in rest):
            import gc

            gc.disable()  # a short command allocating ~10^5 objects at import: no cycles worth collecting (≈30 ms CPU)
            from mlchaos.spec.check import validate_paths

            code = validate_paths(rest, quiet=quiet)
            sys.stdout.flush()
            sys.stderr.flush()
            # nothing is left to clean up (no files, no threads, no faults): skip the interpreter's
            # teardown of every imported module (≈30 ms CPU of ≈210, measured in benchmarks/RESULTS.md)
            os._exit(code)
    from mlchaos import extras

    try:
        extras.check_command(args)
        from mlchaos.cli import main as typer_main

        return typer_main(argv)
    except extras.MissingExtra as exc:
        _missing_extra(str(exc))
    except ModuleNotFoundError as exc:
        # a command reached a module of an extra that is not installed: name the extra, no traceback
        extra = extras.for_module(exc.name or "")
        if extra is None:
            raise
        what = f"mlchaos {args[0]}" if args else "mlchaos"
        _missing_extra(extras.message(extra, what, [exc.name or ""]))


def _missing_extra(line: str) -> None:
    """Bad input, not a bug: one plain line on stderr (no rich markup: it would eat "[lab]"), exit 2."""
    print(f"error: {line}", file=sys.stderr)
    raise SystemExit(2)
