"""Delivery chaos against a real MLflow tracking/registry server (``mlflow server --serve-artifacts``) and a
user's own pipeline (train → validate → register scripts written here, scikit-learn on a bundled dataset).

One server for the module (it takes ~10 s to create its database and start); each test uses its own
model names, so they do not depend on each other's order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mlflow")
pytest.importorskip("sklearn")

from mlchaos import failpoint as fp
from mlchaos.engine.runner import run_experiment
from mlchaos.faults.delivery import DeliveryRun
from mlchaos.lab.delivery import faultpoints
from mlchaos.lab.delivery.registry import ChecksumMismatch, open_registry, sha256_file
from mlchaos.spec.loader import load_dict
from tests.conftest import reserve_port

from ..delivery.conftest import FakeCtx


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A real ``mlflow server`` on 127.0.0.1 (SQLite backend store, served artifacts); its process group is
    stopped at the end, also on failure."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = reserve_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    argv = [str(mlflow) if mlflow.exists() else "mlflow", "server", "--backend-store-uri",
            f"sqlite:///{root / 'backend.sqlite'}", "--artifacts-destination", str(root / "artifacts"),
            "--serve-artifacts", "-h", "127.0.0.1", "-p", str(port), "--workers", "1"]
    log = root / "server.log"
    with log.open("ab") as out:
        # no background job runners (huey consumers): the registry does not need them, and they outlive a stop
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        proc = subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True,
                                env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            with contextlib.suppress(OSError), urllib.request.urlopen(url + "/health", timeout=1) as r:
                if r.status == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("mlflow server did not start: " + log.read_text()[-2000:])
            time.sleep(0.2)
        yield {"url": url, "artifacts": root / "artifacts", "root": root}
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _model_file(path: Path, c: float = 1.0) -> Path:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    X, y = load_breast_cancer(return_X_y=True)
    path.write_bytes(pickle.dumps(LogisticRegression(C=c, max_iter=50).fit(X[:, :5], y)))
    return path


def _snapshot(url: str) -> dict[str, Any]:
    """Everything a write could have changed, read through the MLflow client."""
    from mlflow import MlflowClient

    c = MlflowClient(url, url)
    return {"models": sorted((m.name, sorted(m.aliases)) for m in c.search_registered_models()),
            "versions": sorted((v.name, v.version) for v in c.search_model_versions()),
            "experiments": sorted(e.name for e in c.search_experiments())}


def test_lab_registry_goes_through_the_server(server: dict[str, Any], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Every registry read/write and every artifact of the delivery registry goes through the server; the
    lab directory gets nothing; preflight creates nothing in the registry."""
    url, lab = server["url"], tmp_path / "lab"
    before = _snapshot(url)
    run = DeliveryRun(DeliveryRun.Spec(registry_uri=url, pipeline={
        "cwd": str(tmp_path), "steps": [{"name": "release", "argv": [sys.executable, "-V"]}]}), FakeCtx())
    planned = asyncio.run(run.preflight())
    assert planned["reachable"] and planned["registry_uri"] == url
    assert _snapshot(url) == before  # preflight is read-only

    reg = open_registry("mlflow", lab, uri=url)
    good = _model_file(tmp_path / "good.pkl")
    mv = reg.register("cancer-lab", good, metadata={"validation": {"passed": True}}, metrics={"auc": 0.97})
    reg.set_alias("cancer-lab", "production", mv.version)
    assert reg.by_alias("cancer-lab", "production").version == mv.version  # type: ignore[union-attr]
    assert reg.get("cancer-lab", mv.version).validation == {"passed": True}  # metadata read back via the server
    stored = [p for p in server["artifacts"].rglob("artifact.pkl")]
    assert [sha256_file(p) for p in stored] == [sha256_file(good)]  # the server's artifact destination has it
    reg.fetch("cancer-lab", mv.version, tmp_path / "fetched.pkl")
    assert not lab.exists()  # nothing local: no mlflow-artifacts, no sqlite, no mlruns

    # artifact-corrupt reaches the server's store: the bytes there change, the recorded sha256 does not
    rec = fp.arm(faultpoints.ARTIFACT, "raise", ttl=30, mode="truncate")
    try:
        bad = reg.register("cancer-lab", good)
    finally:
        fp.disarm(faultpoints.ARTIFACT, lease_id=rec["lease_id"])
    assert bad.artifact_sha256 == sha256_file(good)
    with pytest.raises(ChecksumMismatch):
        reg.fetch("cancer-lab", bad.version, tmp_path / "bad.pkl")
    assert not lab.exists()

    # around a user's register step (what stepwrap runs once the step succeeded): the newest version's
    # stored file is damaged in the server's artifact store, found through the registry alone
    from mlchaos.lab.delivery.stepwrap import corrupt_newest

    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    before_sha = {p: sha256_file(p) for p in server["artifacts"].rglob("artifact.pkl")}
    corrupt_newest({"model": "cancer-lab", "mode": "bitflip", "file": "artifact.pkl", "registry_uri": url},
                   "delivery.artifact.register")
    changed = [p for p, h in before_sha.items() if sha256_file(p) != h]
    assert len(changed) == 1 and bad.version  # only the newest version's artifact


