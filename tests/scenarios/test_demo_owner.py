"""A lab that ``mlchaos demo`` starts goes down with the demo, however the demo dies, and no fault stays.

Real processes.  The demo runs one short scenario (feature-latency, naive: 200 ms on the fraud model's
feature calls, injected in the lab's fault proxy) in its own process group, as from a terminal; once the
fault is in place (the journal says so and its lease is on disk) the demo is killed.

* ``kill -9``: nothing in the demo runs any more.  The lab's supervisor watches the demo (``--exit-with``)
  and brings the lab down; the engine's watchdog reverts the fault and drops its lease.
* SIGHUP (a closed terminal) and SIGINT: the demo aborts the run (the fault removed by the engine), brings
  the lab down itself and exits 128 + the signal; SIGTERM while the lab starts ends it before any run.

Each test records every process the demo started (its descendants, the lab's services) before the kill,
and kills whatever is left of them when it ends, passed or failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from mlchaos.contract.proc import process_start_time
from mlchaos.lab import Lab
from tests.lab.conftest import _copy_build, built_lab_dir  # noqa: F401 - the lab tests' build, made once

SCENARIO = "feature-latency"
BOUND_S = 15.0
"""Seconds within which every process of a killed demo must be gone and its fault reverted."""


@dataclass
class _Demo:
    proc: subprocess.Popen[bytes]
    lab_dir: Path
    out: Path
    state: Path
    log: Path
    seen: dict[int, psutil.Process] = field(default_factory=dict)

    @property
    def journal(self) -> Path:
        return self.out / "journals" / f"{SCENARIO}-naive.jsonl"

    def events(self) -> list[dict[str, object]]:
        try:
            lines = self.journal.read_text().splitlines()
        except OSError:
            return []
        out = []
        for line in lines:
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def leases(self) -> list[dict[str, object]]:
        found = []
        for p in (self.state / "leases").glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                found.append(json.loads(p.read_text()))
        return found

    def record(self) -> None:
        """Remember every process the demo started so far: its descendants and the lab's own records."""
        procs = []
        with contextlib.suppress(psutil.NoSuchProcess):
            procs = psutil.Process(self.proc.pid).children(recursive=True)
        st = Lab(self.lab_dir)._state() or {}
        pids = [s.get("pid") for s in st.get("services", [])] + [(st.get("supervisor") or {}).get("pid")]
        for pid in pids:
            if isinstance(pid, int):
                with contextlib.suppress(psutil.Error):
                    procs.append(psutil.Process(pid))
                    procs += procs[-1].children(recursive=True)
        for p in procs:
            self.seen.setdefault(p.pid, p)

    def alive(self) -> list[str]:
        """The recorded processes still running (psutil tells a reused pid from ours by its start time)."""
        out = []
        for p in self.seen.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    out.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
        return out

    def tail(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        sup = self.lab_dir / "logs" / "supervisor.log"
        return text[-3000:] + "\n--- supervisor.log ---\n" + (sup.read_text()[-3000:] if sup.exists() else "")


def _wait(cond: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(interval)
    return cond()


@pytest.fixture
def demo(tmp_path: Path, built_lab_dir: Path, state_dir: Path) -> Iterator[_Demo]:  # noqa: F811
    """``mlchaos demo --only feature-latency --variant naive`` in its own session; nothing left after it."""
    lab_dir = tmp_path / "lab"
    _copy_build(built_lab_dir, lab_dir)
    out, log = tmp_path / "report", tmp_path / "demo.log"
    cmd = [sys.executable, "-m", "mlchaos", "demo", "--quiet", "--only", SCENARIO, "--variant", "naive",
           "--retries", "0", "--out", str(out), "--lab-dir", str(lab_dir)]
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, "MLCHAOS_STATE_DIR": str(state_dir)})
    d = _Demo(proc, lab_dir, out, state_dir, log)
    try:
        yield d
    finally:
        d.record()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        for p in d.seen.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                p.resume()
                p.kill()
        proc.wait(timeout=10)
        psutil.wait_procs(list(d.seen.values()), timeout=5)


