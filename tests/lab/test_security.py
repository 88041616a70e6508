"""The lab against a local attacker: no file chosen by a request is unpickled, admin calls need the lab's
token, and a killed supervisor takes its services with it (or the next ``lab`` command reaps them)."""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import signal
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from mlchaos.cli.lab import app as lab_cli
from mlchaos.lab import Lab, LabInputError
from mlchaos.lab.auth import BadName, bearer, read_token
from mlchaos.lab.models import load_fraud_model
from mlchaos.lab.paths import port_is_free
from mlchaos.lab.services import fraud_service, model_server


class _Payload:
    """Unpickling this creates the directory ``marker``: the proof that a file was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def _plant(tmp: Path) -> tuple[Path, Path]:
    """A model version outside the lab (``evil.pkl`` + ``evil.json``); returns (its dir, the marker)."""
    evil, marker = tmp / "evil", tmp / "unpickled-marker"
    evil.mkdir()
    (evil / "x.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    (evil / "x.json").write_text('{"alias": "x"}')
    return evil, marker


def _traversal(models: Path, evil: Path) -> str:
    """``../../..`` from ``models/fraud`` to ``evil/x``, as the attack sends it."""
    return os.path.relpath(evil / "x", models / "fraud")


BAD_VERSIONS = ["../x", "..", "a/b", "/etc/passwd", "x\x00", "", ".hidden", "a" * 65, "fraud-v2/../../x"]


def test_load_fraud_model_takes_names_not_paths(built_lab_dir: Path, tmp_path: Path) -> None:
    models = built_lab_dir / "models"
    evil, marker = _plant(tmp_path)
    for version in [_traversal(models, evil), str(evil / "x"), *BAD_VERSIONS]:
        with pytest.raises(BadName, match="version"):
            load_fraud_model(models, version)
    # a symlink inside models/fraud that points outside is refused too (resolved, then checked)
    link = tmp_path / "models"
    shutil.copytree(models, link)
    (link / "fraud" / "sneaky.pkl").symlink_to(evil / "x.pkl")
    (link / "fraud" / "sneaky.json").symlink_to(evil / "x.json")
    with pytest.raises(BadName, match="outside"):
        load_fraud_model(link, "sneaky")
    assert not marker.exists()
    assert load_fraud_model(models, "stale").version == "fraud-v1"


def test_admin_model_refuses_a_path_and_unpickles_nothing(built_lab_dir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process apps (the same code the replicas run): the traversal request is refused with 422."""
    models = built_lab_dir / "models"
    evil, marker = _plant(tmp_path)
    attack = {"version": _traversal(models, evil)}
    token_file = tmp_path / "admin.token"
    token_file.write_text("s3cret\n")
    monkeypatch.setenv("MLCHAOS_LAB_TOKEN_FILE", str(token_file))
    from mlchaos.lab.auth import guard_from_env

    ok = bearer("s3cret")
    replica = model_server.create_app("serving-0", models, "current", 0.0)
    settings = fraud_service.Settings("naive", "http://127.0.0.1:9", 0.1, 0.05, 0.03)
    fraud = fraud_service.create_app("fraud", models, "current", settings)
    for app in (replica, fraud):
        with TestClient(guard_from_env(app)) as c:
            assert c.post("/admin/model", json=attack).status_code == 401  # no token: not even looked at
            r = c.post("/admin/model", json=attack, headers=ok)
            assert r.status_code == 422 and "version" in r.json()["error"], r.text
            for bad in [*BAD_VERSIONS, str(evil / "x"), 42, None]:
                assert c.post("/admin/model", json={"version": bad}, headers=ok).status_code == 422
            assert c.post("/admin/model", json={"version": "stale"}, headers=ok).json()["model_version"] == "fraud-v1"
        if app is fraud:  # the other admin calls: bad input is a 422 that names the field, not a 500
            for path, body in (("/admin/variant", {"variant": "x"}), ("/admin/dependency", {"url": "file:///etc"}),
                               ("/admin/dependency", {})):
                r = TestClient(guard_from_env(app)).post(path, json=body, headers=ok)
                field = next(iter(body), "url")
                assert r.status_code == 422 and r.json()["error"].startswith(field), (path, r.text)
    assert not marker.exists(), "a file named by a request was unpickled"


