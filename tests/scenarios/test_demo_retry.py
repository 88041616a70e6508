"""The demo's retry of an unexpected verdict is visible in the summary, the report and the output.

The lab and the runner are stand-ins here (the real end-to-end path is test_demo.py, slow);
what is under test is the bookkeeping: which journal is final, what the report says.
"""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path
from typing import Any

import pytest

from mlchaos.cli import demo


class _St(enum.Enum):
    PASSED = "passed"
    FAILED = "failed"


@dataclasses.dataclass
class _Result:
    status: _St
    reason: str
    summary: dict[str, Any]


class _Lab:
    def __init__(self, *a: Any) -> None: ...
    def up(self, *a: Any, **k: Any) -> None: ...
    def down(self) -> None: ...
    def set_variant(self, *a: Any) -> None: ...


def test_an_unexpected_verdict_is_run_again_and_the_first_attempt_is_kept(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    verdicts = iter([_St.FAILED, _St.PASSED])  # mitigated: first attempt failed (a stall), the retry passed

    def fake_run(v: Any, journal_path: Path, on_event: Any = None) -> _Result:
        status = next(verdicts)
        journal_path.write_text("")
        summary = {"status": status.value, "reason": f"it {status.value}", "timing": {"duration_s": 1.0},
                   "probes": [], "faults": [], "exit_code": 0 if status is _St.PASSED else 1}
        return _Result(status, summary["reason"], summary)

    import mlchaos.engine.runner
    import mlchaos.lab

    monkeypatch.setattr(mlchaos.engine.runner, "run_experiment", fake_run)
    monkeypatch.setattr(mlchaos.lab, "Lab", _Lab)
    monkeypatch.setattr(demo, "_warm_up", lambda *a, **k: None)
    monkeypatch.setattr(demo, "SCENARIOS", (demo.Scenario("feature-latency", "feature-latency.yaml", ("realtime",)),))
    out = tmp_path / "rep"
    runs = demo.run_demo(out, lab_dir=tmp_path / "lab", variants=["mitigated"], quiet=True, retries=1)
    assert [r["status"] for r in runs] == ["passed"]
    (first,) = runs[0]["earlier_attempts"]
    assert first == {"attempt": 1, "status": "failed", "reason": "it failed",
                     "journal": "feature-latency-mitigated-attempt1.jsonl"}
    assert (out / "journals" / first["journal"]).exists() and (out / "journals" / "feature-latency-mitigated.jsonl").exists()
    assert "attempt 1 was <b>failed</b>: it failed" in (out / "index.html").read_text()


def test_no_retry_when_retries_is_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_run(v: Any, journal_path: Path, on_event: Any = None) -> _Result:
        calls.append(1)
        journal_path.write_text("")
        return _Result(_St.FAILED, "no", {"status": "failed", "reason": "no", "timing": {"duration_s": 1.0},
                                          "probes": [], "faults": [], "exit_code": 1})

    import mlchaos.engine.runner
    import mlchaos.lab

    monkeypatch.setattr(mlchaos.engine.runner, "run_experiment", fake_run)
    monkeypatch.setattr(mlchaos.lab, "Lab", _Lab)
    monkeypatch.setattr(demo, "_warm_up", lambda *a, **k: None)
    monkeypatch.setattr(demo, "SCENARIOS", (demo.Scenario("feature-latency", "feature-latency.yaml", ("realtime",)),))
    runs = demo.run_demo(tmp_path / "rep", lab_dir=tmp_path / "lab", variants=["mitigated"], quiet=True, retries=0)
    assert len(calls) == 1 and runs[0]["status"] == "failed" and runs[0]["earlier_attempts"] == []
