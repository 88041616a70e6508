"""One delivery step as its own process: ``python -m mlchaos.lab.delivery.step STEP --run-dir DIR``.

Steps talk only through files in the run directory (``config.json`` written
by the pipeline; ``model.pkl`` + ``train.json``; ``validation.json``;
``gate.json``; ``registered.json``; ``deploy.json``) and report success by
exit code, as a Kubeflow component or CI job does.  A step knows nothing of
variants except where the variant *is* the step's behaviour (deploy:
verify-and-canary or not); the fail-open/fail-closed decision between steps
is the pipeline's (:mod:`mlchaos.lab.delivery.pipeline`).

Armed delivery faults (:mod:`mlchaos.lab.delivery.faultpoints`) are acted
out for real here: the validation step crashes, hangs or reports NaN, the
training frame passes through a data failpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from mlchaos.atomic import replacing, write_json_atomic
from mlchaos.lab.delivery import faultpoints
from mlchaos.lab.delivery.layout import MODEL_NAME, DeliveryPaths

STEPS = ("train", "validate", "register", "deploy")


def _log(event: str, **fields: Any) -> None:
    """One JSON line on stdout (the step's log file)."""
    print(json.dumps({"ts": time.time(), "event": event, **fields}, default=str), flush=True)


def _write(path: Path, obj: Any) -> None:
    write_json_atomic(path, obj, indent=2, default=_json_default)


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    return str(o)


def _read(path: Path) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(path.read_text())
    return out


# -- train --------------------------------------------------------------------------------------
def train(run: Path, cfg: dict[str, Any]) -> int:
    from mlchaos.failpoints import failpoint
    from mlchaos.lab.delivery import training
    from mlchaos.lab.models import _train_fraud

    frame = training.training_frame()
    frame = failpoint(faultpoints.TRAIN_DATA, frame)  # poisoning (label noise, corrupted column) lands here
    est = _train_fraud(frame)
    with open(run / "model.pkl", "wb") as fh:
        pickle.dump(est, fh)
    info = {"rows": len(frame), "label_rate": float(frame["is_fraud"].astype(float).mean()),
            "window_days": list(training.TRAIN_DAYS)}
    _write(run / "train.json", info)
    _log("trained", **info)
    return 0


# -- validate -----------------------------------------------------------------------------------
def validate(run: Path, cfg: dict[str, Any]) -> int:
    from mlchaos.lab.delivery import training
    from mlchaos.lab.models import FraudModel, load_fraud_model

    fault = faultpoints.armed(faultpoints.VALIDATE)
    if fault is not None:
        faultpoints.record_effect(faultpoints.VALIDATE, fault, run=run.name)
        mode = fault.get("mode")
        _log("fault", mode=mode)
        if mode == "crash":
            raise RuntimeError("validation worker crashed: " + str(fault.get("message", "injected crash")))
        if mode == "hang":
            time.sleep(float(fault.get("hang_s", 3600)))
    with open(run / "model.pkl", "rb") as fh:
        est = pickle.load(fh)  # written by this run's train step
    candidate = FraudModel("candidate", "", est, {"threshold": 0.5})
    holdout = training.holdout_frame()
    metrics = training.evaluate(candidate, holdout)
    if fault is not None and fault.get("mode") == "nan":
        metrics = {k: float("nan") for k in metrics}
    elif fault is not None and fault.get("mode") == "missing":
        metrics = {}
    champion: dict[str, Any] = {"version": cfg.get("champion")}
    if cfg.get("champion"):
        try:
            cm = load_fraud_model(Path(cfg["lab_dir"]) / "models", str(cfg["champion"]))
            champion["metrics"] = training.evaluate(cm, holdout)
        except (OSError, ValueError, pickle.UnpicklingError) as exc:
            champion["error"] = f"{type(exc).__name__}: {exc}"
    out = {"metrics": metrics, "champion": champion, "holdout_rows": len(holdout)}
    _write(run / "validation.json", out)
    _log("validated", metrics=metrics, champion=champion)
    return 0


# -- register -----------------------------------------------------------------------------------
def _registry(cfg: dict[str, Any]) -> Any:
    from mlchaos.lab.delivery.registry import open_registry

    deadline = cfg.get("registry_deadline") if cfg["variant"] == "mitigated" else None
    return open_registry(cfg.get("registry", "file"), cfg["lab_dir"], deadline=deadline,
                         uri=cfg.get("registry_uri"), tracking_uri=cfg.get("tracking_uri"))


def register(run: Path, cfg: dict[str, Any]) -> int:
    gate = _read(run / "gate.json") if (run / "gate.json").exists() else {}
    validation = _read(run / "validation.json") if (run / "validation.json").exists() else {}
    meta = {
        "run_id": run.name,
        "threshold": 0.5,
        "features": cfg.get("features"),
        "training": _read(run / "train.json"),
        "validation": gate or None,
        "champion": validation.get("champion"),
    }
    metrics = {k: v for k, v in (validation.get("metrics") or {}).items() if isinstance(v, int | float)}
    mv = _registry(cfg).register(MODEL_NAME, run / "model.pkl", metadata=meta, metrics=metrics)
    _write(run / "registered.json", {"version": mv.version, "sha256": mv.artifact_sha256})
    _log("registered", version=mv.version, sha256=mv.artifact_sha256)
    return 0


# -- deploy -------------------------------------------------------------------------------------
def _install(paths: DeliveryPaths, version: str, artifact: Path, meta: dict[str, Any]) -> None:
    """Put the artifact where replicas load models from (``<version>.pkl`` + ``.json``)."""
    d = paths.serving_models
    with replacing(d / f"{version}.pkl") as tmp:
        shutil.copyfile(artifact, tmp)
        _write(d / f"{version}.json", {"name": MODEL_NAME, "version": version, "alias": "", **meta})


def _wait_serving(url: str, version: str, timeout: float) -> bool:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ready = httpx.get(url + "/ready", timeout=1.0).status_code == 200
            info = httpx.get(url + "/info", timeout=1.0).json()
            if ready and (info.get("model") or {}).get("version") == version:
                return True
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.1)
    return False