def test_flags_never_name_files_outside_the_lab(built_lab_dir: Path, tmp_path: Path) -> None:
    """``lab logs SERVICE``, ``lab batch --date``, the delivery ``--run-id``: names, refused as paths (exit 2)."""
    from mlchaos.lab import batch
    from mlchaos.lab.delivery.layout import DeliveryPaths
    from mlchaos.lab.paths import LabPaths

    secret = tmp_path / "secret.log"
    secret.write_text("do not print me")
    d = tmp_path / "lab"
    shutil.copytree(built_lab_dir, d)
    rel = os.path.relpath(tmp_path / "secret", d / "logs")
    r = CliRunner().invoke(lab_cli, ["logs", rel, "--lab-dir", str(d)])
    assert r.exit_code == 2 and "do not print me" not in r.output and "service" in r.output, r.output
    r = CliRunner().invoke(lab_cli, ["batch", "--date", "../../x", "--lab-dir", str(d)])
    assert r.exit_code == 2 and "date" in r.output, r.output
    with pytest.raises(LabInputError, match="date"):
        Lab(d).run_batch(date="2024-13-99")  # well-formed, but no such day: refused by the job itself
    with pytest.raises(ValueError, match="date"):
        batch.run(LabPaths(d), date="../offline/date=2024-01-01")
    with pytest.raises(BadName, match="run id"):
        DeliveryPaths(d).run_dir("../../x")
    from pydantic import ValidationError

    from mlchaos.faults.lab import StaleModelSpec

    with pytest.raises(ValidationError, match="version"):  # the stale-model fault: refused when the file loads
        StaleModelSpec(fault="stale-model", version="../../evil/x")


def _admin_calls(lab: Lab) -> list[tuple[str, str, Any]]:
    ep = lab.endpoints()
    rep = {s.name: str(s.url) for s in lab.status()}
    backends = [{"name": f"serving-{i}", "url": rep[f"serving-{i}"]} for i in range(3)]
    return [
        ("POST", rep["serving-0"] + "/admin/model", {"version": "stale"}),
        ("PUT", ep["serving"] + "/lb/backends", backends),
        ("POST", ep["serving"] + "/lb/mode", {"mode": "mitigated"}),
        ("POST", ep["supervisor"] + "/model", {"version": "current", "services": ["serving-0"]}),
        ("POST", ep["supervisor"] + "/variant", {"variant": "mitigated", "systems": ["serving"]}),
    ]


@pytest.mark.slow
def test_admin_endpoints_need_the_lab_token(make_lab: Callable[..., Lab], tmp_path: Path) -> None:
    lab = make_lab(load_delay=0.2)
    lab.up(["serving"], variant="naive")
    token_file = lab.paths.token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = read_token(token_file)
    assert token not in " ".join(" ".join(psutil.Process(pid).cmdline()) for pid in lab.pids().values())
    ep = lab.endpoints()
    sup_url = ep["supervisor"]
    with httpx.Client(timeout=10) as c:
        for method, url, body in _admin_calls(lab):
            for headers in ({}, bearer("wrong"), {"Authorization": token}):
                r = c.request(method, url, json=body, headers=headers)
                assert r.status_code == 401, (method, url, headers, r.status_code, r.text)
            r = c.request(method, url, json=body, headers=bearer(token))
            assert r.status_code == 200, (method, url, r.status_code, r.text)
        for body in ([{"name": "x", "url": "file:///etc/passwd"}], {"a": 1}, [1]):
            r = c.put(ep["serving"] + "/lb/backends", json=body, headers=bearer(token))
            assert r.status_code == 422 and "backends" in r.json()["error"], r.text
        r = c.post(ep["serving"] + "/lb/mode", json={"mode": "x"}, headers=bearer(token))
        assert r.status_code == 422 and "mode" in r.json()["error"]
        assert len(c.get(ep["serving"] + "/lb/status").json()["backends"]) == 3
        # the data path, health, readiness, metrics and state stay open
        for url in ("/health", "/ready", "/metrics", "/lb/status"):
            assert c.get(ep["serving"] + url).status_code == 200, url
        assert c.get(sup_url + "/state").status_code == 200
        assert c.post(ep["serving"] + "/predict", json={"amount": 3.0}).status_code == 200
        # the traversal through the supervisor and through the Lab API: refused before any replica sees it
        evil, marker = _plant(tmp_path)
        attack = _traversal(lab.paths.models, evil)
        r = c.post(sup_url + "/model", json={"version": attack}, headers=bearer(token))
        assert r.status_code == 422, r.text
        with pytest.raises(LabInputError, match="version"):
            lab.set_model_version(attack, ["serving-1"])
        assert not marker.exists()
        assert c.post(sup_url + "/down").status_code == 401
    assert lab.is_up()
    # the CLI reads the token too (exit 2 on a bad name)
    res = CliRunner().invoke(lab_cli, ["model", "stale", "serving-2", "--lab-dir", str(lab.paths.root)])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(lab_cli, ["model", "../../x", "--lab-dir", str(lab.paths.root)])
    assert res.exit_code == 2 and "version" in res.output
    assert {s.name: s.model_alias for s in lab.status()}["serving-2"] == "stale"


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # exited, listens on nothing
    except psutil.NoSuchProcess:
        return True


