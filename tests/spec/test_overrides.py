"""Issue 17: ``--set`` errors point at the flag, exit 2, and never print a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlchaos.spec.errors import SpecErrors
from mlchaos.spec.loader import load_text
from tests.engine.helpers import GOOD

BASE = GOOD


def flag_errors(*sets: str, text: str = BASE) -> list[str]:
    with pytest.raises(SpecErrors) as ei:
        load_text(text, "exp.yaml", overrides=sets)
    return [str(e) for e in ei.value.errors]


@pytest.mark.parametrize(("flag", "needle"), [
    ("title.x.y=1", "title is a string"),
    ("max_duration=" + "9" * 401, "too large"),
    ("phases.baseline=!!bool maybe", "invalid duration"),
    ("phases.baseline=.inf", "finite"),
    ("weight=.nan", "finite"),
    ("method.7.at=1s", "no item '7'"),
    ("method.x.at=1s", "no item 'x'"),
    ("phases.typo=1", "unknown key 'typo'"),
    ("load.url=http://127.0.0.1:9/", "missing required field 'rate'"),  # the section the flag created
    ("noequals", "expected KEY=VALUE"),
    ("a..b=1", "invalid key"),
])
def test_set_errors_point_at_the_flag(flag: str, needle: str) -> None:
    errs = flag_errors(flag)
    assert len(errs) == 1, errs
    shown = flag if len(flag) <= 80 else flag[:60]
    assert errs[0].startswith(f"--set {shown}"), errs[0]
    assert needle in errs[0] and "exp.yaml:1:1" not in errs[0]


def test_errors_outside_the_set_keep_their_file_position() -> None:
    # the flag makes the baseline long; the sum is checked at max_duration, which the file wrote
    errs = flag_errors("phases.baseline=10m", text=BASE + "max_duration: 60s\n")
    assert errs == [errs[0]] and errs[0].startswith("exp.yaml:14:15: max_duration: the phases add up")


def test_set_through_an_alias_changes_one_copy() -> None:
    v = load_text(BASE + "tags: &t [a]\ndescription: x\n", "exp.yaml", overrides=["tags.0=b", "title=new"])
    assert v.experiment.tags == ["b"] and v.experiment.title == "new"


def test_set_values_are_bounded_yaml() -> None:
    parts = ["&l0 [" + ",".join(["x"] * 10) + "]"]
    parts += [f"&l{i} [" + ",".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 9)]
    errs = flag_errors("tags=[" + ", ".join(parts) + "]")  # 10^9 nodes as YAML: taken as a string
    assert len(errs) == 1 and errs[0].startswith("--set tags=[&l0") and "tags" in errs[0]
    errs = flag_errors("tags=" + "[" * 500 + "]" * 500)  # too deep for YAML: a string, then a type error
    assert len(errs) == 1 and errs[0].startswith("--set tags=")


def _run(tmp_path: Path, *sets: str) -> subprocess.CompletedProcess[str]:
    f = tmp_path / "exp.yaml"
    f.write_text(BASE)
    args = [a for s in sets for a in ("--set", s)]
    return subprocess.run([sys.executable, "-m", "mlchaos", "run", str(f), "--dry-run", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("flag", ["title.x.y=1", "max_duration=" + "9" * 401, "phases.baseline=!!bool maybe"])
def test_cli_set_errors_exit_2_without_traceback(tmp_path: Path, flag: str) -> None:
    p = _run(tmp_path, flag)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    assert p.stderr.startswith(f"--set {flag[:40]}"), p.stderr
