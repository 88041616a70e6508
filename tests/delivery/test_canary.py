"""Canary deploy: a stale or poisoned model that slipped past validation is rolled back automatically,
within the configured window, and never reaches the other replicas."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import pytest

from mlchaos.lab import Lab
from mlchaos.lab.delivery.layout import DeliveryPaths
from mlchaos.lab.delivery.pipeline import PipelineConfig, bootstrap
from mlchaos.lab.delivery.registry import FileRegistry
from mlchaos.probes.delivery import served_versions

WINDOW = 3.0


def _poisoned(lab_dir: Path, out: Path) -> Path:
    from mlchaos.data import corrupt
    from mlchaos.lab.delivery.training import training_frame
    from mlchaos.lab.models import _train_fraud

    bad, _ = corrupt(training_frame(), "label_noise", ["is_fraud"], 0.4, 1)
    out.write_bytes(pickle.dumps(_train_fraud(bad)))
    return out


@pytest.mark.parametrize("bad", ["stale", "poisoned"])
def test_canary_rolls_back_within_window(bad: str, lab_dir: Path, serving: Callable[[str], Lab],
                                         tmp_path: Path) -> None:
    serving("mitigated")
    bootstrap(lab_dir)
    artifact = (lab_dir / "models" / "fraud" / "fraud-v1.pkl" if bad == "stale"
                else _poisoned(lab_dir, tmp_path / "poisoned.pkl"))
    # a version whose validation record says "passed" (a gate bug, a forged record): only the canary stands
    reg = FileRegistry(DeliveryPaths(lab_dir).registry)
    forged = {"gate": "strict", "passed": True, "status": "passed", "metrics": {"auc": 0.95, "recall": 0.5}}
    mv = reg.register("fraud", artifact, metadata={"validation": forged}, metrics=forged["metrics"])
    run = DeliveryPaths(lab_dir).run_dir(f"canary-{bad}")
    run.mkdir(parents=True)
    cfg = PipelineConfig(lab_dir=str(lab_dir), variant="mitigated",
                         canary={"replica": "serving-0", "window_s": WINDOW, "interval_s": 0.25, "rows": 300})
    (run / "config.json").write_text(json.dumps(asdict(cfg)))
    (run / "registered.json").write_text(json.dumps({"version": mv.version, "sha256": mv.artifact_sha256}))
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "mlchaos.lab.delivery.step", "deploy", "--run-dir", str(run)],
                       capture_output=True, timeout=120, check=False)
    assert r.returncode == 1, r.stdout.decode()[-3000:] + r.stderr.decode()[-3000:]
    deploy = json.loads((run / "deploy.json").read_text())
    canary = deploy["canary"]
    assert deploy["status"] == "rolled_back" and canary["status"] == "rolled_back", deploy
    assert canary["rollback_after_s"] <= WINDOW + 2.0, deploy  # detected inside the window (+ model swap)
    assert "flag rate" in canary["reason"] or "mean score" in canary["reason"], canary
    assert time.monotonic() - t0 < 60
    served = served_versions(str(lab_dir))
    assert {r["version"] for r in served.values()} == {"fraud-v2"}, served  # rolled back, others untouched
    assert all(r["validated"] for r in served.values()), served
    assert reg.by_alias("fraud", "production").version == "fraud-v2"  # type: ignore[union-attr]
