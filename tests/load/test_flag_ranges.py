"""Issue 17: every numeric flag of ``mlchaos load`` has a range; out of it is exit 2 naming the flag.

The same bounds live in :class:`~mlchaos.load.spec.LoadSpec`, so an experiment's ``load:``
section is refused by ``mlchaos validate`` with FILE:LINE:COL.  Nothing here sends a request:
each case is refused before the generator starts.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from mlchaos.cli import app
from mlchaos.load.spec import PROCESSES_PER_CORE, usable_cores
from mlchaos.spec.errors import SpecErrors
from mlchaos.spec.loader import load_text

URL = "http://127.0.0.1:9/"


@pytest.mark.parametrize(("args", "flag"), [
    (["--connections", "-5"], "--connections"),
    (["--connections", "0"], "--connections"),
    (["--connections", "10000000"], "--connections"),
    (["--processes", "100000"], "--processes"),
    (["--processes", "0"], "--processes"),
    (["--processes", str(PROCESSES_PER_CORE * usable_cores() + 1)], "--processes"),
    (["--rate", "1e9/s"], "--rate"),
    (["--rate", "1e999/s"], "--rate"),
    (["--rate", "-1/s"], "--rate"),
    (["--duration", "1e300s"], "--duration"),
    (["--duration", "9" * 401], "--duration"),
    (["--timeout", "2h"], "--timeout"),
    (["--timeout", "0"], "--timeout"),
    (["--spin", "5s"], "--spin"),
    (["--seed", "-3"], "--seed"),
    (["--sample", "150%"], "--sample"),
    (["--lag-budget", "inf"], "--lag-budget"),
    (["--profile", "step", "--steps", "10/s:1s,2e7/s:1s"], "--steps"),
    (["--profile", "ramp", "--ramp-from", "5e6/s"], "--ramp-from"),
])
def test_out_of_range_flag_exits_2_naming_it(args: list[str], flag: str) -> None:
    r = CliRunner().invoke(app, ["load", URL, *args])
    assert r.exit_code == 2, r.output
    assert f"mlchaos load: {flag}: " in r.output, r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:99999/", "http://127.0.0.1:port/", "http://:80/"])
def test_bad_url_exits_2_not_5(url: str) -> None:
    r = CliRunner().invoke(app, ["load", url, "--duration", "1s"])
    assert r.exit_code == 2, r.output
    assert "mlchaos load: URL: invalid URL" in r.output


def test_force_lifts_the_per_core_cap_only() -> None:
    too_many = str(PROCESSES_PER_CORE * usable_cores() + 1)
    from mlchaos.cli.load import _build_spec

    def build(processes: str, force: bool) -> object:
        return _build_spec(URL, "10/s", "1s", "constant", "constant", "0/s", None, None, None, None, "0s", None,
                           "GET", [], None, None, "5s", processes, None, "0", None, "auto", None, None,
                           force=force)

    assert build(too_many, True).processes == int(too_many)  # type: ignore[attr-defined]
    r = CliRunner().invoke(app, ["load", URL, "--processes", "5000", "--force"])
    assert r.exit_code == 2 and "between 1 and 1024" in r.output


EXPERIMENT = """\
title: load bounds
target: {platform: http, url: "http://127.0.0.1:9"}
load:
  path: /predict
  rate: RATE
  processes: PROCESSES
"""


def experiment(rate: str, processes: str) -> str:
    return EXPERIMENT.replace("RATE", rate).replace("PROCESSES", processes)


@pytest.mark.parametrize(("rate", "processes", "line", "needle"), [
    ("1e9/s", "1", 5, "at most 1,000,000/s"),
    ("'1e999/s'", "1", 5, "finite"),
    ("100/s", "100000", 6, "between 1 and 1024"),
])
def test_experiment_load_section_has_the_same_bounds(rate: str, processes: str, line: int, needle: str) -> None:
    with pytest.raises(SpecErrors) as ei:
        load_text(experiment(rate, processes), "exp.yaml")
    (e,) = ei.value.errors
    assert (e.line, e.col) == (line, e.col) and e.col > 3 and needle in e.message, e


def test_experiment_bad_url_is_positioned() -> None:
    text = experiment("10/s", "1").replace("path: /predict", "url: 'http://[::1'")
    with pytest.raises(SpecErrors) as ei:
        load_text(text, "exp.yaml")
    (e,) = ei.value.errors
    assert (e.line, e.col) == (4, 8) and "invalid URL" in e.message