@pytest.mark.slow
def test_kill_9_of_the_supervisor_leaves_no_lab_process(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(load_delay=0.2)
    lab.up(["serving", "realtime", "recommender"], variant="naive")
    sup = lab.pids()["supervisor"]
    procs = {c.pid: c for c in psutil.Process(sup).children(recursive=True)}
    ports = [s.port for s in lab.status() if s.port]
    ports += [int(str(s.control_url).rsplit(":", 1)[1]) for s in lab.status() if s.control_url]
    assert len(procs) >= 12 and len(ports) >= 12  # 11 services, the fork server, the resource tracker
    # one replica cannot exit (stopped): the next `lab` command must reap it, and say so
    stopped = {s.name: s.pid for s in lab.status()}["serving-0"]
    assert stopped
    # multiprocessing's resource tracker exits when the last process holding its pipe does: the stopped one
    waits = {stopped} | {pid for pid, p in procs.items() if "resource_tracker" in " ".join(p.cmdline())}
    os.kill(stopped, signal.SIGSTOP)
    try:
        os.kill(sup, signal.SIGKILL)  # not reaped yet: the supervisor stays a zombie, and must still count as dead
        killed = time.monotonic()
        left = list(procs)
        while time.monotonic() - killed < 10:
            left = [pid for pid in procs if pid not in waits and not _gone(pid)]
            busy = [p for p in ports if not port_is_free(p)]
            if not left and len(busy) <= 1:
                break
            time.sleep(0.05)
        took = time.monotonic() - killed
        assert not left, f"still running {took:.1f}s after the supervisor died: {left}"
        assert busy == [p for p in ports if not port_is_free(p)] and len(busy) == 1  # the stopped replica's
        assert took < 3.0, f"lab processes took {took:.2f}s to follow their supervisor"
        print(f"all lab processes gone {took:.2f}s after kill -9 of the supervisor")
        os.waitpid(sup, 0)
        assert not _gone(stopped)
        r = CliRunner().invoke(lab_cli, ["status", "--lab-dir", str(lab.paths.root)])
        assert r.exit_code == 1 and "no lab running" in r.output, r.output
        assert "reaped" in r.output and f"serving-0 (pid {stopped})" in r.output, r.output
        assert all(_gone(pid) for pid in procs) and all(port_is_free(p) for p in ports)
        r = CliRunner().invoke(lab_cli, ["status", "--lab-dir", str(lab.paths.root)])
        assert "reaped" not in r.output
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(stopped).kill()


@pytest.mark.slow
def test_a_proxy_token_in_the_users_shell_does_not_lock_the_labs_own_proxies(
    make_lab: Callable[..., Lab], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lab's fault proxies must not inherit MLCHAOS_PROXY_TOKEN: the supervisor checks them without one."""
    monkeypatch.setenv("MLCHAOS_PROXY_TOKEN", "a-token-for-some-other-proxy")
    lab = make_lab(load_delay=0.3)
    status = lab.up(["realtime"], variant="naive", timeout=90)
    proxies = [s for s in status if "proxy" in s.name]
    assert proxies and all(s.ready for s in status), [(s.name, s.ready) for s in status]