def deploy(run: Path, cfg: dict[str, Any]) -> int:
    from mlchaos.lab import Lab
    from mlchaos.lab.delivery.registry import RegistryError

    paths = DeliveryPaths(cfg["lab_dir"])
    lab = Lab(cfg["lab_dir"])
    mitigated = cfg["variant"] == "mitigated"
    reg = _registry(cfg)
    registered = _read(run / "registered.json") if (run / "registered.json").exists() else None
    fetched = run / "fetched.pkl"
    meta: dict[str, Any] = {"run_id": run.name, "threshold": 0.5}
    try:
        if registered is None:
            raise RegistryError("nothing registered by this run")
        version = str(registered["version"])
        reg.fetch(MODEL_NAME, version, fetched, verify=mitigated)
        mv = reg.get(MODEL_NAME, version)
        meta.update(artifact_sha256=mv.artifact_sha256, registry=cfg.get("registry", "file"))
    except RegistryError as exc:
        if mitigated:
            _log("deploy_refused", reason=str(exc))
            _write(run / "deploy.json", {"status": "refused", "reason": str(exc)})
            return 1
        # naive: "the registry is flaky, ship the build we have" — an unregistered, unverified artifact
        version = f"{MODEL_NAME}-{run.name}"
        shutil.copyfile(run / "model.pkl", fetched)
        meta["note"] = f"deployed from the local build: {exc}"
        _log("registry_fallback", reason=str(exc), version=version)
    _install(paths, version, fetched, meta)
    eps = lab.endpoints()
    replicas = sorted(s.name for s in lab.status() if s.system == "serving" and s.role == "replica")
    before = {s.name: s.model_version for s in lab.status() if s.name in replicas}
    result: dict[str, Any] = {"version": version, "previous": before, "replicas": []}
    timeout = float(cfg.get("replica_timeout_s", 20))
    if mitigated:
        canary_cfg = cfg.get("canary", {})
        canary = str(canary_cfg.get("replica", replicas[0]))
        baseline = next(r for r in replicas if r != canary)
        verdict = run_canary(lab, eps, canary, baseline, version, str(before.get(canary) or "current"),
                             canary_cfg, timeout)
        result["canary"] = verdict
        if verdict["status"] != "promoted":
            result["status"] = "rolled_back"
            _write(run / "deploy.json", result)
            _log("rolled_back", **verdict)
            return 1
        result["replicas"].append(canary)
        rest = [r for r in replicas if r != canary]
    else:
        rest = replicas
    for r in rest:  # replica by replica, each back in service before the next
        lab.set_model_version(version, [r])
        ok = _wait_serving(eps[r], version, timeout)
        result["replicas"].append(r)
        _log("replica_switched", replica=r, version=version, ready=ok)
        if not ok and mitigated:
            lab.set_model_version(str(before.get(r) or "current"), [r])
            result["status"] = "failed"
            _write(run / "deploy.json", result)
            return 1
    if mitigated:
        try:
            reg.set_alias(MODEL_NAME, "production", version)
        except RegistryError as exc:
            _log("alias_failed", reason=str(exc))
    result["status"] = "deployed"
    _write(run / "deploy.json", result)
    _log("deployed", version=version, replicas=result["replicas"])
    return 0


