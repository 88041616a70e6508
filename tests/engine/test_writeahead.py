"""Write-ahead leases (issue #16, finding 5): a runner killed by SIGKILL at any point of ``inject`` leaves nothing faulted.

The runner is a real ``mlchaos run`` process; ``$MLCHAOS_TEST_KILL_AT`` makes
it SIGKILL itself at one exact point (``mlchaos.contract.lease.kill_point``):
after the intent is written, after the first and after the second of two
SIGSTOPs, after ``inject`` returned but before the lease confirms it.  The
paused processes and proxy rules are real; every check is on the processes'
state (``T`` = stopped) and the proxy's rule table, not on mlchaos's files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from mlchaos.contract.lease import KILL_AT_ENV, Lease
from mlchaos.contract.proc import process_start_time
from mlchaos.engine.lease import LeaseStore
from tests.conftest import wait_until
from tests.engine.helpers import events, experiment, is_stopped, write

TTL = 1.0
PATIENT = [{"name": "health", "probe": "http", "url": "/health", "equals": 200, "timeout": "5s"}]
"""A steady state that a busy 2-core machine does not fail before the fault (the point is the fault)."""


@pytest.fixture
def sleepers() -> Iterator[list[psutil.Popen]]:
    """Two bystander processes for the pause to hit; always resumed and stopped afterwards."""
    procs = [psutil.Popen([sys.executable, "-c", "import time; time.sleep(120)"]) for _ in range(2)]
    yield procs
    for p in procs:
        try:
            p.resume()
            p.kill()
            p.wait(5)
        except psutil.NoSuchProcess:
            pass


def _run_killed_at(tmp_path: Path, exp: dict, site: str) -> tuple[Path, float]:
    """Run ``exp`` in a real runner that SIGKILLs itself at ``site``; return its journal and the time it died."""
    j = tmp_path / f"{site.replace(':', '_')}.jsonl"
    env = {**os.environ, KILL_AT_ENV: site}
    runner = subprocess.Popen(
        [sys.executable, "-m", "mlchaos", "run", str(write(tmp_path, exp, f"{site.replace(':', '_')}.yaml")),
         "--journal", str(j), "-q"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        rc = runner.wait(60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        assert runner.stderr is not None
        err = runner.stderr.read()
        runner.stderr.close()
    assert rc == -9, f"the runner was not killed at {site!r} (exit {rc}): {err[-2000:]}"
    return j, time.monotonic()


def _no_records_left() -> bool:
    state = Path(os.environ["MLCHAOS_STATE_DIR"])
    return not list((state / "leases").glob("*.json")) and not list((state / "runs").glob("*.watchdog"))


@pytest.mark.slow
@pytest.mark.parametrize("site", ["intent-written", "process-pause:stopped:1", "process-pause:stopped:2",
                                  "inject-returned"])
def test_sigkill_inside_inject_leaves_no_process_paused(tmp_path: Path, tiny_service, sleepers, site: str) -> None:
    _, url = tiny_service
    exp = experiment(url, sleepers[0].pid, lease_ttl=f"{TTL}s", steady_state=PATIENT)
    exp["method"] = [{"name": "pause", "fault": "process-pause", "pids": [p.pid for p in sleepers], "count": 2,
                      "at": "0s", "duration": "30s"}]
    exp["phases"] = {"baseline": "100ms", "recovery": "100ms"}
    j, died = _run_killed_at(tmp_path, exp, site)
    ev = events(j)
    intent = [e for e in ev if e["event"] == "fault-intent"]
    assert intent and intent[0]["planned_undo"] is True, "no intent in the journal before the kill"
    assert not any(e["event"] == "fault-inject" for e in ev), "the kill came after the lease was confirmed"
    resumed = wait_until(lambda: not any(is_stopped(p.pid) for p in sleepers), timeout=TTL + 2.0, interval=0.01)
    took = time.monotonic() - died
    assert resumed, f"{site}: a process is still paused {took:.2f}s after the runner died"
    for p in sleepers:
        assert p.status() != psutil.STATUS_STOPPED  # state not 'T'
    assert wait_until(_no_records_left, 5), "an intent, lease or watchdog of the dead run is left"
    log = (Path(os.environ["MLCHAOS_STATE_DIR"]) / "watchdog.log").read_text()
    assert '"state": "intent"' in log and "runner died: fault reverted" in log, log


@pytest.mark.slow
@pytest.mark.parametrize("site", ["intent-written", "inject-returned"])
def test_sigkill_inside_inject_leaves_no_proxy_rule(tmp_path: Path, tiny_service, site: str) -> None:
    from mlchaos.proxy import spawn

    _, url = tiny_service
    proxy = spawn(upstream=url.removeprefix("http://"), mode="http")
    try:
        exp = experiment(url, 0, lease_ttl=f"{TTL}s", steady_state=PATIENT)
        exp["method"] = [{"name": "slow", "fault": "latency", "control": proxy.control_url, "delay": "10ms",
                          "at": "0s", "duration": "30s"}]
        exp["phases"] = {"baseline": "100ms", "recovery": "100ms"}
        _run_killed_at(tmp_path, exp, site)
        # after the TTL (the watchdog acts at once on a dead runner; the proxy's own lease is the backstop)
        time.sleep(TTL)
        assert wait_until(lambda: proxy.client.health()["faults"] == 0, 2.0), proxy.client._call("GET", "/faults")
        assert wait_until(_no_records_left, 5)
    finally:
        proxy.stop()


def test_watchdog_reverts_a_dead_runners_intent_at_once(tmp_path: Path) -> None:
    """An intent of a runner that is gone is reverted without waiting for its TTL (and the watchdog then exits)."""
    from mlchaos.engine.watchdog import watch

    sleeper = psutil.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = psutil.Popen([sys.executable, "-c", "pass"])
    dead.wait(10)
    try:
        sleeper.suspend()
        base = tmp_path / "state"
        store = LeaseStore(base)
        (base / "runs").mkdir(parents=True, exist_ok=True)
        store.intend(Lease.new("0-abc", 60.0), run_id="r1", plugin="process-pause",
                     undo={"pids": [[sleeper.pid, process_start_time(sleeper.pid)]]}, runner_pid=dead.pid)
        t0 = time.monotonic()
        assert watch(base, "r1", dead.pid) == 0
        assert time.monotonic() - t0 < 5.0  # not the 60 s TTL
        assert sleeper.status() != psutil.STATUS_STOPPED
        assert not store.for_run("r1")
    finally:
        sleeper.kill()
        sleeper.wait(5)


def test_an_unplanned_intent_is_reported_not_reverted(tmp_path: Path) -> None:
    """A third-party plugin without intent(): its record is named in the watchdog log, then dropped."""
    from mlchaos.engine.lease import Unplanned, revert_record
    from mlchaos.engine.watchdog import watch

    dead = psutil.Popen([sys.executable, "-c", "pass"])
    dead.wait(10)
    base = tmp_path / "state"
    store = LeaseStore(base)
    (base / "runs").mkdir(parents=True, exist_ok=True)
    store.intend(Lease.new("0-abc", 60.0), run_id="r1", plugin="third-party", undo=None, runner_pid=dead.pid)
    with pytest.raises(Unplanned):
        revert_record(store.for_run("r1")[0][1])
    assert watch(base, "r1", dead.pid) == 0
    log = (base / "watchdog.log").read_text()
    assert "intent without an undo record" in log and "third-party" in log


def test_the_intent_is_on_disk_before_inject_and_durable(tmp_path: Path, tiny_service,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The write-ahead record is fsynced (file and directory) before the plugin's inject runs."""
    import asyncio

    from mlchaos import registry
    from mlchaos.engine import state
    from mlchaos.engine.runner import run_experiment
    from mlchaos.plugin import Applied, Fault, FaultSpec
    from mlchaos.spec.loader import load_dict

    synced: list[str] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append("fsync")
        real_fsync(fd)

    monkeypatch.setattr(state.os, "fsync", counting_fsync)
    seen: list[dict] = []

    class Probe(Fault):
        class Spec(FaultSpec):
            pass

        async def intent(self, lease: object) -> dict:
            return {"token": "planned"}

        async def inject(self, lease: object) -> Applied:
            assert synced.count("fsync") >= 2  # the file, then its directory
            seen.extend(d for _, d in LeaseStore(Path(os.environ["MLCHAOS_STATE_DIR"])).all())
            await asyncio.sleep(0)
            return Applied(targets=["x"], undo={"token": "applied"})

        async def remove(self) -> None:
            return None

    _, url = tiny_service
    registry.register("fault", "writeahead-probe", Probe)
    try:
        exp = experiment(url, 0, lease_ttl="1s", steady_state=PATIENT, phases={"baseline": "100ms", "recovery": "100ms"})
        # 1 s, not 100 ms: on a busy host the phase could end before the injection began ("never injected")
        exp["method"] = [{"fault": "writeahead-probe", "at": "0s", "duration": "1s"}]
        run_experiment(load_dict(exp), journal_path=tmp_path / "j.jsonl")
    finally:
        registry.unregister("fault", "writeahead-probe")
    failed = [e for e in events(tmp_path / "j.jsonl") if e["event"] in ("fault-inject-failed", "error", "summary")]
    assert [(d["state"], d["undo"]) for d in seen] == [("intent", {"token": "planned"})], failed
    assert any(e["event"] == "fault-inject" for e in events(tmp_path / "j.jsonl"))