TRAIN = """\
import os, pickle
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
if os.path.exists("metrics.json"):
    os.remove("metrics.json")  # a clean workspace per release
X, y = load_breast_cancer(return_X_y=True)
pickle.dump(LogisticRegression(max_iter=50).fit(X[:400, :5], y[:400]), open("model.pkl", "wb"))
"""
VALIDATE = """\
import json, pickle, sys
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import roc_auc_score
X, y = load_breast_cancer(return_X_y=True)
auc = roc_auc_score(y[400:], pickle.load(open("model.pkl", "rb")).predict_proba(X[400:, :5])[:, 1])
json.dump({"auc": auc}, open("metrics.json", "w"))
sys.exit(0 if auc >= 0.9 else "gate: auc below 0.9")
"""
REGISTER = """\
import json, math, os, sys
from mlflow import MlflowClient
name = sys.argv[1]
client = MlflowClient()  # MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI: set by mlchaos from registry_uri
metrics = json.load(open("metrics.json")) if os.path.exists("metrics.json") else {}
exp = client.get_experiment_by_name("user-pipeline")
run = client.create_run(exp.experiment_id if exp else client.create_experiment("user-pipeline"))
for k, v in metrics.items():
    if math.isfinite(v):
        client.log_metric(run.info.run_id, k, v)
client.log_artifact(run.info.run_id, "model.pkl", "model")
client.set_terminated(run.info.run_id)
if not client.search_registered_models(f"name='{name}'"):
    client.create_registered_model(name)
mv = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
client.set_registered_model_alias(name, "champion", mv.version)
"""


def _seed(url: str, name: str, tmp_path: Path) -> str:
    """A validated version under the alias before the release (what serving runs today)."""
    from mlflow import MlflowClient

    c = MlflowClient(url, url)
    exp = c.get_experiment_by_name("seed") or c.get_experiment(c.create_experiment("seed"))
    run = c.create_run(exp.experiment_id)
    c.log_metric(run.info.run_id, "auc", 0.99)
    c.log_artifact(run.info.run_id, str(_model_file(tmp_path / "seed.pkl")), "model")
    c.create_registered_model(name)
    mv = c.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    c.set_registered_model_alias(name, "champion", mv.version)
    return str(mv.version)


@pytest.mark.slow
@pytest.mark.parametrize(("gated", "expected"), [(True, "passed"), (False, "failed")])
def test_validation_crash_in_a_user_pipeline(server: dict[str, Any], tmp_path: Path, gated: bool,
                                             expected: str) -> None:
    """A release of the user's pipeline while its validate step crashes: with a gate (a failed validate stops
    the pipeline) the bad release never reaches the alias; fail-open (continue_on_error) it does."""
    url, name = server["url"], f"cancer-{'gated' if gated else 'open'}"
    work = tmp_path / "repo"
    work.mkdir()
    for f, text in (("train.py", TRAIN), ("validate.py", VALIDATE), ("register.py", REGISTER)):
        (work / f).write_text(text)
    seeded = _seed(url, name, tmp_path)
    fpdir = str(tmp_path / "failpoints")
    py = sys.executable
    exp = {
        "title": "a crashed validation must not let an unvalidated model reach the alias",
        "target": {"platform": "http", "url": url, "health": "/health"},
        "steady_state": [{"name": "only validated models deployed", "probe": "deployed-model", "model": name,
                          "alias": "champion", "registry_uri": url, "require": {"auc": 0.9}, "max": 0}],
        "method": [
            {"name": "validate crashes", "fault": "validation-crash", "step": "validate", "directory": fpdir,
             "duration": "12s"},
            {"name": "release", "fault": "delivery-run", "registry_uri": url, "directory": fpdir,
             "duration": "12s", "wait": "9s", "pipeline": {
                 "cwd": str(work), "runs_dir": str(tmp_path / "runs"),
                 "steps": [{"name": "train", "argv": [py, "train.py"], "timeout": "60s"},
                           {"name": "validate", "argv": [py, "validate.py"], "metrics": "metrics.json",
                            "continue_on_error": not gated, "timeout": "60s"},
                           {"name": "register", "argv": [py, "register.py", name], "timeout": "60s"}]}},
        ],
        "phases": {"baseline": "1s", "recovery": "1s"},
        "interval": "500ms",
        "max_duration": "150s",
    }
    res = run_experiment(load_dict(exp), journal_path=tmp_path / "journal.jsonl")
    assert res.status.value == expected, res.reason
    observed = {f["name"]: f for f in res.summary["faults"]}["release"]["observed"]
    manifest = json.loads((Path(observed["dir"]) / "manifest.json").read_text())  # the run's end (after `wait`)
    release = {s["name"]: s["status"] for s in manifest["steps"]}
    assert release["validate"] == "failed", manifest  # the crash really happened
    from mlflow import MlflowClient

    champion = str(MlflowClient(url, url).get_model_version_by_alias(name, "champion").version)
    if gated:
        assert release["register"] == "skipped" and champion == seeded, manifest
    else:
        assert release["register"] == "succeeded" and champion != seeded, manifest
        assert "only validated models deployed" in res.reason