def run_canary(lab: Any, eps: dict[str, str], canary: str, baseline: str, version: str, previous: str,
               cfg: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Serve ``version`` on ``canary``; compare it with ``baseline`` on shadow rows for the window; roll back
    the moment it leaves its band (or never becomes ready)."""
    import httpx

    from mlchaos.lab.delivery import canary as ca
    from mlchaos.lab.delivery.training import shadow_records

    band = ca.Band(**{k: float(v) for k, v in cfg.get("band", {}).items()})
    window, interval = float(cfg.get("window_s", 4.0)), float(cfg.get("interval_s", 0.5))
    rows, _ = shadow_records(int(cfg.get("rows", 300)))
    t0 = time.monotonic()
    lab.set_model_version(version, [canary])
    out: dict[str, Any] = {"canary": canary, "baseline": baseline, "version": version, "previous": previous,
                           "window_s": window, "checks": 0}
    reason: str | None = None
    if not _wait_serving(eps[canary], version, timeout):
        reason = "canary never served the new version"
    errors = requests = 0
    with httpx.Client(timeout=2.0) as client:
        while reason is None and time.monotonic() - t0 < window:
            cs, _ = ca.predict(client, eps[canary], rows)
            bs, _ = ca.predict(client, eps[baseline], rows)
            requests += 1
            if cs is None:
                errors += 1
                diff: dict[str, float] = {}
            elif bs is not None:
                diff = ca.compare(cs, bs)
                out["last"] = diff
            else:
                diff = {}
            out["checks"] += 1
            reason = ca.outside(diff, errors, requests, band)
            if reason is None:
                time.sleep(interval)
    if reason is not None:
        lab.set_model_version(previous, [canary])
        _wait_serving(eps[canary], _resolve(lab, previous), timeout)
        out.update(status="rolled_back", reason=reason, rollback_after_s=round(time.monotonic() - t0, 3))
        return out
    out.update(status="promoted", after_s=round(time.monotonic() - t0, 3))
    return out


def _resolve(lab: Any, version: str) -> str:
    from mlchaos.lab.models import resolve_fraud_version

    return resolve_fraud_version(lab.paths.models, version)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("step", choices=STEPS)
    p.add_argument("--run-dir", type=Path, required=True)
    a = p.parse_args(argv)
    cfg = _read(a.run_dir / "config.json")
    _log("start", step=a.step, pid=os.getpid(), variant=cfg.get("variant"))
    rc = {"train": train, "validate": validate, "register": register, "deploy": deploy}[a.step](a.run_dir, cfg)
    _log("end", step=a.step, exit_code=rc)
    return rc


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["STEPS", "main"]
