"""``${VAR}`` in experiment files (issue #19): the substitution parser's properties, typing, positions, flags."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import mlchaos
from mlchaos.spec.errors import SpecErrors
from mlchaos.spec.loader import load_file, load_text
from mlchaos.spec.variables import escape, parse_flags, substitute

names = st.sampled_from(["A", "B", "_x", "port", "P_1", "Aa9"])  # few names: defined and undefined ones meet
# text with many '$', '{', '}' and ':-' so that the parser's edges are hit often
texts = st.text(alphabet=st.sampled_from(list("ab ${}:-_\n\\é")), max_size=40)
values = st.text(max_size=20)


@settings(max_examples=300, deadline=None)
@given(texts)
def test_escaped_text_comes_back_unchanged(text: str) -> None:
    assert substitute(escape(text), {}) == (text, [])


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="$"), max_size=40))
def test_text_without_a_dollar_is_untouched(text: str) -> None:
    assert substitute(text, {"a": "b"}) == (text, [])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.tuples(st.just("lit"), texts), st.tuples(st.just("var"), names),
                          st.tuples(st.just("dflt"), st.tuples(names, st.text(alphabet="ab $:-", max_size=8)))),
                max_size=6),
       st.dictionaries(names, values, max_size=4))
def test_a_template_resolves_piece_by_piece(pieces: list, env: dict[str, str]) -> None:
    """Literal text (escaped), ``${NAME}`` and ``${NAME:-default}`` compose: each piece resolves on its own,
    a value is inserted as is (never re-read), and each undefined name is one error."""
    template, expected, undefined, literal = "", "", [], ""
    for kind, x in [*pieces, ("end", "")]:
        if kind == "lit":  # consecutive literal pieces are one literal text, escaped as a whole
            literal += x
            continue
        template += escape(literal)
        expected += literal
        literal = ""
        # '$' written right before a reference reads as the escape '$${': the one text that does not compose
        assume(kind == "end" or not template.endswith("$"))
        if kind == "var":
            template += "${" + x + "}"
            if x in env:
                expected += env[x]
            else:
                expected += "${" + x + "}"
                undefined.append(x)
        elif kind == "dflt":
            name, default = x
            template += "${" + name + ":-" + default + "}"
            expected += env[name] if env.get(name) else default
    out, errors = substitute(template, env)
    if not undefined:
        assert out == expected
    assert [e.name for e in errors] == undefined


@settings(max_examples=200, deadline=None)
@given(texts, st.dictionaries(names, values, max_size=3))
def test_the_parser_never_raises_and_errors_point_into_the_text(text: str, env: dict[str, str]) -> None:
    _, errors = substitute(text, env)
    for e in errors:
        assert 0 <= e.offset < len(text) and text.startswith("${", e.offset)


BASE = """\
title: "port ${PORT}"
target: {platform: http, url: "http://127.0.0.1:${PORT}"}
max_duration: ${MAXD:-90}
lease_ttl: ${TTL}
interval: "${INTERVAL:-1s}"
tags:
  - $${LITERAL}
  - "${TAG}"
  - ${TAG}