def _until_fault(d: _Demo) -> None:
    """Wait until the fault is injected: its ``fault-inject`` event in the journal and its lease on disk."""
    def injected() -> bool:
        if d.proc.poll() is not None:
            raise AssertionError(f"demo exited with {d.proc.returncode} before its fault:\n{d.tail()}")
        return any(e.get("event") == "fault-inject" for e in d.events()) and any(
            x.get("state") == "active" for x in d.leases())

    assert _wait(injected, 240, interval=0.1), f"no fault injected in 240 s:\n{d.tail()}"
    d.record()
    sup = (Lab(d.lab_dir)._state() or {}).get("supervisor") or {}
    assert (sup.get("owner") or {}).get("pid") == d.proc.pid, sup  # the demo's lab is the demo's own
    assert len(d.seen) >= 6, d.seen  # supervisor, fork server, services, proxy, watchdog, ...


def _assert_all_gone(d: _Demo, since: float) -> float:
    """Every recorded process gone and no lease left, within BOUND_S of ``since``; the seconds it took."""
    _wait(lambda: not d.alive() and not d.leases(), BOUND_S)
    took = time.monotonic() - since
    assert not d.alive(), f"still running {took:.1f}s after the demo died: {d.alive()}\n{d.tail()}"
    assert not d.leases(), f"leases left {took:.1f}s after the demo died: {d.leases()}"
    assert not Lab(d.lab_dir).is_up()
    st = Lab(d.lab_dir)._state() or {}
    assert st.get("services") and not any(s.get("ready") for s in st["services"]), "state.json not updated"
    return took


@pytest.mark.slow
def test_kill_9_of_the_demo_takes_its_lab_down_and_the_watchdog_reverts_the_fault(demo: _Demo) -> None:
    _until_fault(demo)
    t0 = time.monotonic()
    os.kill(demo.proc.pid, signal.SIGKILL)
    demo.proc.wait(timeout=5)
    took = _assert_all_gone(demo, t0)
    print(f"lab down and fault reverted {took:.2f}s after kill -9 of the demo")
    assert "owner_gone" in (demo.lab_dir / "logs" / "supervisor.log").read_text()
    watchdog = (demo.state / "watchdog.log").read_text()
    assert "runner died: fault reverted" in watchdog, watchdog


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGINT], ids=["SIGHUP", "SIGINT"])
def test_a_signal_to_the_demo_aborts_the_run_and_brings_its_lab_down(demo: _Demo, sig: signal.Signals) -> None:
    _until_fault(demo)
    t0 = time.monotonic()
    os.killpg(demo.proc.pid, sig)  # as a terminal does: the whole foreground process group
    try:
        code = demo.proc.wait(timeout=BOUND_S)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"demo still running {BOUND_S}s after {sig.name}:\n{demo.tail()}") from None
    assert code == 128 + sig, demo.tail()
    took = _assert_all_gone(demo, t0)
    print(f"demo exited and its lab was down {took:.2f}s after {sig.name}")
    events = demo.events()
    assert [e["event"] for e in events].count("fault-remove") == 1  # removed by the engine, not the watchdog
    stop = next(e for e in events if e.get("event") == "stop-requested")
    assert str(stop.get("reason", "")).startswith("interrupted by"), stop
    assert f"interrupted by {sig.name}" in demo.log.read_text()
    # the demo itself brought its lab down: the supervisor never had to notice its owner gone
    assert "owner_gone" not in (demo.lab_dir / "logs" / "supervisor.log").read_text()
    assert not (demo.out / "summary.json").exists()


