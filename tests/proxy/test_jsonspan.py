"""Byte spans of JSON values: the basis of 'only the named field changes'."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from mlchaos.proxy import jsonspan
from mlchaos.proxy.faults.json_corrupt import JsonCorrupt, JsonCorruptParams

DOC = b'{"note": "a \\"amount\\": {", "nested": {"amount": 5, "v": [1, {"amount": 6}]}, "amount": 12.50, "xs": [1, 2]}'


def values(path: str) -> list[bytes]:
    return [DOC[a:b] for a, b in jsonspan.spans(DOC, jsonspan.parse_path(path))]


def test_paths() -> None:
    assert values("amount") == [b"12.50"]
    assert values("nested.amount") == [b"5"]
    assert values("nested.v.1.amount") == [b"6"]
    assert values("xs.*") == [b"1", b"2"]
    assert values("xs.5") == [] and values("missing") == [] and values("note.x") == []
    assert values("*.amount") == [b"5"]


def test_corrupt_returns_none_when_nothing_to_do() -> None:
    f = JsonCorrupt(JsonCorruptParams(fields=["missing"]), "response")
    assert f.corrupt(DOC) is None
    assert f.corrupt(b"not json") is None


keys = st.text(alphabet="abcxyz\"\\ {}[]:,", min_size=1, max_size=6)
docs = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(doc=st.dictionaries(keys, docs, min_size=1, max_size=5), indent=st.sampled_from([None, 2]))
def test_every_top_level_value_is_found_exactly(doc: dict, indent: int | None) -> None:
    raw = json.dumps(doc, indent=indent).encode()
    for key, value in doc.items():
        found = jsonspan.spans(raw, [key]) if "." not in key else []
        if "." in key or key == "*":
            continue
        assert len(found) == 1
        a, b = found[0]
        assert json.loads(raw[a:b]) == value


def _leaf_paths(value: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _leaf_paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _leaf_paths(v, (*prefix, str(i)))
    return out


@settings(max_examples=300, deadline=None)
@given(doc=st.dictionaries(keys, docs, min_size=1, max_size=5), indent=st.sampled_from([None, 2]),
       sep=st.sampled_from([(", ", ": "), (",", ":")]))
def test_the_fast_locator_agrees_with_the_general_walk(doc: dict, indent: int | None, sep: tuple[str, str]) -> None:
    """jsonspan.first (the proxy's hot path) must find exactly what spans() finds, or nothing where it finds nothing."""
    raw = json.dumps(doc, indent=indent, separators=sep if indent is None else None).encode()
    for parts in [*_leaf_paths(doc), ("missing",), (next(iter(doc)), "missing")]:
        if any(p in ("*", "") or "." in p for p in parts):
            continue
        steps = jsonspan.parse_path(".".join(parts))
        general = jsonspan.spans(raw, steps)
        fast = jsonspan.first(raw, steps)
        assert (general[0] if general else None) == fast, (raw, parts)


def _at(value: object, parts: tuple[str, ...]) -> object:
    for p in parts:
        value = value[int(p)] if isinstance(value, list) else value[p]  # type: ignore[index]
    return value


@settings(max_examples=300, deadline=None)
@given(doc=st.dictionaries(keys, docs, min_size=1, max_size=5), indent=st.sampled_from([None, 2]),
       sep=st.sampled_from([(", ", ": "), (",", ":")]))
def test_every_nested_value_is_found_exactly(doc: dict, indent: int | None, sep: tuple[str, str]) -> None:
    """Deep paths through (flat and nested) containers that precede the key: the skip shortcuts must agree."""
    raw = json.dumps(doc, indent=indent, separators=sep if indent is None else None).encode()
    for parts in _leaf_paths(doc):
        if any(p in ("*", "") or "." in p for p in parts):
            continue
        found = jsonspan.spans(raw, jsonspan.parse_path(".".join(parts)))
        assert len(found) == 1, (raw, parts)
        a, b = found[0]
        assert json.loads(raw[a:b]) == _at(doc, parts), (raw, parts)


def test_a_key_after_a_flat_nested_object_is_found_without_a_step_per_string() -> None:
    doc = json.dumps({"features": {f"f{i}": i * 0.5 for i in range(32)}, "note": "a}b", "amount": 12.5}).encode()
    for path, want in (("amount", b"12.5"), ("note", b'"a}b"'), ("features.f31", b"15.5")):
        (a, b), = jsonspan.spans(doc, jsonspan.parse_path(path))
        assert doc[a:b] == want
        assert jsonspan.first(doc, jsonspan.parse_path(path)) == (a, b)
