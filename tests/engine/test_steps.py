"""``command`` steps and faults' ``revert:`` actions, through the real runner and real processes (issue #19).

Every command here is a real process (``sh -c`` appending a word to a file, so
the file's lines are the order in which things happened); the fault is a real
``process-pause`` of a real bystander process, whose state (``T`` = stopped)
shows that faults are removed whatever a step does.  Phases last a few hundred
milliseconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from mlchaos.contract.lease import KILL_AT_ENV, Lease
from mlchaos.engine.lease import LeaseStore
from mlchaos.engine.runner import run_experiment
from mlchaos.engine.steps import TAIL_BYTES, run_sync
from mlchaos.spec.loader import load_dict
from tests.conftest import wait_until
from tests.engine.helpers import events, write


@pytest.fixture(scope="module")
def sleeper() -> Iterator[psutil.Popen]:
    """The bystander the pause hits; resumed and stopped at the end, also on failure."""
    proc = psutil.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    yield proc
    try:
        proc.resume()
        proc.kill()
        proc.wait(5)
    except psutil.NoSuchProcess:
        pass


def append(out: Path, word: str) -> list[str]:
    return ["sh", "-c", f'echo {word} >> "{out}"']


def exp(pid: int, method: list[dict[str, Any]], **phases: str) -> dict[str, Any]:
    return {
        "title": "steps",
        "target": {"platform": "process", "pids": [pid]},
        "method": method,
        "phases": {"baseline": "100ms", "recovery": "200ms", **phases},
        "lease_ttl": "2s",
        "max_duration": "60s",
    }


def pause(pid: int, **over: Any) -> dict[str, Any]:
    return {"fault": "process-pause", "name": "pause", "pids": [pid], "at": "0s", "duration": "400ms", **over}


def test_steps_and_revert_run_at_their_points_in_order(tmp_path: Path, sleeper: psutil.Popen) -> None:
    out = tmp_path / "order.txt"
    j = tmp_path / "j.jsonl"
    method = [
        pause(sleeper.pid, revert={"argv": append(out, "revert")}),
        {"step": "command", "name": "early", "at": "100ms", "env": {"X": 5}, "cwd": str(tmp_path),
         "argv": ["sh", "-c", f'echo "at $X $(pwd)" >> "{out}"; echo to-stdout; echo to-stderr >&2']},
        {"step": "command", "argv": append(out, "of-pause"), "when": "fault-removed", "of": "pause"},
        {"step": "command", "argv": append(out, "all-removed"), "when": "fault-removed"},
        {"step": "command", "argv": append(out, "recovery"), "when": "recovery"},
    ]
    r = run_experiment(load_dict(exp(sleeper.pid, method, fault="600ms")), journal_path=j)
    assert r.status.value == "passed", r.reason
    assert out.read_text().splitlines() == [f"at 5 {tmp_path}", "revert", "of-pause", "all-removed", "recovery"]
    ev = events(j)
    ends = [e for e in ev if e["event"] == "step-end"]
    assert [e["step"] for e in ends] == ["early", "command#1", "command#2", "command#3"]
    early = ends[0]
    assert early["exit_code"] == 0 and early["ok"] and early["argv"][0] == "sh"
    assert early["stdout_tail"] == "to-stdout\n" and early["stderr_tail"] == "to-stderr\n"
    assert early["duration_s"] >= 0
    revert = next(e for e in ev if e["event"] == "fault-revert-action")
    assert revert["fault"] == "pause" and revert["exit_code"] == 0
    # the revert action runs after the fault's own removal, before the fault counts as removed
    names = [e["event"] for e in ev]
    assert names.index("fault-revert-action") < names.index("fault-remove")
    phase_recovery = next(i for i, e in enumerate(ev) if e["event"] == "phase" and e["phase"] == "recovery")
    assert ev[phase_recovery + 2]["event"] == "step-end" and ev[phase_recovery + 2]["trigger"] == "recovery"
    assert psutil.Process(sleeper.pid).status() != psutil.STATUS_STOPPED


@pytest.mark.parametrize(("step", "reason"), [
    ({"argv": ["sh", "-c", "echo boom >&2; exit 3"]}, "exit code 3 (expected 0); stderr: boom"),
    ({"argv": ["sh", "-c", "exit 0"], "expect_exit": 4}, "exit code 0 (expected 4)"),
    ({"argv": ["/nonexistent/mlchaos-step"]}, "could not start: [Errno 2]"),
    ({"argv": ["sh", "-c", "echo late >&2; sleep 30"], "timeout": "300ms"},
     "timed out after 0.3s (its process group was killed); stderr: late"),
], ids=["exit-code", "expect-exit", "spawn-error", "timeout"])
def test_a_failing_step_errors_the_run_and_the_fault_is_still_removed(
        tmp_path: Path, sleeper: psutil.Popen, step: dict[str, Any], reason: str) -> None:
    j = tmp_path / "j.jsonl"
    method = [pause(sleeper.pid, duration="20s"), {"step": "command", "name": "bad", "at": "300ms", **step}]
    t0 = time.monotonic()
    r = run_experiment(load_dict(exp(sleeper.pid, method)), journal_path=j)
    assert r.status.value == "errored"
    assert r.reason.startswith("step bad failed: " + reason), r.reason
    assert time.monotonic() - t0 < 10, "the run ended at the failure, not at the fault's planned end"
    assert psutil.Process(sleeper.pid).status() != psutil.STATUS_STOPPED
    kinds = [e["event"] for e in events(j)]
    assert kinds.count("fault-inject") == kinds.count("fault-remove")  # whatever was in went out
    assert not list((Path(os.environ["MLCHAOS_STATE_DIR"]) / "leases").glob("*.json"))


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    outcome = run_sync({"argv": ["sh", "-c", f'echo $$ > "{pids}"; sleep 30 & echo $! >> "{pids}"; wait'],
                        "timeout": 0.5})
    assert outcome.exit_code is None and "timed out" in (outcome.error or "")

    def gone(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    assert wait_until(lambda: all(gone(int(p)) for p in pids.read_text().split()), timeout=5)


def test_output_tails_are_bounded(tmp_path: Path) -> None:
    outcome = run_sync({"argv": [sys.executable, "-c", "import sys; sys.stdout.write('x' * 100000 + 'END')"]})
    assert outcome.ok and len(outcome.stdout_tail) <= TAIL_BYTES + 1 and outcome.stdout_tail.endswith("END")


def test_a_failing_revert_action_errors_the_run(tmp_path: Path, sleeper: psutil.Popen) -> None:
    method = [pause(sleeper.pid, revert={"argv": ["sh", "-c", "echo cannot restart >&2; exit 1"]})]
    r = run_experiment(load_dict(exp(sleeper.pid, method)), journal_path=tmp_path / "j.jsonl")
    assert r.status.value == "errored"
    assert "revert action of fault pause failed: exit code 1 (expected 0); stderr: cannot restart" in r.reason
    assert psutil.Process(sleeper.pid).status() != psutil.STATUS_STOPPED


def test_dry_run_shows_steps_and_runs_none(tmp_path: Path) -> None:
    out = tmp_path / "ran.txt"
    method = [pause(1, revert={"argv": append(out, "revert")}),
              {"step": "command", "name": "restart", "at": "100ms", "argv": append(out, "step")}]
    path = write(tmp_path, exp(os.getpid(), method))
    cp = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(path), "--dry-run"], capture_output=True,
                        text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert "restart: at +0.2s: sh -c" in cp.stdout and "then, when removed, runs: sh -c" in cp.stdout
    assert not out.exists()


def test_watchdog_runs_the_revert_action_once_after_kill_9(tmp_path: Path, sleeper: psutil.Popen) -> None:
    """A runner SIGKILLed just after the fault is confirmed: the watchdog resumes the process and runs the
    fault's revert command, exactly once (the command appends a line to a file)."""
    out = tmp_path / "reverted.txt"
    state = Path(os.environ["MLCHAOS_STATE_DIR"])
    e = exp(sleeper.pid, [pause(sleeper.pid, duration="30s", revert={"argv": append(out, "reverted")})])
    e["lease_ttl"] = "1s"
    runner = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(write(tmp_path, e)), "-q",
                             "--journal", str(tmp_path / "j.jsonl")], env={**os.environ, KILL_AT_ENV: "fault-confirmed"},
                            capture_output=True, text=True, timeout=60)
    assert runner.returncode == -9, runner.stderr
    lease_files = list((state / "leases").glob("*.json"))
    # the fault was in (the watchdog may already have reverted it): the lease named the revert command
    assert wait_until(lambda: out.exists() and psutil.Process(sleeper.pid).status() != psutil.STATUS_STOPPED,
                      timeout=10)
    # the watchdog is gone once nothing is left to watch; then nobody can run the command again
    assert wait_until(lambda: not list((state / "runs").glob("*.watchdog")), timeout=10)
    assert not list((state / "leases").glob("*.json")), lease_files
    assert out.read_text().splitlines() == ["reverted"]
    log = (state / "watchdog.log").read_text()
    assert "runner died: fault reverted" in log and "revert action ran" in log


