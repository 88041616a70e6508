"""Positioned experiment errors, and the one function that makes them safe to print.

Every problem found in an experiment becomes a :class:`SpecError` printed as
``FILE:LINE:COL: field.path: message``.  Editors and CI parse that shape, so a
file name, a key or a value taken from the file must never be able to forge
a second such line (a key containing ``\\n``) or drive the terminal (ESC
sequences): :func:`escape` is applied to every part of the line in
:meth:`SpecError.__str__`, which is what every caller prints.

An error may also point at a command-line flag instead of a file position
(``--set title.x.y=1: ...``): the value did not come from the file, so a
file position would be a lie.
"""

from __future__ import annotations

import dataclasses
import re

__all__ = ["MAX_ERRORS", "SpecError", "SpecErrors", "escape"]

#: At most this many errors are reported per file; a file with 100,000 unknown keys
#: gets the first ones and a count, not 100,000 lines (nor the time to build them).
MAX_ERRORS = 50

# C0 and C1 controls, DEL, and the Unicode line/paragraph separators and bidi
# overrides that can move or hide text on a terminal.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def _escape_char(m: re.Match[str]) -> str:
    c = m.group()
    simple = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if c in simple:
        return simple[c]
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: object) -> str:
    """``text`` with every control character written as a Python escape (``\\n``, ``\\x1b``).

    Backslashes themselves stay as they are: a message quoting ``'C:\\dir'`` reads
    as written, and no escape we produce can be mistaken for a real newline.
    """
    return _UNSAFE.sub(_escape_char, str(text))


@dataclasses.dataclass(frozen=True)
class SpecError:
    """One problem: where (file position, or the flag that set the value), which field, what."""

    file: str
    line: int
    col: int
    path: str
    message: str
    flag: str | None = None  # ``--set KEY=VALUE`` when the value came from that flag

    def __str__(self) -> str:
        where = f"{escape(self.path)}: " if self.path else ""
        if self.flag is not None:
            return f"{escape(self.flag)}: {where}{escape(self.message)}"
        return f"{escape(self.file)}:{self.line}:{self.col}: {where}{escape(self.message)}"


class SpecErrors(ValueError):
    """All the errors of one experiment file, in file order (at most :data:`MAX_ERRORS`)."""

    def __init__(self, errors: list[SpecError], *, dropped: int = 0) -> None:
        ordered = sorted(errors, key=lambda e: (e.flag is None, e.line, e.col, e.path))
        dropped += max(0, len(ordered) - MAX_ERRORS)
        self.errors = ordered[:MAX_ERRORS]
        self.dropped = dropped
        if dropped and self.errors:
            last = self.errors[-1]
            self.errors.append(dataclasses.replace(
                last, path="", message=f"... and {dropped} more error(s) not shown (the first {MAX_ERRORS} are)"))
        super().__init__("\n".join(str(e) for e in self.errors))
