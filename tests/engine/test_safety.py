"""Removal on every exit path: SIGINT, SIGTERM, double Ctrl-C, kill -9 (leases), mlchaos stop, dry run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from mlchaos.contract.proc import process_start_time
from tests.conftest import wait_until
from tests.engine.helpers import events, experiment, is_stopped, summary, write


def _start(path: Path, journal: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "mlchaos", "run", str(path), "--journal", str(journal), "-q", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_injected(journal: Path, timeout: float = 20) -> None:
    assert wait_until(lambda: journal.exists() and any(e["event"] == "fault-inject" for e in events(journal)), timeout)


def _long_pause(url: str, pid: int) -> dict:
    exp = experiment(url, pid)
    exp["method"][0]["duration"] = "30s"
    exp["steady_state"] = [{"name": "health", "probe": "http", "url": "/health", "equals": 200, "timeout": "2s"}]
    return exp


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_removes_faults(tmp_path: Path, tiny_service, sig: signal.Signals) -> None:
    proc, url = tiny_service
    j = tmp_path / "j.jsonl"
    runner = _start(write(tmp_path, _long_pause(url, proc.pid)), j)
    _wait_injected(j)
    assert is_stopped(proc.pid)
    runner.send_signal(sig)
    runner.wait(20)
    assert runner.returncode == 3
    assert not is_stopped(proc.pid)
    s = summary(j)
    assert s["status"] == "aborted" and sig.name in s["reason"]


def test_second_ctrl_c_does_not_skip_removal(tmp_path: Path, tiny_service) -> None:
    """Ctrl-C again while a slow removal runs: noted, not obeyed; every fault still comes off."""
    import asyncio
    import threading

    from mlchaos import registry
    from mlchaos.engine.runner import run_experiment
    from mlchaos.plugin import Applied, Fault, FaultSpec
    from mlchaos.spec.loader import load_dict

    removed: list[float] = []
    injected = threading.Event()
    removing = threading.Event()

    class SlowRemoval(Fault):
        class Spec(FaultSpec):
            pass

        async def inject(self, lease: object) -> Applied:
            injected.set()
            return Applied(targets=["slow"])

        async def remove(self) -> None:
            removing.set()
            await asyncio.sleep(0.5)
            removed.append(time.time())

    def interrupt() -> None:
        injected.wait(20)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGINT)
        removing.wait(20)
        for _ in range(2):
            time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGINT)

    registry.register("fault", "slow-removal", SlowRemoval)
    try:
        proc, url = tiny_service
        exp = _long_pause(url, proc.pid)
        exp["method"].append({"name": "slow", "fault": "slow-removal", "at": "300ms", "duration": "30s"})
        t = threading.Thread(target=interrupt)
        t.start()
        res = run_experiment(load_dict(exp), journal_path=tmp_path / "j.jsonl")
        t.join()
    finally:
        registry.unregister("fault", "slow-removal")
    assert res.status.value == "aborted" and "SIGINT" in res.reason
    assert removed and not is_stopped(proc.pid)
    ev = events(tmp_path / "j.jsonl")
    assert sum(e["event"] == "signal-ignored" for e in ev) >= 1
    assert {e["fault"] for e in ev if e["event"] == "fault-remove"} == {"pause", "slow"}


@pytest.mark.slow
def test_kill_9_of_the_runner_leaves_no_fault_past_the_ttl(tmp_path: Path, tiny_service) -> None:
    """Repeat at random kill points: before, right after and well after injection."""
    proc, url = tiny_service
    rng = random.Random(7)
    ttl = 2.0
    for trial in range(4):
        j = tmp_path / f"j{trial}.jsonl"
        runner = _start(write(tmp_path, _long_pause(url, proc.pid), f"e{trial}.yaml"), j)
        if trial == 0:  # during preflight or baseline, before injection
            assert wait_until(lambda: j.exists() and j.stat().st_size > 0, 20)  # noqa: B023
            time.sleep(rng.uniform(0.0, 0.3))
        else:
            _wait_injected(j)
            time.sleep(rng.uniform(0.0, 1.5))
        killed_at = time.monotonic()
        runner.kill()
        runner.wait(10)
        resumed = wait_until(lambda: not is_stopped(proc.pid), timeout=ttl + 1.5, interval=0.01)
        elapsed = time.monotonic() - killed_at
        assert resumed, f"trial {trial}: process still paused {elapsed:.2f}s after kill -9"
        assert elapsed <= ttl + 1.2, f"trial {trial}: resumed only after {elapsed:.2f}s"
        # the journal is valid up to its last line and reads as unfinished
        r = subprocess.run([sys.executable, "-m", "mlchaos", "journal", str(j)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "unfinished" in r.stdout, r.stdout + r.stderr
    state = Path(os.environ["MLCHAOS_STATE_DIR"])
    assert wait_until(lambda: not list((state / "leases").glob("*.json")), 5)


def test_abort_removes_every_fault_within_half_a_second(tmp_path: Path, tiny_service) -> None:
    """Breach → abort → every fault removed; latency measured from the moment the fault broke the service."""
    proc, url = tiny_service
    bystander = psutil.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        exp = experiment(url, proc.pid, abort=[{"name": "down", "probe": "http", "url": "/health", "equals": 200,
                                               "timeout": "100ms"}])
        exp["method"] = [
            {"name": "pause", "fault": "process-pause", "pids": [proc.pid], "at": "200ms", "duration": "20s"},
            {"name": "pause bystander", "fault": "process-pause", "pids": [bystander.pid], "at": "0s", "duration": "20s"},
        ]
        j = tmp_path / "j.jsonl"
        from mlchaos.engine.runner import run_experiment
        from mlchaos.spec.loader import load_dict

        res = run_experiment(load_dict(exp), journal_path=j)
        assert res.status.value == "aborted"
        ev = events(j)
        inject = next(e["t"] for e in ev if e["event"] == "fault-inject" and e["fault"] == "pause")
        removed = max(e["t"] for e in ev if e["event"] == "fault-remove")
        assert removed - inject <= 0.5, f"faults removed {removed - inject:.3f}s after the breach began"
        assert not is_stopped(proc.pid) and not is_stopped(bystander.pid)
    finally:
        bystander.kill()
        bystander.wait()


def test_mlchaos_stop_removes_faults_and_refuses_new_runs(tmp_path: Path, tiny_service) -> None:
    proc, url = tiny_service
    j = tmp_path / "j.jsonl"
    runner = _start(write(tmp_path, _long_pause(url, proc.pid)), j)
    _wait_injected(j)
    r = subprocess.run([sys.executable, "-m", "mlchaos", "stop"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert not is_stopped(proc.pid)
    runner.wait(20)
    assert runner.returncode == 3
    j2 = tmp_path / "j2.jsonl"
    refused = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(tmp_path / "exp.yaml"), "-j", str(j2), "-q"],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 7 and summary(j2)["status"] == "refused" and "nothing was started" in summary(j2)["reason"]
    assert not is_stopped(proc.pid)
    subprocess.run([sys.executable, "-m", "mlchaos", "stop", "--release"], check=True, capture_output=True, timeout=60)


def test_dry_run_prints_the_plan_and_touches_nothing(tmp_path: Path, tiny_service) -> None:
    proc, url = tiny_service
    exp = experiment(url, proc.pid)
    exp["method"][0]["count"] = 1
    j = tmp_path / "j.jsonl"
    r = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(write(tmp_path, exp)), "-j", str(j), "--dry-run"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "pause on target 'default': from +0.6s to +1.6s" in r.stdout
    assert "'count': 1" in r.stdout and "nothing was touched" in r.stdout
    assert not j.exists() and not is_stopped(proc.pid)


def test_journal_has_effective_config_and_summary(tmp_path: Path, tiny_service) -> None:
    proc, url = tiny_service
    j = tmp_path / "j.jsonl"
    r = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(write(tmp_path, experiment(url, proc.pid))),
                        "-j", str(j), "-q", "--set", "phases.recovery=200ms"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    ev = events(j)
    assert ev[0]["event"] == "run-start"
    s = ev[-1]
    assert s["event"] == "summary" and s["version"]
    assert s["config"]["experiment"]["phases"]["recovery"] == 0.2
    kinds = {e["event"] for e in ev}
    assert {"phase", "probe", "fault-inject", "fault-remove", "target-ready"} <= kinds
    inject = next(e for e in ev if e["event"] == "fault-inject")
    assert inject["lease"]["ttl"] == 2.0 and inject["targets"] == [f"pid:{proc.pid}"]


def test_kill_9_of_the_runner_stops_the_command_it_started(tmp_path: Path, free_port: int) -> None:
    """A target command owned by the run does not outlive a runner killed by SIGKILL."""
    exp = {
        "title": "owned command",
        "target": {"platform": "process", "url": f"http://127.0.0.1:{free_port}", "ready": "/health",
                   "command": [sys.executable, "-m", "mlchaos.examples.tiny_service", "--port", str(free_port)]},
        "steady_state": [{"probe": "http", "url": "/health", "equals": 200, "timeout": "2s"}],
        "method": [{"fault": "process-pause", "at": "200ms", "duration": "30s"}],
        "phases": {"baseline": "200ms", "recovery": "200ms"},
        "lease_ttl": "2s",
    }
    j = tmp_path / "j.jsonl"
    runner = _start(write(tmp_path, exp), j)
    _wait_injected(j)
    pid = next(e for e in events(j) if e["event"] == "target-ready")["facts"]["pids"][0]
    assert is_stopped(pid)
    runner.kill()
    runner.wait(10)

    def gone() -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    assert wait_until(gone, timeout=5), "the command the run started outlived the runner"


def test_mlchaos_stop_with_nothing_running_says_so_and_still_refuses_runs(tmp_path: Path, tiny_service) -> None:
    """#15: 'nothing was running', yet the stop flag is set as documented (no run starts until --release)."""
    proc, url = tiny_service
    r = subprocess.run([sys.executable, "-m", "mlchaos", "stop"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "nothing was running" in r.stdout and "refused until 'mlchaos stop --release'" in r.stdout
    assert (Path(os.environ["MLCHAOS_STATE_DIR"]) / "STOP").exists()
    j = tmp_path / "j.jsonl"
    refused = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(write(tmp_path, experiment(url, proc.pid))),
                              "-j", str(j), "-q"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 7 and summary(j)["status"] == "refused"
    assert not is_stopped(proc.pid)
    subprocess.run([sys.executable, "-m", "mlchaos", "stop", "--release"], check=True, capture_output=True, timeout=60)


def test_mlchaos_stop_reverts_intents_as_well_as_leases(tmp_path: Path) -> None:
    """A fault written ahead but never confirmed (its runner died mid-inject, no watchdog) is reverted by stop."""
    from mlchaos.contract.lease import Lease
    from mlchaos.engine.lease import LeaseStore

    sleepers = [psutil.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(2)]
    dead = psutil.Popen([sys.executable, "-c", "pass"])
    dead.wait(10)
    try:
        for p in sleepers:
            p.suspend()
        store = LeaseStore(Path(os.environ["MLCHAOS_STATE_DIR"]))
        store.intend(Lease.new("0-intent", 60.0), run_id="r-dead", plugin="process-pause",
                     undo={"pids": [[sleepers[0].pid, process_start_time(sleepers[0].pid)]]}, runner_pid=dead.pid)
        store.record(Lease.new("1-lease", 60.0), run_id="r-dead", plugin="process-pause",
                     undo={"pids": [[sleepers[1].pid, process_start_time(sleepers[1].pid)]]}, runner_pid=dead.pid)
        r = subprocess.run([sys.executable, "-m", "mlchaos", "stop"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "2 fault(s) removed (1 of them written ahead" in r.stdout, r.stdout
        assert all(p.status() != psutil.STATUS_STOPPED for p in sleepers)
        assert not store.all()
    finally:
        for p in sleepers:
            p.kill()
            p.wait(5)
        subprocess.run([sys.executable, "-m", "mlchaos", "stop", "--release"], capture_output=True, timeout=60)