# -- revert from an intent at every point of a swap (in-process: the states a kill can leave) -----------------
def _intent(fault: object, lease_id: str = "0-wa") -> dict:
    import asyncio

    return asyncio.run(fault.intent(Lease.new(lease_id, 1.0)))  # type: ignore[attr-defined]


@pytest.mark.parametrize("stop_after", ["nothing", "staged", "backup-linked", "swapped"])
def test_file_swap_reverts_from_its_intent_at_every_step(tmp_path: Path, stop_after: str) -> None:
    from mlchaos.faults.models import ModelTruncate

    model = tmp_path / "model.bin"
    model.write_bytes(b"original model bytes")
    f = ModelTruncate(ModelTruncate.Spec(fault="model-truncate", path=str(model), keep=0.5), None)
    undo = _intent(f)
    backup, staged = Path(undo["backup"]), Path(undo["staged"])
    # act out the swap (mlchaos.faults.swap.swap_file) up to the step a kill interrupts
    if stop_after in ("staged", "backup-linked", "swapped"):
        staged.write_bytes(b"original m")
    if stop_after in ("backup-linked", "swapped"):
        os.link(model, backup)
    if stop_after == "swapped":
        os.replace(staged, model)
    for _ in range(2):  # idempotent
        ModelTruncate.revert(undo)
        assert model.read_bytes() == b"original model bytes"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin"]


