"""RunSummary: one type for a finished run's summary and one rebuilt from a journal cut short; JSON unchanged."""

from __future__ import annotations

from pathlib import Path

import psutil

from mlchaos.engine.journal import read, summarize
from mlchaos.engine.runsummary import RunSummary
from mlchaos.report import postmortem, resilience_score
from tests.engine.helpers import experiment, run_cli, write


def test_a_real_runs_summary_round_trips_unchanged(tmp_path: Path, tiny_service: tuple[psutil.Popen, str]) -> None:
    proc, url = tiny_service
    j = tmp_path / "j.jsonl"
    run_cli(write(tmp_path, experiment(url, proc.pid)), j)
    events = read(j)
    final = next(e for e in events if e["event"] == "summary")
    # the shape the journal has always had (the runner builds it as a RunSummary now)
    assert list(final)[3:] == ["run_id", "title", "source", "status", "exit_code", "reason", "decided_by", "weight",
                               "version", "timing", "probes", "faults", "evidence", "instruments", "load_validity",
                               "removal_latency_s", "config", "load"]
    assert list(final["faults"][0]) == ["name", "plugin", "injected_at", "removed_at", "targets", "planned",
                                        "actual", "observed", "error"]
    assert list(final["probes"][0]["during"]) == ["evaluations", "breaches", "insufficient", "untrusted", "min", "max"]
    s = RunSummary.from_events(events)
    assert not s.unfinished and s.status == "failed" and s.exit_code == 1
    assert s.faults[0].targets == [f"pid:{proc.pid}"] and s.probes[0].during.evaluations >= 0
    assert s.to_dict() == final  # the journal's event, key for key (its own t/rel/event included)
    assert summarize(events) == final


def test_a_cut_short_journal_rebuilds_the_partial_shape() -> None:
    events = [
        {"t": 1.0, "event": "run-start", "title": "t", "run_id": "x"},
        {"t": 2.0, "event": "phase", "phase": "baseline"},
        {"t": 2.5, "event": "probe", "probe": "p", "role": "steady", "checkpoint": "before", "value": 1, "ok": True},
        {"t": 3.0, "event": "fault-inject", "fault": "f", "plugin": "latency", "targets": ["a"]},
        {"t": 3.5, "event": "probe", "probe": "p", "role": "steady", "during": True, "value": 9, "ok": False},
        {"t": 4.0, "event": "phase", "phase": "fault"},
    ]
    d = summarize(events)
    assert d == {
        "title": "t", "run_id": "x", "status": "unfinished",
        "reason": "journal ends in phase fault (the runner stopped before its verdict)",
        "faults": [{"name": "f", "plugin": "latency", "injected_at": 3.0, "removed_at": None, "targets": ["a"]}],
        "probes": [{"name": "p", "role": "steady", "before": {"value": 1, "ok": True, "reason": None},
                    "after": None, "during": {"evaluations": 1, "breaches": 1}}],
        "unfinished": True,
    }
    s = RunSummary.from_dict({**d, "scenario": "sc"})
    assert s.unfinished and s.extra == {"scenario": "sc"} and s.to_dict() == {**d, "scenario": "sc"}
    assert not s.probes[0].held
    assert resilience_score([s]) == 0.0  # counted, none held (the run never reached a verdict)
    assert "## Verdict" in postmortem(s)
