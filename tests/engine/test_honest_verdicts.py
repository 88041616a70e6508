"""Issue #16's findings against real processes: each test failed on the runner before the fix.

* finding 1: a load the generator judged INVALID supported ``passed``;
* finding 6: a Ctrl-C arriving after the verdict turned its exit code into 130;
* finding 8: ``select:`` on a ``process`` target was ignored (an unnamed process was paused);
* finding 9: a health request sent during a pause and answered after it counted as evidence.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import wait_until
from tests.engine.helpers import events, experiment, run_cli, summary, write


def test_finding9_no_answer_completed_under_the_fault_is_inconclusive_not_passed(tmp_path: Path, tiny_service) -> None:
    proc, url = tiny_service
    exp = experiment(url, proc.pid)
    exp["method"][0].update({"at": "200ms", "duration": "2s"})
    exp["steady_state"] = [{"name": "health", "probe": "http", "url": "/health", "equals": 200, "timeout": "10s"}]
    exp["interval"] = "250ms"
    j = tmp_path / "j.jsonl"
    r = run_cli(write(tmp_path, exp), j)
    s = summary(j)
    assert r.returncode == 6 and s["status"] == "inconclusive", (s["status"], s["reason"])
    assert "answered only after the fault was removed" in s["reason"]
    fw = s["evidence"]["health"]["fault_window"]
    assert fw["evidence"] == 0 and fw["answered_after_removal"] >= 1
    assert psutil.Process(proc.pid).status() != psutil.STATUS_STOPPED


def test_finding8_a_selector_that_matches_nothing_is_errored_and_pauses_nothing(tmp_path: Path, tiny_service) -> None:
    _, url = tiny_service
    bystander = psutil.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        exp = {
            "title": "select on a process target",
            "target": {"platform": "process", "pids": [bystander.pid], "url": url},
            "steady_state": [{"name": "alive", "probe": "http", "url": "/health", "equals": 200}],
            "method": [{"fault": "process-pause", "select": "no-such-process-*", "duration": "1s"}],
            "phases": {"baseline": "100ms", "recovery": "100ms"},
        }
        j = tmp_path / "j.jsonl"
        r = run_cli(write(tmp_path, exp), j, timeout=60)
        assert r.returncode in (2, 5), r.stdout + r.stderr
        text = r.stderr + (str(summary(j)["reason"]) if j.exists() else "")
        assert "no-such-process-*" in text and "matched" in text, text
        assert psutil.Process(bystander.pid).status() != psutil.STATUS_STOPPED
        assert not j.exists() or not any(e["event"] == "fault-inject" for e in events(j))
    finally:
        bystander.kill()
        bystander.wait(5)


@pytest.mark.slow
def test_finding1_an_invalid_load_never_supports_passed(tmp_path: Path, tiny_service) -> None:
    """A lag budget no generator can meet (1 µs): the load is INVALID, so the run cannot pass."""
    _, url = tiny_service
    bystander = psutil.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        exp = experiment(url, bystander.pid)
        exp["load"] = {"rate": "50/s", "duration": "4s", "lag_budget": "1us", "request": {"path": "/health"}}
        exp["steady_state"] = [{"name": "errors", "probe": "error-rate", "max": "5%", "window": "1s",
                                "min_samples": 5}]
        exp["phases"] = {"baseline": "1s", "recovery": "1s"}
        j = tmp_path / "j.jsonl"
        r = run_cli(write(tmp_path, exp), j)
        s = summary(j)
        assert s["load_validity"] == {"valid": False, "reason": s["load_validity"]["reason"]}
        assert r.returncode == 6 and s["status"] == "inconclusive", (s["status"], s["reason"])
        # the generator's lag is judged per window too: the baseline is already untrustworthy
        assert "INVALID" in s["reason"] or "the load generator's schedule lag" in s["reason"]
    finally:
        bystander.kill()
        bystander.wait(5)


def test_finding6_a_late_ctrl_c_never_changes_the_verdicts_exit_code(tmp_path: Path, tiny_service) -> None:
    """Ctrl-C once (abort), then Ctrl-C every few ms until the process is gone: still exit 3."""
    proc, url = tiny_service
    exp = experiment(url, proc.pid)
    exp["method"][0]["duration"] = "30s"
    j = tmp_path / "j.jsonl"
    runner = subprocess.Popen([sys.executable, "-m", "mlchaos", "run", str(write(tmp_path, exp)), "-j", str(j)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: j.exists() and any(e["event"] == "fault-inject" for e in events(j)), 30)
        runner.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 30
        while runner.poll() is None and time.monotonic() < deadline:
            runner.send_signal(signal.SIGINT)
            time.sleep(0.003)
        out, err = runner.communicate(timeout=10)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 3, (runner.returncode, out[-500:], err[-500:])
    assert "ABORTED (exit 3)" in out
    assert psutil.Process(proc.pid).status() != psutil.STATUS_STOPPED


def test_a_process_target_selector_picks_by_name_or_command_line(tmp_path: Path) -> None:
    from mlchaos.targets.process import ProcessTarget, ProcessTargetSpec

    a = psutil.Popen([sys.executable, "-c", "import time; time.sleep(60)  # worker-a"])
    b = psutil.Popen([sys.executable, "-c", "import time; time.sleep(60)  # worker-b"])
    try:
        assert wait_until(lambda: all("worker" in " ".join(p.cmdline()) for p in (a, b)), 10)  # exec'd
        t = ProcessTarget(ProcessTargetSpec(pids=[a.pid, b.pid]), None)  # type: ignore[arg-type]
        assert t.pids("*worker-b*") == [b.pid]
        assert sorted(t.pids()) == sorted([a.pid, b.pid])
        with pytest.raises(Exception, match="matched none"):
            t.pids("*worker-c*")
    finally:
        for p in (a, b):
            p.kill()
            p.wait(5)
