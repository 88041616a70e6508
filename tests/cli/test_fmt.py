"""The one formatting helper: units and sensible precision for people, never a cut or a lying zero."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlchaos import fmt


@pytest.mark.parametrize(("value", "unit", "shown"), [
    (0.1134, "s", "113 ms"), (0.0125, "s", "12.5 ms"), (1.25, "s", "1.25 s"), (0.00085, "s", "850 µs"),
    (125, "s", "2 min 5 s"), (0.032, "ratio", "3.2 %"), (0.01, "ratio", "1 %"), (1.0, "ratio", "100 %"),
    (0.0005, "ratio", "0.05 %"), (312.456, "1/s", "312/s"), (3, "pods", "3 pods"), (1, "pods", "1 pod"),
    (0.1 + 0.2, "", "0.3"), (0.123456, "", "0.123"), (None, "s", "–"), ("v2", "", "v2"), (0, "ratio", "0 %"),
])
def test_quantity(value: object, unit: str, shown: str) -> None:
    assert fmt.quantity(value, unit) == shown


def test_probe_kinds_carry_their_units() -> None:
    assert fmt.probe_value("latency", 0.1134) == "113 ms"
    assert fmt.probe_value("error-rate", 0.032) == "3.2 %"
    assert fmt.probe_value("no-such-probe", 0.25) == "0.25"
    assert fmt.comparison(0.1134, ">", 0.1, fmt.probe_unit("latency")) == "113 ms > 100 ms"
    assert fmt.tolerance({"between": [0.01, 0.03]}, "ratio") == "between 1 % and 3 %"
    assert fmt.tolerance({"max": 0.1}, "s") == "≤ 100 ms"


def test_small_values_never_read_as_zero() -> None:
    assert fmt.number(0.00004) != "0"
    assert fmt.quantity(1e-7, "ratio") != "0 %"


def test_report_tables_and_charts_carry_units(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The HTML report reads like the console: ms and % in the tables and on the chart axes."""
    from mlchaos.report import write_report

    t = 1000.0
    events = [
        {"t": t, "event": "run-start", "config": {"steady_state": [
            {"name": "p99", "probe": "latency", "percentile": 99, "max": 0.1},
            {"name": "errors", "probe": "error-rate", "max": 0.01}]}},
        {"t": t + 1, "event": "probe", "probe": "p99", "value": 0.1134, "ok": False},
        {"t": t + 1, "event": "probe", "probe": "errors", "value": 0.032, "ok": False},
    ]
    run = {"title": "t", "status": "failed", "exit_code": 1, "reason": "r", "events": events, "faults": [],
           "probes": [{"name": "p99", "probe": "latency", "role": "steady", "tolerance": {"max": 0.1},
                       "before": {"value": 0.0421, "ok": True}, "after": {"value": 0.1134, "ok": False},
                       "during": {"evaluations": 1, "breaches": 1}},
                      {"name": "errors", "probe": "error-rate", "role": "steady", "tolerance": {"max": 0.01},
                       "before": {"value": 0.0, "ok": True}, "after": {"value": 0.032, "ok": False},
                       "during": {"evaluations": 1, "breaches": 1}}]}
    write_report([run], tmp_path / "r")
    page = (tmp_path / "r" / "index.html").read_text()
    for shown in ("≤ 100 ms", "✗ 113 ms", "✓ 42.1 ms", "≤ 1 %", "✗ 3.2 %", "Probe: p99 (ms)", "Probe: errors (%)"):
        assert shown in page, shown


def test_a_breach_never_reads_as_equal_to_its_bound() -> None:
    """The demo printed "goodput 2/s < min 2/s" (1.996/s at three digits): a verdict that reads as a bug."""
    from types import SimpleNamespace

    from mlchaos.engine.tolerance import tripped, within

    assert fmt.apart(1.996, 2, "1/s") == ("1.996/s", "2/s")
    assert fmt.apart(0.0999, 0.1, "s") == ("99.9 ms", "100 ms")
    assert fmt.apart(0.1134, 0.1, "s") == ("113 ms", "100 ms")  # distinct already: the usual digits
    assert fmt.apart(2.0, 2, "1/s") == ("2/s", "2/s")
    spec = SimpleNamespace(equals=None, max=None, min=2.0, between=None, above=None, below=None)
    assert within(spec, 1.996, "1/s") == (False, "1.996/s < min 2/s")
    band = SimpleNamespace(equals=None, max=None, min=None, between=[0.01, 0.03], above=None, below=None)
    assert within(band, 0.03001, "ratio") == (False, "3.001 % outside [1 %, 3 %]")
    assert within(band, 0.009999, "ratio") == (False, "0.9999 % outside [1 %, 3 %]")
    abort = SimpleNamespace(equals=None, max=None, min=None, between=None, above=None, below=2.0)
    assert tripped(abort, 1.9999, "1/s") == (True, "1.9999/s < 2/s")


@given(st.floats(1e-6, 1e6), st.floats(1e-6, 1e6), st.sampled_from(["s", "ratio", "1/s", "", "pods"]))
def test_two_different_numbers_read_differently(a: float, b: float, unit: str) -> None:
    shown = fmt.apart(a, b, unit)
    if abs(a - b) > 1e-9 * max(abs(a), abs(b)):
        assert shown[0] != shown[1], (a, b, shown)
    if a == b:
        assert shown[0] == shown[1]
