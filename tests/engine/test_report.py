"""Reports from journals: summary.json, JUnit, self-contained HTML with charts, post-mortem, resilience score."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

from mlchaos.report import resilience_score
from tests.engine.helpers import experiment, run_cli, write


def test_report_from_journal(tmp_path: Path, tiny_service) -> None:
    proc, url = tiny_service
    j = tmp_path / "j.jsonl"
    run_cli(write(tmp_path, experiment(url, proc.pid)), j)
    out = tmp_path / "rep"
    r = subprocess.run([sys.executable, "-m", "mlchaos", "report", str(j), "--out", str(out), "--postmortem"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    run = summary["runs"][0]
    assert run["status"] == "failed" and run["exit_code"] == 1 and run["decided_by"] == ["health"]
    assert run["faults"][0]["targets"] == [f"pid:{proc.pid}"]
    page = (out / "index.html").read_text()
    assert "<script" not in page and "http://cdn" not in page and "https://" not in page
    assert page.count("<svg") >= 1 and "fault: pause" in page  # shaded fault window
    suite = ET.fromstring((out / "junit.xml").read_text())
    assert suite.get("tests") == "1" and suite.find("testcase/failure") is not None
    pm = next(out.glob("postmortem-*.md")).read_text()
    for heading in ("## Hypothesis", "## Method and blast radius", "## Observations", "## Verdict", "## Follow-ups"):
        assert heading in pm


def test_report_of_unfinished_journal(tmp_path: Path) -> None:
    j = tmp_path / "cut.jsonl"
    j.write_text('{"t": 1, "rel": 0, "event": "run-start", "title": "t", "run_id": "x"}\n'
                 '{"t": 2, "rel": 1, "event": "phase", "phase": "baseline"}\n{"t": 3, "rel"')
    out = tmp_path / "rep"
    r = subprocess.run([sys.executable, "-m", "mlchaos", "report", str(j), "--out", str(out)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "summary.json").read_text())["runs"][0]["status"] == "unfinished"


def test_resilience_score_weights() -> None:
    held = {"role": "steady", "before": {"ok": True}, "after": {"ok": True}, "during": {"breaches": 0}}
    broke = {"role": "steady", "before": {"ok": True}, "after": {"ok": True}, "during": {"breaches": 2}}
    runs = [
        {"status": "passed", "weight": 3, "probes": [held, held]},
        {"status": "failed", "weight": 1, "probes": [held, broke]},
        {"status": "errored", "weight": 1, "probes": [held]},
    ]
    assert resilience_score(runs) == round(100 * (3 * 1 + 1 * 0.5 + 0) / 5, 1)
    assert resilience_score([]) is None