@pytest.mark.parametrize("variant", ["naive", "mitigated"])
def test_a_whole_lab_release_through_the_server(variant: str, server: dict[str, Any], lab_dir: Path,
                                                serving: Any) -> None:
    """The lab's own pipeline (train → validate → gate → register → deploy to three serving replicas) with
    its registry on the server: a clean release goes out through it, then one whose artifact is swapped
    for a stale model on its way into the server's store.  Naive deploys what it fetched; mitigated verifies the checksum and keeps the
    validated champion.  Nothing of the registry is written into the lab directory."""
    from mlchaos.contract.lease import Lease
    from mlchaos.faults.delivery import ArtifactCorrupt
    from mlchaos.lab.delivery.layout import DeliveryPaths
    from mlchaos.lab.delivery.pipeline import PipelineConfig, bootstrap, run_pipeline
    from mlchaos.probes.delivery import served_versions

    url = server["url"]
    serving(variant)
    before = {p: sha256_file(p) for p in server["artifacts"].rglob("*.pkl")}
    assert bootstrap(lab_dir, "mlflow", url) == "fraud-v2"
    cfg = PipelineConfig(lab_dir=str(lab_dir), variant=variant, registry="mlflow", registry_uri=url,
                         timeouts={"train": 60, "validate": 20, "register": 30, "deploy": 60},
                         canary={"replica": "serving-0", "window_s": 1.5, "interval_s": 0.5, "rows": 300})
    clean = run_pipeline(cfg)
    assert clean["status"] == "succeeded", clean
    good = clean["deployed_version"]
    served = served_versions(str(lab_dir), uri=url)
    assert {r["version"] for r in served.values()} == {good} and all(r["validated"] for r in served.values()), served
    reg = open_registry("mlflow", lab_dir, uri=url)
    if variant == "mitigated":  # the naive deploy ships without moving the alias (the lab's naive pipeline)
        assert reg.by_alias("fraud", "production").version == good  # type: ignore[union-attr]
    added = [p for p in server["artifacts"].rglob("*.pkl") if p not in before]
    assert added, "the release's artifacts are not in the server's store"
    delivery = DeliveryPaths(lab_dir)
    assert not delivery.mlflow_db.exists() and not (delivery.root / "mlflow-artifacts").exists()

    fault = ArtifactCorrupt(ArtifactCorrupt.Spec(lab_dir=str(lab_dir)), FakeCtx())  # the stale model swapped in
    applied = asyncio.run(fault.inject(Lease.new("t", 60.0)))
    try:
        bad = run_pipeline(cfg)
    finally:
        asyncio.run(fault.remove())
        ArtifactCorrupt.revert(applied.undo)
    served = served_versions(str(lab_dir), uri=url)
    versions = {r["version"] for r in served.values()}
    why = json.dumps({"manifest": {k: bad.get(k) for k in ("status", "decision", "deployed_version")},
                      "served": served}, default=str)
    if variant == "mitigated":
        assert bad["status"] in ("failed", "blocked") and bad["deployed_version"] is None, why
        assert versions == {good} and all(r["validated"] for r in served.values()), why
        assert reg.by_alias("fraud", "production").version == good, why  # type: ignore[union-attr]
    else:  # the stale model went out under the new version's name, and it is not the validated one
        assert bad["status"] == "succeeded" and len(versions) == 1 and versions != {good}, why
        assert not any(r["validated"] for r in served.values()), why
