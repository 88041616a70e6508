"""Find the byte spans of values inside a JSON document, so corruption can patch bytes in place.

Re-serialising a whole document would change the bytes of every other field
(float formatting, spacing, key order), and the issue demands that only the
named field changes.  So we walk the raw bytes just far enough to locate the
target values and splice replacements in; everything else is copied as is.
Skipping a container is one regex scan over its strings and brackets, which
keeps a ~700-byte feature vector in the low microseconds.

Paths are dotted: ``features.amount``, ``items.*.score``, ``vector.3`` (list
index), ``*`` matching every key or element at that level.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

_WS = re.compile(rb"[ \t\r\n]*")
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_SCALAR = re.compile(rb"[^,\]}\s]+")
_HARD = re.compile(rb"[\[\]{}\\]")
_NEST = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)
_OPEN = re.compile(rb"[\[{\\]")


class JsonSpanError(ValueError):
    """The document is not the JSON the path expects."""


Step = tuple[str, tuple[bytes, ...]]
"""A path part and the byte forms of it as a JSON key (precomputed once per fault, not per response)."""


def parse_path(path: str) -> list[Step]:
    """Split ``a.b.3`` into steps; an empty path means the whole document."""
    return [(p, _needles(p)) for p in path.split(".") if p != ""] if path else []


def spans(doc: bytes, path: list[Step] | list[str]) -> list[tuple[int, int]]:
    """Byte spans ``(start, end)`` of every value ``path`` selects in ``doc`` (document order)."""
    steps: list[Step] = [p if isinstance(p, tuple) else (p, _needles(p)) for p in path]
    i = _ws(doc, 0)
    if all(part != "*" for part, _ in steps):
        one = _single(doc, i, steps)
        return [] if one is None else [one]
    return list(_find(doc, i, steps, 0))


def first(doc: bytes, steps: list[Step]) -> tuple[int, int] | None:
    """The span of a wildcard-free path, or None: the proxy's per-response hot path.

    Same answer as :func:`spans` for such paths, with the common case (compact or
    lightly spaced JSON, keys found before any nested container) inlined: about a
    third of the Python calls of the general walk.  Anything unusual falls back to it.
    """
    n = len(doc)
    i = 0
    while i < n and doc[i] <= 32:
        i += 1
    for _part, needles in steps:
        if i >= n or doc[i] != 123:  # not an object here: lists and misses take the general path
            return _single(doc, _ws(doc, 0), steps)
        pos = doc.find(needles[0], i + 1)
        if pos < 0 or len(needles) > 1 or _HARD.search(doc, i + 1, pos) is not None or doc.count(b'"', i + 1, pos) % 2:
            return _single(doc, _ws(doc, 0), steps)
        j = pos + len(needles[0])
        while j < n and doc[j] <= 32:
            j += 1
        if j >= n or doc[j] != 58:  # ':' — the needle was a value, not a key
            return _single(doc, _ws(doc, 0), steps)
        i = j + 1
        while i < n and doc[i] <= 32:
            i += 1
    if i < n and doc[i] == 34:  # a string value
        m = _STRING.match(doc, i)
        if m is None:
            raise JsonSpanError(f"unterminated string at byte {i}")
        return i, m.end()
    m = _SCALAR.match(doc, i) if i < n and doc[i] not in (123, 91) else None
    return (i, m.end()) if m is not None else (i, _skip(doc, i))


def _single(doc: bytes, i: int, steps: list[Step]) -> tuple[int, int] | None:
    """The common case, a path without wildcards: one straight walk, no generators."""
    for part, needles in steps:
        c = doc[i : i + 1]
        if c == b"{":
            for needle in needles:
                j = _member(doc, i, needle)
                if j is not None:
                    break
            else:
                return None
            i = _ws(doc, j)
        elif c == b"[" and part.isdigit():
            index = int(part)
            i = _ws(doc, i + 1)
            if doc[i : i + 1] == b"]":
                return None
            for _ in range(index):
                i = _ws(doc, _skip(doc, i))
                if doc[i : i + 1] != b",":
                    return None
                i = _ws(doc, i + 1)
        else:
            return None
    return i, _skip(doc, i)


def _skip(doc: bytes, i: int) -> int:
    """Index just past the value starting at ``i``."""
    c = doc[i : i + 1]
    if c == b'"':
        m = _STRING.match(doc, i)
        if m is None:
            raise JsonSpanError(f"unterminated string at byte {i}")
        return m.end()
    if c in (b"{", b"["):
        flat = _skip_flat(doc, i)
        if flat is not None:
            return flat
        depth = 0
        for m in _NEST.finditer(doc, i):
            t = m.group()
            if t in (b"{", b"["):
                depth += 1
            elif t in (b"}", b"]"):
                depth -= 1
                if depth == 0:
                    return m.end()
        raise JsonSpanError(f"unbalanced container at byte {i}")
    m = _SCALAR.match(doc, i)
    if m is None:
        raise JsonSpanError(f"expected a value at byte {i}")
    return m.end()


def _skip_flat(doc: bytes, i: int) -> int | None:
    """Index just past a container with no nested container and no escape (a feature vector), or None.

    Three C calls instead of a Python step per string: the first closing bracket ends the
    container when nothing before it opens another one or escapes, and an even number of
    quotes before it proves it is not inside a string.
    """
    close = doc.find(b"}" if doc[i] == 123 else b"]", i + 1)
    if close < 0 or _OPEN.search(doc, i + 1, close) is not None or doc.count(b'"', i + 1, close) % 2:
        return None
    return close + 1


def _ws(doc: bytes, i: int) -> int:
    if i < len(doc) and doc[i] > 32:  # compact JSON: no whitespace to skip, no regex call
        return i
    return _WS.match(doc, i).end()  # type: ignore[union-attr]


def _find(doc: bytes, i: int, path: list[Step], depth: int) -> Iterator[tuple[int, int]]:
    if depth == len(path):
        yield i, _skip(doc, i)
        return
    part, needles = path[depth]
    c = doc[i : i + 1]
    if c == b"{" and part != "*":
        for needle in needles:
            j = _member(doc, i, needle)
            if j is not None:
                yield from _find(doc, _ws(doc, j), path, depth + 1)
                break
    elif c == b"{":
        i = _ws(doc, i + 1)
        if doc[i : i + 1] == b"}":
            return
        while True:
            m = _STRING.match(doc, i)
            if m is None:
                raise JsonSpanError(f"expected a key at byte {i}")
            i = _ws(doc, m.end())
            if doc[i : i + 1] != b":":
                raise JsonSpanError(f"expected ':' at byte {i}")
            i = _ws(doc, i + 1)
            yield from _find(doc, i, path, depth + 1)
            i = _ws(doc, _skip(doc, i))
            sep = doc[i : i + 1]
            if sep == b"}":
                return
            if sep != b",":
                raise JsonSpanError(f"expected ',' or '}}' at byte {i}")
            i = _ws(doc, i + 1)
    elif c == b"[":
        index = -1 if part == "*" else (int(part) if part.isdigit() else None)
        if index is None:
            return
        i = _ws(doc, i + 1)
        if doc[i : i + 1] == b"]":
            return
        n = 0
        while True:
            if index < 0 or n == index:
                yield from _find(doc, i, path, depth + 1)
                if index >= 0:
                    return
            i = _ws(doc, _skip(doc, i))
            sep = doc[i : i + 1]
            if sep == b"]":
                return
            if sep != b",":
                raise JsonSpanError(f"expected ',' or ']' at byte {i}")
            i = _ws(doc, i + 1)
            n += 1


def _needles(key: str) -> tuple[bytes, ...]:
    """The key as JSON encoders write it: ASCII-escaped (Python's default) and raw UTF-8."""
    a = json.dumps(key).encode()
    b = json.dumps(key, ensure_ascii=False).encode()
    return (a,) if a == b else (a, b)


def _member(doc: bytes, obj: int, needle: bytes) -> int | None:
    """Index just past the ':' of key ``needle`` (quoted) directly inside the object at ``obj``.

    ``bytes.find`` jumps to candidates; one C-level token scan (strings and
    brackets only) proves a candidate is a key of *this* object, not a string
    value or a key of a nested object.
    """
    pos = doc.find(needle, obj + 1)
    if pos < 0:
        return None
    if _HARD.search(doc, obj + 1, pos) is None and doc.count(b'"', obj + 1, pos) % 2 == 0:
        # fast path: no brackets or escapes before the candidate, so it is a token of this object
        j = _ws(doc, pos + len(needle))
        if doc[j : j + 1] == b":":
            return j + 1
    depth = 0
    tokens = _NEST.finditer(doc, obj + 1)
    tok = next(tokens, None)
    pos = doc.find(needle, obj + 1)
    while pos >= 0:
        while tok is not None and tok.end() <= pos:
            t = tok.group()
            if t in (b"{", b"["):
                end = _skip_flat(doc, tok.start()) if depth == 0 else None
                if end is not None:  # a flat nested container: jump past it, no step per string
                    tokens = _NEST.finditer(doc, end)
                    tok = next(tokens, None)
                    if end > pos:
                        pos = doc.find(needle, end)
                        if pos < 0:
                            return None
                    continue
                depth += 1
            elif t in (b"}", b"]"):
                depth -= 1
                if depth < 0:
                    return None  # the object ended before the candidate
            tok = next(tokens, None)
        if tok is not None and tok.start() == pos and depth == 0:
            j = _ws(doc, tok.end())
            if doc[j : j + 1] == b":":
                return j + 1
        pos = doc.find(needle, pos + 1)
    return None