def test_the_next_run_reverts_a_lease_whose_runner_and_watchdog_are_gone(tmp_path: Path, sleeper: psutil.Popen) -> None:
    """A reboot or a killed session leaves a lease nobody watches: the next run reverts the fault and runs
    its revert command once, before its own preflight."""
    out = tmp_path / "reverted.txt"
    state = Path(os.environ["MLCHAOS_STATE_DIR"])
    dead = subprocess.Popen(["true"])
    dead.wait()  # a runner that is gone (its watchdog too: none was ever started)
    sleeper.suspend()
    st = psutil.Process(sleeper.pid).create_time()  # a record written before 2026-12-05: a wall-clock stamp
    LeaseStore(state).record(Lease.new("0-stale", 1.0), run_id="old-run", plugin="process-pause",
                             undo={"pids": [[sleeper.pid, st]]}, runner_pid=dead.pid,
                             action={"argv": append(out, "reverted"), "timeout": 10.0})
    j = tmp_path / "j.jsonl"
    run_experiment(load_dict(exp(sleeper.pid, [])), journal_path=j)
    assert psutil.Process(sleeper.pid).status() != psutil.STATUS_STOPPED
    assert out.read_text().splitlines() == ["reverted"]
    stale = next(e for e in events(j) if e["event"] == "stale-lease")
    assert stale["reverted"] and stale["run"] == "old-run" and stale["revert_action"]["exit_code"] == 0
    assert not list((state / "leases").glob("*.json"))


def test_mlchaos_stop_runs_the_revert_command(tmp_path: Path, sleeper: psutil.Popen) -> None:
    """``mlchaos stop`` reverts a lease left behind and runs its revert command, once."""
    out = tmp_path / "reverted.txt"
    state = Path(os.environ["MLCHAOS_STATE_DIR"])
    dead = subprocess.Popen(["true"])
    dead.wait()
    sleeper.suspend()
    st = psutil.Process(sleeper.pid).create_time()
    LeaseStore(state).record(Lease.new("0-left", 60.0), run_id="gone", plugin="process-pause",
                             undo={"pids": [[sleeper.pid, st]]}, runner_pid=dead.pid,
                             action={"argv": append(out, "reverted"), "timeout": 10.0})
    cp = subprocess.run([sys.executable, "-m", "mlchaos", "stop", "--json"], capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    assert psutil.Process(sleeper.pid).status() != psutil.STATUS_STOPPED
    assert out.read_text().splitlines() == ["reverted"]
    report = json.loads(cp.stdout)  # what the command did is reported, not only done
    assert [(c["plugin"], c["exit_code"], c["ok"]) for c in report["revert_commands"]] == [("process-pause", 0, True)]