"""


def test_values_are_typed_as_yaml_would_have_typed_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "8080")
    monkeypatch.setenv("TTL", "3")
    v = load_text(BASE, "exp.yaml", variables={"TAG": "t"})
    assert v.raw["max_duration"] == 90 and isinstance(v.raw["max_duration"], int)  # a plain scalar: an int
    assert v.raw["lease_ttl"] == 3 and v.spec.lease_ttl == 3.0
    assert v.raw["tags"] == ["${LITERAL}", "t", "t"]  # $${ is a literal ${
    with pytest.raises(SpecErrors) as ei:  # a plain 123 is the int YAML makes of it, quoted it stays text
        load_text(BASE, "exp.yaml", variables={"TAG": "123"})
    assert [str(e) for e in ei.value.errors] == ["exp.yaml:9:5: tags[2]: Input should be a valid string (got 123)"]
    assert v.spec.title == "port 8080" and v.targets["default"].url == "http://127.0.0.1:8080"
    assert v.spec.interval == 1.0


def test_var_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "8080")
    v = load_text(BASE, "exp.yaml", variables={"PORT": "9", "TTL": "2", "TAG": "t"})
    assert v.targets["default"].url == "http://127.0.0.1:9"


def test_a_value_cannot_change_the_shape_of_the_experiment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "1")
    v = load_text(BASE, "exp.yaml", variables={"TTL": "2", "TAG": "[a, b]\nx: ${PORT}"})
    assert v.raw["tags"][1] == "[a, b]\nx: ${PORT}"  # text, not a list, and not re-read


def test_each_undefined_variable_is_an_error_at_its_position(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PORT", "TTL", "TAG", "MAXD"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SpecErrors) as ei:
        load_text(BASE, "exp.yaml")
    lines = [str(e) for e in ei.value.errors]
    assert lines[0].startswith("exp.yaml:1:14: undefined variable 'PORT'")
    assert lines[1].startswith("exp.yaml:2:49: undefined variable 'PORT'")
    assert lines[2].startswith("exp.yaml:4:12: undefined variable 'TTL': set it in the environment or pass "
                               "--var TTL=VALUE")
    assert [ln.split(":")[1:3] for ln in lines[3:]] == [["8", "6"], ["9", "5"]]
    with pytest.raises(SpecErrors) as ei:
        load_text("title: ${BAD-NAME}\n", "e.yaml")
    assert str(ei.value.errors[0]).startswith("e.yaml:1:8: invalid variable reference '${BAD-NAME}'")


def test_load_experiment_takes_variables(tmp_path: Path) -> None:
    p = tmp_path / "exp.yaml"
    p.write_text(BASE)
    v = mlchaos.load_experiment(p, variables={"PORT": "7", "TTL": "2", "TAG": "x"})
    assert v.targets["default"].url == "http://127.0.0.1:7"
    with pytest.raises(TypeError):
        mlchaos.load_experiment({"title": "x"}, variables={"A": "b"})


def test_parse_flags() -> None:
    assert parse_flags(["A=1", "B_2=x=y", "C="]) == {"A": "1", "B_2": "x=y", "C": ""}
    for bad in ("A", "=1", "1A=2", "A-B=1"):
        with pytest.raises(ValueError, match=f"--var {bad}: expected NAME=VALUE"):
            parse_flags([bad])


def test_cli_var_on_validate_and_run(tmp_path: Path) -> None:
    p = tmp_path / "exp.yaml"
    p.write_text(BASE)
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "TTL", "TAG", "MAXD")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mlchaos", *args], capture_output=True, text=True, env=env,
                              timeout=60)

    ok = cli("validate", str(p), "--var", "PORT=80", "--var", "TTL=2", "--var", "TAG=t")
    assert ok.returncode == 0, ok.stderr
    missing = cli("validate", str(p), "--var", "PORT=80")
    assert missing.returncode == 2 and f"{p}:4:12: undefined variable 'TTL'" in missing.stderr
    bad = cli("run", str(p), "--dry-run", "--var", "PORT")
    assert bad.returncode == 2 and "--var PORT: expected NAME=VALUE" in bad.stderr
    plan = cli("run", str(p), "--dry-run", "--var", "PORT=81", "--var", "TTL=2", "--var", "TAG=t")
    assert plan.returncode == 0 and "http://127.0.0.1:81" in plan.stdout, plan.stderr


def test_set_takes_list_indexes_in_brackets(tmp_path: Path) -> None:
    text = ("title: t\ntarget: {platform: http, url: 'http://127.0.0.1:9'}\nmethod:\n"
            "  - {fault: process-pause, pids: [1], at: 1s, duration: 2s}\n"
            "  - {fault: process-pause, pids: [1], at: 1s, duration: 2s}\n")
    v = load_text(text, "e.yaml", overrides=["method[1].at=300ms", "method.0.duration=1s", "method[-1].pids[0]=2"])
    assert [f.at for f in v.faults] == [1.0, 0.3] and v.faults[0].duration == 1.0 and v.faults[1].pids == [2]
    with pytest.raises(SpecErrors) as ei:
        load_text(text, "e.yaml", overrides=["method[2].at=1s"])
    assert str(ei.value.errors[0]) == "--set method[2].at=1s: method[2].at: method is a list of 2: no item '2'"
    p = tmp_path / "e.yaml"
    p.write_text(text)
    assert load_file(p, overrides=["method[0].at=0s"]).faults[0].at == 0.0
