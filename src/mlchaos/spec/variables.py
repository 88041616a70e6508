"""``${VAR}`` in experiment files: ports, paths and PIDs that change at every start.

An experiment names a server's port or a model's path; those change with
each deployment, and a templating script around every experiment is a second
language to get wrong.  So a YAML scalar may hold ``${NAME}`` (the variable,
an error if it is not defined) or ``${NAME:-default}`` (the default when the
variable is unset or empty, as in the shell), taken from ``--var NAME=VALUE``
flags first, then from the environment.  ``$${`` writes a literal ``${``.

Why it happens where it does:

* **On each scalar, before YAML types it.**  The loader substitutes the text
  of every scalar while composing (:func:`mlchaos.spec.yamlload.parse`),
  before the resolver decides its type, so ``port: ${PORT}`` is the int
  8080 exactly as ``port: 8080`` would be, and ``"${PORT}"`` (quoted) stays
  a string.  Types are then validated as for any literal value.
* **Never re-read.**  A value is inserted as text: a ``${X}`` inside it is
  not expanded again, and it cannot add YAML structure (``a: b`` in a value
  is a string, not a mapping), so a variable can change a value, never the
  shape of the experiment.
* **Every undefined variable reported at once**, at its ``FILE:LINE:COL``,
  like every other error in an experiment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["Undefined", "escape", "parse_flags", "substitute"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Undefined(ValueError):
    """A reference that cannot be resolved: ``offset`` is where it starts in the scalar's text."""

    def __init__(self, message: str, offset: int, name: str | None = None) -> None:
        super().__init__(message)
        self.offset = offset
        self.name = name


def substitute(text: str, lookup: Mapping[str, str]) -> tuple[str, list[Undefined]]:
    """``text`` with every ``${NAME}`` / ``${NAME:-default}`` replaced and ``$${`` unescaped.

    Returns the new text and the problems found (an undefined variable, a
    reference that is not well formed); a problem's reference is left as
    written in the text, so the other errors can still be reported.
    """
    if "$" not in text:  # the common case: no work
        return text, []
    out: list[str] = []
    errors: list[Undefined] = []
    i, n = 0, len(text)
    while i < n:
        j = text.find("$", i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        if text.startswith("$${", j):  # an escaped reference: the literal text "${"
            out.append("${")
            i = j + 3
            continue
        if not text.startswith("${", j):
            out.append("$")
            i = j + 1
            continue
        end = text.find("}", j + 2)
        m = _NAME.match(text, j + 2)
        if end < 0 or m is None or (m.end() != end and not text.startswith(":-", m.end())):
            shown = text[j:end + 1] if end >= 0 else text[j:j + 20]
            errors.append(Undefined(f"invalid variable reference {shown!r}: write ${{NAME}} or ${{NAME:-default}}"
                                    " ($${ for a literal ${)", j))
            out.append(text[j:end + 1] if end >= 0 else text[j:])
            i = end + 1 if end >= 0 else n
            continue
        name = m.group()
        value = lookup.get(name)
        if m.end() == end:  # ${NAME}
            if value is None:
                errors.append(Undefined(f"undefined variable {name!r}: set it in the environment or pass "
                                        f"--var {name}=VALUE (or write ${{{name}:-default}})", j, name))
                out.append(text[j:end + 1])
            else:
                out.append(value)
        else:  # ${NAME:-default}: the default when unset or empty, as in the shell
            out.append(value if value else text[m.end() + 2:end])
        i = end + 1
    return "".join(out), errors


def escape(text: str) -> str:
    """``text`` written so that :func:`substitute` gives it back unchanged (every ``${`` as ``$${``)."""
    return text.replace("${", "$${")


def parse_flags(flags: Iterable[str]) -> dict[str, str]:
    """``--var NAME=VALUE`` flags as a mapping; raise ValueError naming the flag for a bad shape."""
    out: dict[str, str] = {}
    for flag in flags:
        name, eq, value = flag.partition("=")
        if not eq or not _NAME.fullmatch(name):
            raise ValueError(f"--var {flag}: expected NAME=VALUE with NAME made of letters, digits and _ "
                             "(not starting with a digit), e.g. --var PORT=8080")
        out[name] = value
    return out


def lookup(variables: Mapping[str, Any] | None = None) -> dict[str, str]:
    """What ``${NAME}`` resolves against: the environment, overridden by ``variables`` (``--var``)."""
    merged = dict(os.environ)
    merged.update({str(k): str(v) for k, v in (variables or {}).items()})
    return merged
