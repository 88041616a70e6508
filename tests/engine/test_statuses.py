"""One real run per status and exit code (real processes, real sockets on 127.0.0.1)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import wait_until
from tests.engine.helpers import events, experiment, is_stopped, run_cli, summary, write


def test_passed_when_the_paused_process_is_not_on_the_critical_path(tmp_path: Path, tiny_service) -> None:
    _, url = tiny_service
    bystander = psutil.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        j = tmp_path / "j.jsonl"
        r = run_cli(write(tmp_path, experiment(url, bystander.pid)), j)
        assert r.returncode == 0, r.stdout + r.stderr
        s = summary(j)
        assert s["status"] == "passed"
        assert s["faults"][0]["targets"] == [f"pid:{bystander.pid}"]
        assert s["faults"][0]["removed_at"] > s["faults"][0]["injected_at"]
        assert not is_stopped(bystander.pid)
    finally:
        bystander.kill()
        bystander.wait()


def test_failed_when_the_hypothesis_deviates(tmp_path: Path, tiny_service) -> None:
    proc, url = tiny_service
    j = tmp_path / "j.jsonl"
    r = run_cli(write(tmp_path, experiment(url, proc.pid)), j)
    assert r.returncode == 1, r.stdout + r.stderr
    s = summary(j)
    assert s["status"] == "failed" and "deviated during the fault window" in s["reason"]
    health = s["probes"][0]
    assert health["during"]["breaches"] >= 1 and health["after"]["ok"] is True
    assert not is_stopped(proc.pid)


def test_invalid_file_exits_2_and_touches_nothing(tmp_path: Path, tiny_service) -> None:
    proc, url = tiny_service
    exp = experiment(url, proc.pid)
    exp["method"][0]["at"] = "soon"
    j = tmp_path / "j.jsonl"
    r = run_cli(write(tmp_path, exp), j)
    assert r.returncode == 2
    assert "method[0].at" in r.stderr
    assert not j.exists()


def test_aborted_removes_the_fault(tmp_path: Path, tiny_service) -> None:
    proc, url = tiny_service
    exp = experiment(url, proc.pid, abort=[{"name": "down", "probe": "http", "url": "/health", "equals": 200,
                                           "timeout": "100ms"}])
    exp["method"][0]["duration"] = "20s"
    j = tmp_path / "j.jsonl"
    r = run_cli(write(tmp_path, exp), j)
    assert r.returncode == 3, r.stdout + r.stderr
    s = summary(j)
    assert s["status"] == "aborted" and "abort condition down tripped" in s["reason"]
    assert s["removal_latency_s"] is not None
    assert not is_stopped(proc.pid)
    assert s["timing"]["duration_s"] < 10


def test_not_run_when_baseline_fails_and_no_fault_is_injected(tmp_path: Path, tiny_service) -> None:
    proc, url = tiny_service
    exp = experiment(url, proc.pid)
    exp["steady_state"][0]["equals"] = 418
    j = tmp_path / "j.jsonl"
    r = run_cli(write(tmp_path, exp), j)
    assert r.returncode == 4, r.stdout + r.stderr
    assert summary(j)["status"] == "not-run"
    assert not any(e["event"] == "fault-inject" for e in events(j))


def test_errored_when_the_fault_cannot_be_injected(tmp_path: Path, tiny_service) -> None:
    _, url = tiny_service
    dead = psutil.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    j = tmp_path / "j.jsonl"
    r = run_cli(write(tmp_path, experiment(url, dead.pid)), j)
    assert r.returncode == 5, r.stdout + r.stderr
    s = summary(j)
    assert s["status"] == "errored" and "cannot be injected" in s["reason"]


def test_errored_when_the_target_is_unreachable(tmp_path: Path, free_port: int) -> None:
    j = tmp_path / "j.jsonl"
    r = run_cli(write(tmp_path, experiment(f"http://127.0.0.1:{free_port}", 1)), j)
    assert r.returncode == 5
    assert "unreachable" in summary(j)["reason"]


@pytest.mark.parametrize("when", ["baseline", "fault"])
def test_probe_exception_still_removes_faults(tmp_path: Path, tiny_service, when: str) -> None:
    """A probe plugin that raises (a bug, not a measurement) ends the run as errored, faults removed."""
    import asyncio

    from mlchaos import registry
    from mlchaos.engine.runner import run_experiment
    from mlchaos.plugin import Measurement, Probe, ProbeSpec
    from mlchaos.spec.loader import load_dict

    class Boom(Probe):
        class Spec(ProbeSpec):
            pass

        async def measure(self) -> Measurement:
            fault_active = any(e["event"] == "fault-inject" for e in self.ctx._runner.journal.events)
            if when == "baseline" or fault_active:
                raise RuntimeError("probe bug")
            await asyncio.sleep(0)
            return Measurement(1)

    registry.register("probe", "boom", Boom)
    try:
        proc, url = tiny_service
        exp = experiment(url, proc.pid)
        exp["steady_state"].append({"name": "boom", "probe": "boom", "max": 5})
        exp["method"][0]["duration"] = "5s"
        res = run_experiment(load_dict(exp), journal_path=tmp_path / "j.jsonl")
    finally:
        registry.unregister("probe", "boom")
    assert res.status.value == "errored" and "probe bug" in res.reason
    assert not is_stopped(proc.pid)
    assert not list((Path(__import__("os").environ["MLCHAOS_STATE_DIR"]) / "leases").glob("*.json"))


def test_settle_waits_for_a_disturbed_baseline_and_journals_every_failed_check(tmp_path: Path, tiny_service) -> None:
    """The dependency the hypothesis watches comes up 2 s late: the run settles, then proceeds."""
    import socket
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Ok(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a: object) -> None:
            return

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        late_port = s.getsockname()[1]
    servers: list[ThreadingHTTPServer] = []

    j = tmp_path / "j.jsonl"

    def come_up() -> None:
        # up only once the runner has seen it down (a fixed delay raced a slow start on a busy host)
        wait_until(lambda: j.exists() and any(e["event"] == "baseline-unsettled" for e in events(j)), 60)
        srv = ThreadingHTTPServer(("127.0.0.1", late_port), Ok)
        servers.append(srv)
        srv.serve_forever(poll_interval=0.05)

    _, url = tiny_service
    bystander = psutil.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    later = threading.Thread(target=come_up, daemon=True)
    later.start()
    try:
        exp = experiment(url, bystander.pid, phases={"baseline": "300ms", "settle": "15s", "recovery": "500ms"})
        exp["steady_state"][0]["url"] = f"http://127.0.0.1:{late_port}/health"
        r = run_cli(write(tmp_path, exp), j)
        assert r.returncode == 0, r.stdout + r.stderr
        ev = events(j)
        unsettled = [e for e in ev if e["event"] == "baseline-unsettled"]
        settled = [e for e in ev if e["event"] == "baseline-settled"]
        assert unsettled and "health" in unsettled[0]["reason"]
        assert len(settled) == 1 and settled[0]["attempts"] == len(unsettled) + 1
        assert summary(j)["settle"] == {"failed_checks": len(unsettled), "settled": True,
                                        "waited_s": settled[0]["waited"]}
        names = [e["event"] for e in ev]
        assert names.index("baseline-settled") < names.index("fault-inject")
        rep = subprocess.run([sys.executable, "-m", "mlchaos", "report", str(j), "--out", str(tmp_path / "rep")],
                             capture_output=True, text=True, timeout=60)
        assert rep.returncode == 0, rep.stderr
        assert "baseline settled after" in (tmp_path / "rep" / "index.html").read_text()
    finally:
        for srv in servers:
            srv.shutdown()
            srv.server_close()
        later.join(5)
        bystander.kill()
        bystander.wait()


def test_settle_gives_up_with_not_run_and_says_how_long_it_waited(tmp_path: Path, tiny_service) -> None:
    proc, url = tiny_service
    exp = experiment(url, proc.pid, phases={"baseline": "300ms", "settle": "2s", "recovery": "500ms"})
    exp["steady_state"][0]["equals"] = 418
    j = tmp_path / "j.jsonl"
    r = run_cli(write(tmp_path, exp), j)
    assert r.returncode == 4, r.stdout + r.stderr
    s = summary(j)
    assert s["status"] == "not-run" and "still after 2s of settling" in s["reason"]
    assert len([e for e in events(j) if e["event"] == "baseline-unsettled"]) >= 3
    assert not any(e["event"] == "fault-inject" for e in events(j))
