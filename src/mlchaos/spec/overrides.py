"""``--set KEY.PATH=VALUE`` overrides, applied to an experiment's data before validation.

A value given on the command line has no file position, so an error about it
points at the flag the user typed (``--set title.x.y=1: title: ...``), never at
``FILE:1:1``.  :func:`apply_overrides` returns which paths each flag set, and
the loader reports any error at or below such a path against that flag.

Values are parsed as YAML with the same bounded parser as files (so
``--set max_duration=90s`` is a string and ``--set tags=[a, b]`` a list);
text that is not valid YAML is taken as a plain string, which then meets the
field's own validation (``--set phases.baseline='!!bool maybe'`` is an invalid
duration, exit 2, not a traceback).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from typing import Any

from mlchaos.spec.errors import SpecError, SpecErrors
from mlchaos.spec.yamlload import MAX_DEPTH, parse

Loc = tuple[str | int, ...]

__all__ = ["apply_overrides", "flag_for", "plain_copy"]


def plain_copy(value: Any, depth: int = 0) -> Any:
    """A deep copy with no shared parts (aliases become copies) and string keys, as JSON would make it.

    Overriding ``a.x`` must not change ``b`` when the file wrote ``b: *a``.
    """
    if depth > MAX_DEPTH:  # the parser bounds depth already; data from elsewhere is cut, not recursed
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        return {(k if isinstance(k, str) else str(k)): plain_copy(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_copy(v, depth + 1) for v in value]
    if isinstance(value, datetime.date | bytes | set):
        return str(value)
    return value


def _describe(value: Any) -> str:
    return {str: "a string", list: "a list", dict: "a mapping", bool: "a boolean", int: "a number",
            float: "a number", type(None): "empty"}.get(type(value), type(value).__name__)


def apply_overrides(data: dict[str, Any], sets: Sequence[str]) -> dict[Loc, str]:
    """Apply each ``KEY.PATH=VALUE`` to ``data`` in place; return {path it set: the flag}.

    Raises :class:`SpecErrors` whose errors point at the flags that cannot be applied.
    """
    applied: dict[Loc, str] = {}
    errors: list[SpecError] = []

    def bad(flag: str, path: str, message: str) -> None:
        errors.append(SpecError("", 0, 0, path, message, flag=flag))

    for item in sets:
        flag = f"--set {item if len(item) <= 80 else item[:60] + f'... ({len(item)} characters)'}"
        key, eq, raw = item.partition("=")
        if not eq or not key:
            bad(flag, "", "expected KEY=VALUE, e.g. --set phases.baseline=2s")
            continue
        parts = _split_key(key)
        if parts is None or len(parts) > MAX_DEPTH:
            bad(flag, "", f"invalid key {key!r}: expected dotted names, e.g. phases.baseline, method.0.at "
                "or method[0].at")
            continue
        try:
            value = parse(raw, flag)[1] if raw.strip() else ""
        except SpecErrors:
            value = raw  # not YAML: the text itself, which the field's validation then judges
        cur: Any = data
        loc: Loc = ()
        ok = True
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(cur, list):
                try:
                    index = int(part)
                    if not -len(cur) <= index < len(cur):
                        raise IndexError
                except (ValueError, IndexError):
                    where = ".".join(parts[:i]) or "the experiment"
                    bad(flag, key, f"{where} is a list of {len(cur)}: no item {part!r}")
                    ok = False
                    break
                loc = (*loc, index)
                if last:
                    cur[index] = value
                else:
                    cur = cur[index]
            elif isinstance(cur, dict):
                loc = (*loc, part)
                if last:
                    cur[part] = value
                else:
                    if part not in cur:  # a section the flag creates is the flag's, errors and all
                        applied.setdefault(loc, flag)
                    cur = cur.setdefault(part, {})
            else:
                where = ".".join(parts[:i])
                bad(flag, key, f"{where} is {_describe(cur)}, not a mapping or a list: cannot set {part!r} in it")
                ok = False
                break
        if ok:
            applied[loc] = flag
    if errors:
        raise SpecErrors(errors)
    return applied


_PART = re.compile(r"([^.\[\]]+)((?:\[-?\d+\])*)")


def _split_key(key: str) -> list[str] | None:
    """``method[0].at`` or ``method.0.at`` → ``["method", "0", "at"]``; None when it is neither."""
    parts: list[str] = []
    for piece in key.split("."):
        m = _PART.fullmatch(piece)
        if m is None:
            return None
        parts.append(m.group(1))
        parts += re.findall(r"-?\d+", m.group(2))
    return parts


def flag_for(loc: Loc, applied: dict[Loc, str]) -> str | None:
    """The flag that set ``loc`` or one of its parents (also when the model nests a flat key)."""
    if not applied:
        return None
    for n in range(len(loc), 0, -1):
        probe = loc[:n]
        if probe in applied:
            return applied[probe]
        for i in range(len(probe) - 1):  # ``load.url`` sets what the model calls ``load.request.url``
            flat = probe[:i] + probe[i + 1:]
            if flat in applied:
                return applied[flat]
    return None
