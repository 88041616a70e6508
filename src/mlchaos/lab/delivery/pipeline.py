"""The delivery pipeline: run train → validate → gate → register → deploy, one process per step.

Each step gets a timeout, a log file (``<run>/<step>.log``) and an entry in
``<run>/manifest.json`` (status ``succeeded`` | ``failed`` | ``timeout`` |
``skipped``, exit code, times), rewritten after every step so a reader sees
progress and a run that dies leaves a truthful manifest.  A step that
outlives its timeout is killed.

Run once: ``python -m mlchaos.lab.delivery.pipeline --lab-dir LAB --variant naive``
(last stdout line: the manifest as JSON), or :func:`run_pipeline`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlchaos.atomic import write_json_atomic
from mlchaos.lab.delivery import gates
from mlchaos.lab.delivery.layout import MODEL_NAME, DeliveryPaths

VARIANTS = ("naive", "mitigated")


@dataclass
class PipelineConfig:
    """Everything a run needs; written to ``<run>/config.json`` for the step processes."""

    lab_dir: str
    variant: str = "naive"
    registry: str = "file"
    registry_uri: str | None = None
    """MLflow registry URI (a user's server ``http://host:5000``); default the lab's local SQLite store."""
    tracking_uri: str | None = None
    """MLflow tracking URI (runs and artifacts) when distinct from ``registry_uri``."""
    registry_deadline: float = 2.0
    timeouts: dict[str, float] = field(
        default_factory=lambda: {"train": 120.0, "validate": 30.0, "register": 30.0, "deploy": 120.0})
    thresholds: gates.Thresholds = field(default_factory=gates.Thresholds)
    canary: dict[str, Any] = field(default_factory=lambda: {"replica": "serving-0", "window_s": 4.0,
                                                            "interval_s": 0.5, "rows": 300, "band": {}})
    replica_timeout_s: float = 20.0
    champion: str | None = None


def _now() -> float:
    return round(time.time(), 3)


class Run:
    """One pipeline run: its directory, manifest and step runner."""

    def __init__(self, cfg: PipelineConfig, run_id: str | None = None) -> None:
        self.cfg = cfg
        self.paths = DeliveryPaths(cfg.lab_dir)
        self.run_id = run_id or time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.dir = self.paths.run_dir(self.run_id)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.manifest: dict[str, Any] = {
            "run_id": self.run_id, "variant": cfg.variant, "status": "running", "started_at": _now(),
            "ended_at": None, "steps": [], "gate": None, "deployed_version": None, "decision": None,
            "dir": str(self.dir),
        }
        cfg_dict = asdict(cfg)
        (self.dir / "config.json").write_text(json.dumps(cfg_dict, indent=2))
        self.save()

    def save(self) -> None:
        write_json_atomic(self.dir / "manifest.json", self.manifest, indent=2, default=str)

    def step(self, name: str) -> str:
        """Run one step process; return its status (``succeeded``, ``failed``, ``timeout``)."""
        timeout = float(self.cfg.timeouts.get(name, 60.0))
        log = self.dir / f"{name}.log"
        entry: dict[str, Any] = {"name": name, "status": "running", "started_at": _now(), "timeout_s": timeout,
                                 "log": str(log), "exit_code": None}
        self.manifest["steps"].append(entry)
        self.save()
        t0 = time.monotonic()
        with open(log, "ab") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mlchaos.lab.delivery.step", name, "--run-dir", str(self.dir)],
                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "MLCHAOS_FAILPOINT_DIR": str(self.paths.failpoints)},
            )
            entry["pid"] = proc.pid
            self.save()
            try:
                rc = proc.wait(timeout=timeout)
                status = "succeeded" if rc == 0 else "failed"
            except subprocess.TimeoutExpired:
                proc.kill()  # a step starts no children; it stays in the pipeline's process group, so
                rc = proc.wait(timeout=10)  # killing the pipeline's group (delivery-run revert) stops it too
                status = "timeout"
        entry.update(status=status, exit_code=rc, ended_at=_now(), duration_s=round(time.monotonic() - t0, 3))
        self.save()
        return status

    def skip(self, *names: str) -> None:
        for n in names:
            self.manifest["steps"].append({"name": n, "status": "skipped"})
        self.save()

    def finish(self, status: str, decision: str) -> dict[str, Any]:
        self.manifest.update(status=status, decision=decision, ended_at=_now())
        dep = self.dir / "deploy.json"
        if dep.exists():
            d = json.loads(dep.read_text())
            self.manifest["deploy"] = d
            if d.get("status") == "deployed":
                self.manifest["deployed_version"] = d.get("version")
        self.save()
        return self.manifest


def run_pipeline(cfg: PipelineConfig, run_id: str | None = None) -> dict[str, Any]:
    """One run of the pipeline; returns the final manifest."""
    if cfg.variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {cfg.variant!r}")
    if cfg.champion is None:
        cfg.champion = current_champion(cfg.lab_dir)
    with contextlib.suppress(Exception):  # the registry may be down right now; bootstrap is best effort
        bootstrap(cfg.lab_dir, cfg.registry, cfg.registry_uri, cfg.tracking_uri)
    run = Run(cfg, run_id)
    naive = cfg.variant == "naive"
    if run.step("train") != "succeeded":
        run.skip("validate", "register", "deploy")
        return run.finish("failed", "training failed: nothing to release")
    vstatus = run.step("validate")
    vfile = run.dir / "validation.json"
    validation = json.loads(vfile.read_text()) if vstatus == "succeeded" and vfile.exists() else None
    gate = (gates.naive_gate if naive else gates.strict_gate)(vstatus, validation, cfg.thresholds)
    (run.dir / "gate.json").write_text(json.dumps(gate, indent=2, default=str))
    run.manifest["gate"] = gate
    run.save()
    if not gate["passed"]:
        run.skip("register", "deploy")
        return run.finish("blocked", f"validation gate: {gate['reason']}")
    rstatus = run.step("register")
    if rstatus != "succeeded" and not naive:
        run.skip("deploy")
        return run.finish("failed", f"register {rstatus}: fail closed, serving unchanged")
    dstatus = run.step("deploy")
    if dstatus != "succeeded":
        return run.finish("failed", f"deploy {dstatus}")
    return run.finish("succeeded", "deployed" + (" (fail-open)" if naive and gate["status"] != "passed" else ""))


def current_champion(lab_dir: str | Path) -> str:
    """The version the serving system runs now (serving-0's), else the lab's ``current`` model."""
    from mlchaos.lab import Lab
    from mlchaos.lab.models import resolve_fraud_version

    lab = Lab(lab_dir)
    for s in lab.status():
        if s.system == "serving" and s.role == "replica" and s.model_version:
            return s.model_version
    return resolve_fraud_version(lab.paths.models, "current")


def bootstrap(lab_dir: str | Path, registry: str = "file", uri: str | None = None,
              tracking_uri: str | None = None) -> str:
    """Register the lab's set-up model (``current``) as the validated ``production`` version, once.

    The lab trains its models at set-up; without this the registry would not
    know the version serving runs, and every probe would call it unvalidated.
    Its validation record is a real evaluation on the same holdout the gate uses.
    """
    from mlchaos.lab.delivery import training
    from mlchaos.lab.delivery.registry import RegistryError, open_registry
    from mlchaos.lab.models import load_fraud_model, resolve_fraud_version

    reg = open_registry(registry, lab_dir, uri=uri, tracking_uri=tracking_uri)
    prod = reg.by_alias(MODEL_NAME, "production")
    if prod is not None:
        return prod.version
    paths = DeliveryPaths(lab_dir)
    version = resolve_fraud_version(paths.lab.models, "current")
    model = load_fraud_model(paths.lab.models, version)
    m = training.evaluate(model, training.holdout_frame())
    record = {"gate": "set-up", "passed": True, "status": "passed", "metrics": m,
              "reason": "evaluated on the holdout at lab set-up"}
    try:
        mv = reg.register(MODEL_NAME, paths.serving_models / f"{version}.pkl", version=version,
                          metadata={"validation": record, "source": "lab set-up", "threshold": model.threshold},
                          metrics=m)
    except RegistryError:
        mv = reg.get(MODEL_NAME, version)
    reg.set_alias(MODEL_NAME, "production", mv.version)
    return mv.version


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--lab-dir", help="lab directory (required)")
    p.add_argument("--dir", dest="old_dir", help=argparse.SUPPRESS)  # the old spelling of --lab-dir
    p.add_argument("--variant", choices=VARIANTS, default="naive")
    p.add_argument("--registry", choices=("file", "mlflow"), default="file")
    p.add_argument("--registry-uri", help="MLflow registry URI (a server: http://host:5000)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI when distinct from --registry-uri")
    p.add_argument("--run-id")
    p.add_argument("--config", help="JSON object of PipelineConfig fields to override")
    a = p.parse_args(argv)
    if a.old_dir is not None:
        if a.lab_dir is not None:
            p.error("give --lab-dir only (--dir is its old spelling)")
        print("pipeline: --dir is deprecated, write --lab-dir", file=sys.stderr)
        a.lab_dir = a.old_dir
    if a.lab_dir is None:
        p.error("the following arguments are required: --lab-dir")
    extra = json.loads(a.config) if a.config else {}
    if "thresholds" in extra:
        extra["thresholds"] = gates.Thresholds(**extra["thresholds"])
    cfg = PipelineConfig(lab_dir=str(Path(a.lab_dir).resolve()), variant=a.variant, registry=a.registry,
                         registry_uri=a.registry_uri, tracking_uri=a.tracking_uri)
    for k, v in extra.items():  # dict fields are merged into their defaults, so one timeout can be changed alone
        current = getattr(cfg, k)
        setattr(cfg, k, {**current, **v} if isinstance(current, dict) and isinstance(v, dict) else v)
    manifest = run_pipeline(cfg, a.run_id)
    print(json.dumps(manifest, default=str))
    return 0 if manifest["status"] == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
