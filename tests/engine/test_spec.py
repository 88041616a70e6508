"""Experiment validation: every error names FILE:LINE:COL and the field path, from the YAML nodes."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlchaos.spec.loader import SpecErrors, load_dict, load_file, load_text
from tests.engine.helpers import GOOD


def errors(text: str) -> list[tuple[int, int, str, str]]:
    with pytest.raises(SpecErrors) as ei:
        load_text(text, "exp.yaml")
    return [(e.line, e.col, e.path, e.message) for e in ei.value.errors]


def test_good_file_validates() -> None:
    v = load_text(GOOD, "exp.yaml")
    assert v.faults[0].at == 1.0 and v.faults[0].duration == 2.0
    assert v.fault_phase_length() == 3.0
    assert v.targets["default"].url == "http://127.0.0.1:9"


def test_unknown_key_with_did_you_mean() -> None:
    errs = errors(GOOD.replace("title: ok", "title: ok\ntittle: typo"))
    assert errs == [(2, 1, "tittle", "unknown key 'tittle'; did you mean 'title'?")]


def test_unknown_key_inside_plugin_spec() -> None:
    errs = errors(GOOD.replace("    duration: 2s", "    duratoin: 2s"))
    assert len(errs) == 1
    line, col, path, msg = errs[0]
    assert (line, col, path) == (13, 5, "method[0].duratoin")
    assert "did you mean 'duration'" in msg


def test_wrong_type() -> None:
    errs = errors(GOOD.replace("pids: [1]", "pids: [one]"))
    assert errs[0][:3] == (11, 12, "method[0].pids[0]")
    assert "integer" in errs[0][3]


def test_bad_duration() -> None:
    errs = errors(GOOD.replace("at: 1s", "at: 1 fortnight"))
    assert errs[0][:3] == (12, 9, "method[0].at")
    assert "invalid duration" in errs[0][3]


def test_missing_required_field() -> None:
    errs = errors(GOOD.replace("title: ok\n", ""))
    assert errs == [(1, 1, "title", "missing required field 'title'")]


def test_missing_plugin_field_points_at_the_item() -> None:
    errs = errors(GOOD.replace("    url: /health\n", ""))
    assert errs[0][:3] == (6, 5, "steady_state[0].url")


def test_flat_load_request_field_points_at_its_line() -> None:
    # ``load: {url: …}`` is written flat and validated as load.request.url: the error is on the url's line
    errs = errors(GOOD + "load:\n  rate: 10/s\n  url: ftp://example/\n")
    assert errs == [(16, 8, "load.request.url", "only http:// and https:// URLs are supported")]
    nested = errors(GOOD + "load:\n  rate: 10/s\n  request:\n    url: ftp://example/\n")
    assert nested[0][:3] == (17, 10, "load.request.url")


def test_invalid_yaml_position() -> None:
    errs = errors("title: ok\nmethod: [\n  {fault: x\n")
    assert len(errs) == 1 and errs[0][3].startswith("invalid YAML")
    assert errs[0][0] >= 3


def test_unknown_plugin_suggests() -> None:
    errs = errors(GOOD.replace("fault: process-pause", "fault: proces-pause"))
    assert errs[0][:3] == (10, 12, "method[0].fault")
    assert "did you mean 'process-pause'" in errs[0][3]


def test_duplicate_key() -> None:
    errs = errors(GOOD.replace("title: ok", "title: ok\ntitle: again"))
    assert (2, 1, "title", "duplicate key 'title'") in errs


def test_several_errors_all_reported_in_order() -> None:
    text = GOOD.replace("title: ok", "title: ok\nbogus: 1").replace("at: 1s", "at: soon")
    errs = errors(text)
    assert [e[2] for e in errs] == ["bogus", "method[0].at"]


def test_probe_without_tolerance_is_an_error() -> None:
    errs = errors(GOOD.replace("    equals: 200\n", ""))
    assert "needs a tolerance" in errs[0][3]


def test_unknown_target_reference() -> None:
    errs = errors(GOOD.replace("    pids: [1]", "    pids: [1]\n    target: db"))
    assert errs[0][2] == "method[0].target" and "unknown target 'db'" in errs[0][3]


def test_phases_longer_than_max_duration() -> None:
    errs = errors(GOOD + "max_duration: 2s\n")
    assert errs[0][2] == "max_duration"


def test_max_duration_must_allow_the_whole_settle_window() -> None:
    # baseline 1 + fault 3 + recovery 1 = 5 s fits in 10 s; with 6 s of settling it no longer does
    assert load_text(GOOD + "max_duration: 10s\n", "exp.yaml")
    errs = errors(GOOD + "phases: {settle: 6s}\nmax_duration: 10s\n")
    assert errs[0][2] == "max_duration" and "settle 6s included" in errs[0][3]


def test_python_dict_form() -> None:
    data = yaml.safe_load(GOOD)
    assert load_dict(data).experiment.title == "ok"


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(SpecErrors, match="cannot read file"):
        load_file(tmp_path / "missing.yaml")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlchaos", *args], capture_output=True, text=True, timeout=60)


def test_cli_validate_exit_codes_and_format(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("at: 1s", "at: 1 fortnight"))
    r = _cli("validate", str(good))
    assert r.returncode == 0, r.stderr
    r = _cli("validate", str(good), str(bad))
    assert r.returncode == 2
    assert r.stderr.strip().startswith(f"{bad}:12:9: method[0].at: invalid duration")


def test_cli_schema_has_plugins() -> None:
    import json

    r = _cli("schema")
    assert r.returncode == 0
    schema = json.loads(r.stdout)
    refs = schema["properties"]["method"]["items"]["anyOf"]
    names = set()
    for ref in refs:
        d = schema["$defs"][ref["$ref"].rsplit("/", 1)[-1]]
        if "fault" not in d["properties"]:  # a command step (issue #19) sits beside the faults
            assert d["properties"]["step"]["const"] == "command"
            continue
        names |= set(d["properties"]["fault"]["enum"])
    assert {"process-pause", "process-kill"} <= names


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20))
yaml_values = st.recursive(
    yaml_scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.sampled_from(
                                   ["title", "method", "fault", "probe", "at", "duration", "target", "targets",
                                    "steady_state", "abort", "phases", "platform", "url", "equals", "max", "load",
                                    "interval", "lease_ttl", "pids", "between", "x"]) | st.text(max_size=8),
                                   children, max_size=5)),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(yaml_values)
def test_fuzz_structured_documents_never_escape(doc: object) -> None:
    text = yaml.safe_dump(doc)
    try:
        load_text(text, "fuzz.yaml")
    except SpecErrors as exc:
        assert all(e.line >= 1 and e.col >= 1 for e in exc.errors)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_raw_text_never_escapes(text: str) -> None:
    with contextlib.suppress(SpecErrors):
        load_text(text, "fuzz.yaml")