def test_model_dir_swap_reverts_when_killed_between_its_two_renames(tmp_path: Path) -> None:
    from mlchaos.faults.models import ModelSwap

    served, older = tmp_path / "model", tmp_path / "v1"
    served.mkdir()
    (served / "w").write_text("v2")
    older.mkdir()
    (older / "w").write_text("v1")
    f = ModelSwap(ModelSwap.Spec(fault="model-swap", path=str(served), replacement=str(older)), None)
    undo = _intent(f)
    assert undo["mode"] == "dir"
    import shutil

    shutil.copytree(older, undo["staged"])
    os.rename(served, undo["backup"])  # killed here: the served path is missing
    ModelSwap.revert(undo)
    ModelSwap.revert(undo)
    assert (served / "w").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "v1"]


def test_failpoint_intent_disarms_only_its_own_arming(tmp_path: Path) -> None:
    from mlchaos import failpoint as fp
    from mlchaos.faults.data import FailpointFault

    spec = FailpointFault.Spec(fault="failpoint", point="batch.after", kind="raise", directory=str(tmp_path))
    f = FailpointFault(spec, None)
    undo = _intent(f)
    FailpointFault.revert(undo)  # never armed: nothing to do
    other = fp.arm("batch.after", "raise", ttl=30, directory=tmp_path)  # someone else's arming
    FailpointFault.revert(undo)
    assert fp.renew("batch.after", 30, directory=tmp_path, lease_id=other["lease_id"])  # still armed
    fp.arm("batch.after", "raise", ttl=30, directory=tmp_path, lease_id=undo["lease_id"])  # the planned arming
    FailpointFault.revert(undo)
    with pytest.raises(ValueError):
        fp.renew("batch.after", 30, directory=tmp_path, lease_id=undo["lease_id"])


