"""JSON paths into model answers: one small grammar for every probe that reads a field.

Why one module: the HTTP probe, the predictions probe and the model-identity
probes all read fields of JSON answers, and real serving stacks answer in
batches — MLflow's ``{"predictions": [0, 1, 1]}``, the Open Inference
Protocol's ``{"outputs": [{"name": "probabilities", "shape": [3, 2], "data":
[...]}]}``.  A path that can only name one value reads one row of a batch
(the issue this fixes: a class share of 1.0 or 0.0 where the truth was 0.6).

Grammar (a subset of JSONPath, written the way people write it in YAML)::

    predictions                 a key
    model.version               nested keys
    items[0].score  items.0     an index ([i] or a bare integer on a list)
    predictions[-1]             negative indexes count from the end
    predictions[*]  features.*  wildcards: every element / every value
    outputs[name=probabilities] a filter: the elements whose 'name' is 'probabilities'
    rows[id=3]  rows[id="3"]    numbers compare as numbers; quoted values as strings only
    ["model.name"]  ['a b']     quoted keys (dots, brackets, spaces inside)

A path is compiled once (:func:`compile`, cached), so a bad path is an error
at validation that names the field and the column, never a failure mid-run.
:meth:`JsonPath.find_all` returns every match (wildcards and filters
flatten); :meth:`JsonPath.find_one` the first, raising ``KeyError`` with the
missing part — the behaviour of the old ``probes.http.json_path``, which is
now a thin wrapper over this module.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterator
from typing import Any

__all__ = ["JsonPath", "JsonPathError", "compile", "find_all", "find_one"]


class JsonPathError(ValueError):
    """A path that does not parse; the message names the column and what was expected there."""


@dataclasses.dataclass(frozen=True)
class Key:
    """A dict key; on a list, a key that reads as an integer is an index (``items.0``, as before)."""

    name: str


@dataclasses.dataclass(frozen=True)
class Index:
    index: int


@dataclasses.dataclass(frozen=True)
class Wild:
    """Every element of a list, every value of a dict (in order)."""


@dataclasses.dataclass(frozen=True)
class Filter:
    """Elements of a list (or values of a dict) that are objects whose ``key`` equals ``value``."""

    key: str
    value: str
    quoted: bool


Segment = Key | Index | Wild | Filter
_MISS = object()


def _as_int(text: str) -> int | None:
    t = text[1:] if text.startswith("-") else text
    return int(text) if t.isdigit() and t.isascii() else None


def _number(text: str) -> float | None:
    try:
        x = float(text)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def _matches(elem: Any, f: Filter) -> bool:
    if not isinstance(elem, dict) or f.key not in elem:
        return False
    v = elem[f.key]
    if isinstance(v, str):
        return v == f.value
    if f.quoted:
        return False
    if isinstance(v, bool) or v is None:
        return {True: "true", False: "false", None: "null"}[v] == f.value
    if isinstance(v, int | float):
        x = _number(f.value)
        return x is not None and float(v) == x
    return False


@dataclasses.dataclass(frozen=True)
class JsonPath:
    """A compiled path: its text (for messages) and its segments."""

    text: str
    segments: tuple[Segment, ...]

    @property
    def multi(self) -> bool:
        """Whether the path can match more than one value (it has a wildcard or a filter)."""
        return any(isinstance(s, Wild | Filter) for s in self.segments)

    @property
    def parent(self) -> JsonPath:
        """The path without its last segment (the object holding the last key)."""
        return JsonPath(self.text, self.segments[:-1])

    @property
    def last(self) -> Segment | None:
        return self.segments[-1] if self.segments else None

    def __str__(self) -> str:
        return self.text

    def _walk(self, node: Any, i: int, missing: Any) -> Iterator[Any]:
        if i == len(self.segments):
            yield node
            return
        seg = self.segments[i]
        if isinstance(seg, Wild | Filter):
            if isinstance(node, list):
                elems: list[Any] = node
            elif isinstance(node, dict):
                elems = list(node.values())
            else:
                if missing is not _MISS:
                    yield missing
                return
            for e in elems:
                if isinstance(seg, Filter) and not _matches(e, seg):
                    continue
                yield from self._walk(e, i + 1, missing)
            return
        nxt = _step(node, seg)
        if nxt is _MISS:
            if missing is not _MISS:
                yield missing
            return
        yield from self._walk(nxt, i + 1, missing)

    def find_all(self, doc: Any, missing: Any = _MISS) -> list[Any]:
        """Every value the path reaches, in document order (wildcards and filters flatten).

        A branch that ends early (a missing key, an index out of range) is skipped, or stands as
        ``missing`` when one is given: ``predictions[*].score`` over rows of which one has no score
        gives one ``missing`` for that row, so a share of rows without the field can be counted.
        """
        return list(self._walk(doc, 0, missing))

    def find_one(self, doc: Any) -> Any:
        """The first value the path reaches; ``KeyError`` naming the missing part when there is none."""
        if self.multi:
            for v in self._walk(doc, 0, _MISS):
                return v
            raise KeyError(self.text)
        cur = doc
        for seg in self.segments:
            nxt = _step(cur, seg)
            if nxt is _MISS:
                raise KeyError(_show(seg))
            cur = nxt
        return cur


def _show(seg: Segment) -> str:
    if isinstance(seg, Key):
        return seg.name
    if isinstance(seg, Index):
        return str(seg.index)
    return "*" if isinstance(seg, Wild) else f"{seg.key}={seg.value}"


def _step(node: Any, seg: Segment) -> Any:
    if isinstance(seg, Index):
        if isinstance(node, list):
            try:
                return node[seg.index]
            except IndexError:
                return _MISS
        if isinstance(node, dict):  # [0] on an object: the key "0" (what the old dotted reader did)
            return node.get(str(seg.index), _MISS)
        return _MISS
    assert isinstance(seg, Key)
    if isinstance(node, dict):
        return node.get(seg.name, _MISS)
    if isinstance(node, list):
        i = _as_int(seg.name)
        if i is None:
            return _MISS
        try:
            return node[i]
        except IndexError:
            return _MISS
    return _MISS


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, why: str, at: int | None = None) -> JsonPathError:
        col = (self.pos if at is None else at) + 1
        return JsonPathError(f"invalid JSON path {self.text!r} at column {col}: {why}")

    def parse(self) -> tuple[Segment, ...]:
        t = self.text
        if not t.strip():
            raise JsonPathError("empty JSON path")
        segs: list[Segment] = []
        while self.pos < len(t):
            c = t[self.pos]
            if c == ".":
                self.pos += 1
                continue  # a separator ('a.b'); a leading or doubled one is ignored, as before
            if c == "[":
                segs.append(self.bracket())
            elif c == "]":
                raise self.fail("']' without '['")
            elif c in "\"'":
                segs.append(Key(self.quoted()))
            else:
                segs.append(self.bare())
        return tuple(segs)

    def bare(self) -> Segment:
        t, start = self.text, self.pos
        while self.pos < len(t) and t[self.pos] not in ".[]":
            self.pos += 1
        word = t[start:self.pos]
        if word == "*":
            return Wild()
        if "*" in word:
            raise self.fail("'*' must be a whole segment ('a.*' or 'a[*]')", start + word.index("*"))
        return Key(word)

    def quoted(self) -> str:
        t, quote = self.text, self.text[self.pos]
        start = self.pos
        self.pos += 1
        out: list[str] = []
        while self.pos < len(t):
            c = t[self.pos]
            if c == "\\" and self.pos + 1 < len(t):
                out.append(t[self.pos + 1])
                self.pos += 2
                continue
            if c == quote:
                self.pos += 1
                return "".join(out)
            out.append(c)
            self.pos += 1
        raise self.fail(f"unterminated quote {quote}", start)

    def bracket(self) -> Segment:
        t, start = self.text, self.pos
        self.pos += 1
        if self.pos < len(t) and t[self.pos] in "\"'":
            key = self.quoted()
            self.expect_close(start)
            return Key(key)
        end = t.find("]", self.pos)
        if end < 0:
            raise self.fail("'[' without ']'", start)
        inner = t[self.pos:end].strip()
        if inner == "*":
            self.pos = end + 1
            return Wild()
        i = _as_int(inner)
        if i is not None:
            self.pos = end + 1
            return Index(i)
        if "=" in inner:
            return self.filter(start)
        raise self.fail(f"[{inner}] is not an index, '*', a filter like [name=probabilities] or a quoted key",
                        start)

    def filter(self, start: int) -> Filter:
        t = self.text
        eq = t.index("=", self.pos)
        key = t[self.pos:eq].strip()
        if not key or any(c in key for c in "[]\"'*"):
            raise self.fail("a filter needs a key before '=', e.g. [name=probabilities]", start)
        self.pos = eq + 1
        if self.pos < len(t) and t[self.pos] == "=":  # [name==x] reads the same
            self.pos += 1
        while self.pos < len(t) and t[self.pos] == " ":
            self.pos += 1
        if self.pos < len(t) and t[self.pos] in "\"'":
            value, quoted = self.quoted(), True
            self.expect_close(start)
        else:
            end = t.find("]", self.pos)
            if end < 0:
                raise self.fail("'[' without ']'", start)
            value, quoted = t[self.pos:end].strip(), False
            if not value:
                raise self.fail("a filter needs a value after '='", start)
            if any(c in value for c in "[\"'"):
                raise self.fail("quote a filter value that has brackets or quotes", start)
            self.pos = end + 1
        return Filter(key, value, quoted)

    def expect_close(self, start: int) -> None:
        t = self.text
        while self.pos < len(t) and t[self.pos] == " ":
            self.pos += 1
        if self.pos >= len(t) or t[self.pos] != "]":
            raise self.fail("expected ']'", start)
        self.pos += 1


@functools.lru_cache(maxsize=1024)
def compile(text: str) -> JsonPath:
    """Parse ``text`` once; :class:`JsonPathError` (a ValueError) says where it is wrong."""
    if not isinstance(text, str):
        raise JsonPathError(f"a JSON path is a string, got {type(text).__name__}")
    return JsonPath(text, _Parser(text).parse())


def check(text: str) -> str:
    """A pydantic validator: the path as written, once it compiles (the error names the field)."""
    compile(text)
    return text


def find_all(doc: Any, path: str) -> list[Any]:
    return compile(path).find_all(doc)


def find_one(doc: Any, path: str) -> Any:
    return compile(path).find_one(doc)
