"""Validate experiment files and print every error as ``FILE:LINE:COL: field.path: message``.

Shared by ``mlchaos validate`` (typer) and the entry point's fast path, so both print
and exit alike: 0 when every file is valid, 2 when any is not.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import TextIO


def validate_paths(paths: Sequence[str], *, quiet: bool = False, out: TextIO | None = None,
                   err: TextIO | None = None, variables: Mapping[str, str] | None = None) -> int:
    """Check each file; never a traceback for a user's file. Returns the exit code.

    Every line printed goes through :func:`~mlchaos.spec.errors.escape` (``str(SpecError)``
    does it), so neither a file name nor a key can forge a line or reach the terminal raw.
    """
    from mlchaos.spec.errors import escape
    from mlchaos.spec.loader import SpecErrors, load_file

    out = out or sys.stdout
    err = err or sys.stderr
    bad = 0
    for f in paths:
        try:
            experiment = load_file(f, variables=variables)  # ``--var`` values for ${NAME}
        except SpecErrors as exc:
            bad += 1
            for e in exc.errors:
                print(e, file=err)
        except Exception as exc:
            bad += 1
            print(f"{escape(f)}:1:1: internal error while validating: {type(exc).__name__}: {escape(exc)}", file=err)
        else:
            for note in experiment.notes:  # deprecations: the file is valid, but say what to write now
                print(note, file=err)
            if not quiet:
                print(f"{escape(f)}: ok", file=out)
    return 2 if bad else 0
