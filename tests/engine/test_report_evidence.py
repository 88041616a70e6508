"""Issue #16, "visible everywhere": inconclusive, load validity and instrument health in the report and JUnit."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from mlchaos.report import resilience_score, write_report


def _run(status: str, **over: object) -> dict:
    t0 = 1000.0
    run = {
        "title": "t", "status": status, "exit_code": {"inconclusive": 6, "passed": 0, "failed": 1}[status],
        "reason": "the hypothesis could not be decided: load: the generator judged its load INVALID (lag)",
        "probes": [{"name": "p99", "role": "steady", "probe": "latency", "tolerance": {"max": 0.1},
                    "before": {"value": 0.05, "ok": True}, "after": {"value": 0.05, "ok": True},
                    "during": {"evaluations": 4, "breaches": 0, "untrusted": 2, "insufficient": 0}}],
        "faults": [{"name": "delay", "plugin": "latency", "injected_at": t0 + 2, "removed_at": t0 + 4, "targets": ["x"]}],
        "load_validity": {"valid": False, "reason": "schedule lag p99 12 ms exceeds the budget 10 ms"},
        "instruments": {"evaluations": 9, "untrusted": 2, "why": ["the runner stalled 40 ms"]},
        "timing": {"duration_s": 6.0},
        "events": [
            {"t": t0, "event": "run-start"},
            {"t": t0 + 3, "event": "probe", "probe": "p99", "value": 0.2, "ok": False, "window": 2.0, "trusted": False},
            {"t": t0 + 5, "event": "probe", "probe": "p99", "value": 0.2, "ok": False, "window": 2.0, "trusted": True},
            {"t": t0 + 6, "event": "summary"},
        ],
    }
    run.update(over)
    return run


def test_inconclusive_is_a_skipped_junit_case_with_its_reason_not_a_pass(tmp_path: Path) -> None:
    write_report([_run("inconclusive"), _run("passed", reason="held")], tmp_path)
    suite = ET.parse(tmp_path / "junit.xml").getroot()
    assert suite.get("skipped") == "1" and suite.get("failures") == "0" and suite.get("errors") == "0"
    skipped = suite.find("testcase/skipped")
    assert skipped is not None and "INVALID" in (skipped.get("message") or "")


def test_the_html_shows_load_validity_instruments_and_where_breaches_were_measured(tmp_path: Path) -> None:
    write_report([_run("inconclusive")], tmp_path)
    page = (tmp_path / "index.html").read_text()
    assert "load: <b>INVALID</b>" in page and "12 ms" in page
    assert "2 of 9 evaluations untrustworthy" in page and "2 untrustworthy" in page
    assert "class='badge inconclusive'" in page
    # the untrusted breach is grey, the trusted one red; both shaded back over their 2 s window
    assert "not met by an untrustworthy instrument" in page and "measured over 1.00s–3.00s" in page
    assert "measured over 3.00s–5.00s" in page
    assert json.loads((tmp_path / "summary.json").read_text())["runs"][0]["load_validity"]["valid"] is False


def test_an_inconclusive_run_counts_neither_for_nor_against_the_resilience_score() -> None:
    held = _run("passed")
    assert resilience_score([held]) == 100.0
    assert resilience_score([held, _run("inconclusive")]) == 100.0