def test_delivery_run_intent_finds_the_pipeline_by_its_run_id(tmp_path: Path) -> None:
    """Killed after the pipeline started but before its PID was recorded: revert finds it by the planned run id."""
    from mlchaos.faults.delivery import DeliveryRun

    run_id = "20261204T000000-wa0001"
    pipeline = psutil.Popen([sys.executable, "-c", "import time; time.sleep(60)", "mlchaos.lab.delivery.pipeline",
                             "--run-id", run_id], start_new_session=True)
    try:
        DeliveryRun.revert({"run_id": "20261204T000000-other", "lab_dir": str(tmp_path)})  # not this one
        assert pipeline.is_running() and pipeline.status() != psutil.STATUS_ZOMBIE
        DeliveryRun.revert({"run_id": run_id, "lab_dir": str(tmp_path)})
        pipeline.wait(5)
        DeliveryRun.revert({"run_id": run_id, "lab_dir": str(tmp_path)})  # idempotent
    finally:
        if pipeline.is_running():
            pipeline.kill()
            pipeline.wait(5)


def test_no_intent_without_a_live_watchdog(tmp_path: Path) -> None:
    """ensure() waits for the run's watchdog, and starts another when the first one died."""
    from mlchaos.engine.watchdog import ensure, ready_file

    base = tmp_path / "state"
    (base / "runs").mkdir(parents=True)
    (base / "leases").mkdir()
    (base / "runs" / "r1.json").write_text(json.dumps({"run_id": "r1", "pid": os.getpid()}))
    first = ensure(base, "r1")
    try:
        assert psutil.Process(first).is_running()
        assert ensure(base, "r1") == first  # alive and announced: no second one
        psutil.Process(first).kill()
        psutil.Process(first).wait(5)
        second = ensure(base, "r1")
        assert second != first and psutil.Process(second).is_running()
    finally:
        (base / "runs" / "r1.json").unlink()  # the run ended: the watchdog exits by itself
    assert wait_until(lambda: not ready_file(base, "r1").exists(), 10)


def test_an_inject_that_fails_half_way_is_reverted_from_its_intent(tmp_path: Path, tiny_service, sleepers) -> None:
    """inject stops the first of two PIDs, then raises: the runner reverts the intent at once (no TTL wait)."""
    import signal

    from mlchaos import registry
    from mlchaos.engine.runner import run_experiment
    from mlchaos.faults.process import ProcessPause
    from mlchaos.plugin import Applied, FaultError
    from mlchaos.spec.loader import load_dict

    class HalfPause(ProcessPause):
        class Spec(ProcessPause.Spec):
            fault: str = "half-pause"  # type: ignore[assignment]

        async def inject(self, lease: object) -> Applied:
            assert self._plan is not None
            os.kill(int(self._plan[0][0][0]), signal.SIGSTOP)
            raise FaultError("lost the second process")

    _, url = tiny_service
    registry.register("fault", "half-pause", HalfPause)
    try:
        exp = experiment(url, 0, lease_ttl="30s", steady_state=PATIENT,
                         phases={"baseline": "100ms", "recovery": "100ms"})
        exp["method"] = [{"fault": "half-pause", "pids": [p.pid for p in sleepers], "count": 2, "at": "0s",
                          "duration": "1s"}]
        j = tmp_path / "j.jsonl"
        res = run_experiment(load_dict(exp), journal_path=j)
    finally:
        registry.unregister("fault", "half-pause")
    assert res.status.value == "errored"
    assert not any(is_stopped(p.pid) for p in sleepers)  # well before the 30 s TTL
    assert any(e["event"] == "fault-inject-failed" for e in events(j))
    assert not LeaseStore(Path(os.environ["MLCHAOS_STATE_DIR"])).all()
