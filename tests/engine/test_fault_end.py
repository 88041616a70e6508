"""One rule for when a fault stopped acting, shared by the verdict's windows, the charts and the post-mortem."""

from __future__ import annotations

import math

from mlchaos.engine.records import FaultRecord, RunRecords, fault_end
from mlchaos.report import _fault_windows, postmortem


def test_the_rule() -> None:
    assert fault_end(12.0, 20.0) == 12.0
    assert fault_end(0.0, 20.0) == 0.0  # removed at t = 0 is a removal, not "never"
    assert fault_end(None, 20.0) == 20.0  # never removed: until the run's end
    assert math.isinf(fault_end(None, None))  # the run is still going


def test_verdict_windows_follow_it() -> None:
    rec = RunRecords(t0=0.0, faults=[FaultRecord("a", "x", injected_at=1.0, removed_at=2.0),
                                     FaultRecord("b", "x", injected_at=5.0)])
    assert rec.fault_windows(end=9.0) == [(1.0, 2.0), (5.0, 9.0)]
    assert rec.fault_windows()[-1] == (5.0, math.inf)


def test_charts_of_a_run_cut_short_end_at_its_last_event() -> None:
    """kill -9: no timing.end; the fault was in place at least until the journal's last line."""
    run = {"faults": [{"name": "f", "injected_at": 101.0, "removed_at": None}],
           "events": [{"t": 100.0}, {"t": 101.0}, {"t": 107.5}]}
    assert _fault_windows(run, 100.0) == [(1.0, 7.5, "f")]
    run["timing"] = {"end": 110.0}
    assert _fault_windows(run, 100.0) == [(1.0, 10.0, "f")]


def test_postmortem_says_a_fault_was_never_removed() -> None:
    run = {"title": "t", "timing": {"start": 100.0, "end": 110.0},
           "faults": [{"name": "f", "plugin": "x", "injected_at": 101.0, "removed_at": None},
                      {"name": "g", "plugin": "x", "injected_at": None, "removed_at": None}]}
    text = postmortem(run)
    assert "never removed: the run's end" in text
    assert "in place – → –" in text
