"""The JSON path grammar: what it reads, what it refuses (with the column), and that it parses what it prints.

Property tests (hypothesis) build random paths from segments, print them, parse them back and compare;
random documents check that ``find_one`` is the old dotted reader's answer on the paths it knew.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlchaos import jsonpath
from mlchaos.jsonpath import Filter, Index, JsonPathError, Key, Wild
from mlchaos.probes.http import json_path

DOC = {
    "predictions": [0, 1, 1],
    "model": {"version": "3", "name.with.dots": "m"},
    "items": [{"score": 0.1}, {"score": 0.9}, {"other": 1}],
    "outputs": [
        {"name": "label", "shape": [2], "datatype": "INT64", "data": [1, 0]},
        {"name": "probabilities", "shape": [2, 2], "datatype": "FP64", "data": [0.2, 0.8, 0.7, 0.3]},
        {"name": 7, "data": [5]},
    ],
}


@pytest.mark.parametrize(("path", "want"), [
    ("predictions[*]", [0, 1, 1]),
    ("predictions.*", [0, 1, 1]),
    ("predictions", [[0, 1, 1]]),
    ("predictions[-1]", [1]),
    ("items[*].score", [0.1, 0.9]),
    ("outputs[name=probabilities].data", [[0.2, 0.8, 0.7, 0.3]]),
    ('outputs[name="label"].shape[0]', [2]),
    ("outputs[name==label].datatype", ["INT64"]),
    ("outputs[name=7].data[0]", [5]),  # a number compares as a number
    ('outputs[name="7"].data', []),  # a quoted value only matches a string
    ('model["name.with.dots"]', ["m"]),
    ("model['name.with.dots']", ["m"]),
    ("model.*", ["3", "m"]),
    ("items.1.score", [0.9]),
])
def test_find_all(path: str, want: list[Any]) -> None:
    assert jsonpath.find_all(DOC, path) == want


def test_missing_rows_stand_as_the_given_placeholder() -> None:
    assert jsonpath.compile("items[*].score").find_all(DOC, missing=None) == [0.1, 0.9, None]
    assert jsonpath.compile("predictions[*]").find_all({"error": "x"}, missing=None) == [None]


def test_find_one_keeps_the_old_readers_behaviour() -> None:
    assert json_path(DOC, "model.version") == "3"
    assert json_path(DOC, "items[1].score") == 0.9
    assert json_path(DOC, "items.0.score") == 0.1
    assert json_path(DOC, "") is DOC
    with pytest.raises(KeyError) as err:
        json_path(DOC, "model.missing")
    assert err.value.args[0] == "missing"
    with pytest.raises(KeyError):
        json_path(DOC, "items[7]")
    assert json_path(DOC, "outputs[name=label].data") == [1, 0]  # a filter: its first match


@pytest.mark.parametrize(("path", "column"), [
    ("a[", 2), ("a[x]", 2), ("a*b", 2), ("[=1]", 1), ('a["b]', 3), ("a]", 2), ("a[name=]", 2), ("", None),
])
def test_bad_paths_name_the_column(path: str, column: int | None) -> None:
    with pytest.raises(JsonPathError) as err:
        jsonpath.compile(path)
    if column is not None:
        assert f"column {column}:" in str(err.value)


def test_a_bad_path_is_a_validation_error_naming_the_field() -> None:
    from pydantic import ValidationError

    from mlchaos.probes.http import HttpProbeSpec
    from mlchaos.probes.predictions import PredictionsSpec

    with pytest.raises(ValidationError, match="field: invalid JSON path 'predictions\\[' at column 12"):
        PredictionsSpec(probe="predictions", field="predictions[", max=1)
    with pytest.raises(ValidationError, match="path"):
        HttpProbeSpec(probe="http", url="/x", value="json", path="a[*", max=1)


# ---- properties ---------------------------------------------------------------------------------

_name = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=8)
_plain = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,7}", fullmatch=True)
_segment = st.one_of(
    _name.map(Key),
    st.integers(-5, 5).map(Index),
    st.just(Wild()),
    st.builds(Filter, _plain, st.one_of(_plain, st.integers(0, 99).map(str)), st.just(False)),
    st.builds(Filter, _plain, _name, st.just(True)),
)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _render(segs: list[Any]) -> str:
    out = []
    for s in segs:
        if isinstance(s, Key):
            out.append(f"[{_quote(s.name)}]")
        elif isinstance(s, Index):
            out.append(f"[{s.index}]")
        elif isinstance(s, Wild):
            out.append("[*]")
        else:
            out.append(f"[{s.key}={_quote(s.value) if s.quoted else s.value}]")
    return "".join(out)


@settings(max_examples=60, deadline=None)
@given(st.lists(_segment, min_size=1, max_size=6))
def test_parse_what_is_printed(segs: list[Any]) -> None:
    assert list(jsonpath.compile(_render(segs)).segments) == segs


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(_plain.map(Key), st.integers(0, 3).map(Index)), min_size=1, max_size=5))
def test_dotted_and_bracketed_spellings_agree(segs: list[Any]) -> None:
    dotted = ".".join(s.name if isinstance(s, Key) else str(s.index) for s in segs)
    parsed = jsonpath.compile(dotted).segments
    assert [s.name if isinstance(s, Key) else str(s.index) for s in parsed] == \
        [s.name if isinstance(s, Key) else str(s.index) for s in segs]


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abc"), inner, max_size=3),
    max_leaves=12,
)


def _old_json_path(doc: Any, path: str) -> Any:
    """The reader this module replaced (probes/http.py before #19), for the agreement property."""
    cur = doc
    for part in path.replace("]", "").replace("[", ".").split("."):
        if part == "":
            continue
        if isinstance(cur, list):
            try:
                cur = cur[int(part)]
            except (ValueError, IndexError):
                raise KeyError(part) from None
        elif isinstance(cur, dict):
            if part not in cur:
                raise KeyError(part)
            cur = cur[part]
        else:
            raise KeyError(part)
    return cur


@settings(max_examples=60, deadline=None)
@given(_json, st.lists(st.sampled_from(["a", "b", "0", "1", "[0]", "[1]", "[-1]"]), min_size=1, max_size=4))
def test_find_one_agrees_with_the_old_reader(doc: Any, parts: list[str]) -> None:
    path = "".join(p if p.startswith("[") else "." + p for p in parts).lstrip(".")
    try:
        old: Any = ("ok", _old_json_path(doc, path))
    except KeyError:
        old = ("missing",)
    try:
        new: Any = ("ok", json_path(doc, path))
    except KeyError:
        new = ("missing",)
    assert new == old


@settings(max_examples=50, deadline=None)
@given(_json)
def test_a_wildcard_is_every_child(doc: Any) -> None:
    children = doc if isinstance(doc, list) else list(doc.values()) if isinstance(doc, dict) else []
    assert jsonpath.find_all(doc, "[*]") == children
    assert jsonpath.find_all(doc, "*") == children