@pytest.mark.slow
def test_sigterm_while_the_lab_starts_ends_the_demo_before_any_run(demo: _Demo) -> None:
    # SIGTERM's default action would end the demo at once, with no clean-up: its handler must come first
    assert _wait(lambda: Lab(demo.lab_dir).is_up() or demo.proc.poll() is not None, 120), demo.tail()
    demo.record()
    t0 = time.monotonic()
    demo.proc.send_signal(signal.SIGTERM)
    code = demo.proc.wait(timeout=BOUND_S)
    assert code == 128 + signal.SIGTERM, demo.tail()
    demo.record()
    _wait(lambda: not demo.alive(), BOUND_S)
    assert not demo.alive(), f"still running {time.monotonic() - t0:.1f}s after SIGTERM: {demo.alive()}"
    assert not Lab(demo.lab_dir).is_up() and not demo.leases() and not demo.events()
    assert "owner_gone" not in (demo.lab_dir / "logs" / "supervisor.log").read_text()


def _supervisor(lab_dir: Path, owner: str) -> subprocess.Popen[bytes]:
    lab_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "mlchaos.lab.supervisor", "--dir", str(lab_dir),
                             "--exit-with", owner], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def test_the_supervisor_exits_with_its_owner_and_not_for_a_reused_pid(tmp_path: Path) -> None:
    from mlchaos.lab.lifetime import owner_arg

    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    sup = _supervisor(tmp_path / "a", owner_arg(owner.pid))
    # this test's own pid with another start time: a process that reused the owner's pid, not the owner
    reused = _supervisor(tmp_path / "b", f"{os.getpid()}:{process_start_time(os.getpid()) - 100}")
    try:
        assert reused.wait(timeout=30) == 0  # the owner is gone already: it went down at once
        assert _wait(lambda: Lab(tmp_path / "a").is_up(), 30)
        st = Lab(tmp_path / "a").state()["supervisor"]
        assert st["owner"] == {"pid": owner.pid, "started_at": process_start_time(owner.pid)}
        assert sup.poll() is None
        owner.kill()
        owner.wait()
        assert sup.wait(timeout=30) == 0  # POST /down: a clean exit, as `mlchaos lab down`
    finally:
        for p in (owner, sup, reused):
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            p.wait(timeout=10)


def test_a_sighup_that_comes_before_the_engine_has_its_handlers_is_passed_on_at_its_first_phase() -> None:
    """The window between ``in_run`` and the engine's handlers: the signal must not be lost."""
    from mlchaos.cli._demo_signals import Interrupted, Signals

    got: list[int] = []
    before = signal.getsignal(signal.SIGHUP)
    with Signals() as sig:
        sig.in_run = True
        signal.raise_signal(signal.SIGHUP)  # the engine has no handler yet: nothing to pass it on to
        assert sig.signum == signal.SIGHUP and not sig.forwarded
        previous = signal.signal(signal.SIGTERM, lambda n, f: got.append(n))  # as the engine's would
        try:
            sig.noted({"event": "phase", "phase": "preflight"})
            assert got == [signal.SIGTERM] and sig.forwarded
            sig.noted({"event": "phase", "phase": "baseline"})
            assert got == [signal.SIGTERM]  # once
        finally:
            signal.signal(signal.SIGTERM, previous)
        sig.in_run = False
        with pytest.raises(Interrupted) as exc:
            sig.check()
        assert exc.value.signum == signal.SIGHUP and str(exc.value) == "interrupted by SIGHUP"
        with pytest.raises(Interrupted):  # between runs: at once
            sig.signum = None
            signal.raise_signal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGHUP) == before  # put back as it was


def test_a_signal_the_engine_took_itself_ends_the_demo_after_the_run() -> None:
    from mlchaos.cli._demo_signals import Interrupted, Signals

    with Signals() as sig:
        sig.noted({"event": "stop-requested", "status": "aborted", "reason": "max_duration (60s) reached"})
        sig.check()  # not a signal: the demo goes on
        sig.noted({"event": "stop-requested", "status": "aborted", "reason": "interrupted by SIGINT"})
        with pytest.raises(Interrupted) as exc:
            sig.check()
        assert exc.value.signum == signal.SIGINT
