"""Each delivery fault against both variants, on a real serving system.

The fault is injected through its plugin (armed under a lease, then removed
and reverted), one pipeline run happens, and the verdict is read from what
the serving replicas themselves report (``/info`` → model version), never
from the pipeline's own manifest: naive ends up serving the bad or
unvalidated version, mitigated keeps the validated one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlchaos import failpoint as fp
from mlchaos.contract.lease import Lease
from mlchaos.faults import delivery as faults
from mlchaos.lab import Lab
from mlchaos.lab.delivery.layout import DeliveryPaths
from mlchaos.lab.delivery.pipeline import PipelineConfig, bootstrap, run_pipeline
from mlchaos.lab.delivery.registry import FileRegistry
from mlchaos.probes.delivery import served_versions

from .conftest import FakeCtx

CASES: dict[str, tuple[type[Any], dict[str, Any]]] = {
    "validation-crash": (faults.ValidationCrash, {}),
    "validation-hang": (faults.ValidationHang, {}),
    "validation-nan": (faults.ValidationNan, {}),
    "validation-missing": (faults.ValidationNan, {"mode": "missing"}),
    "training-poison": (faults.TrainingPoison, {"seed": 0}),  # seeded: this draw drowns the signal
    "registry-outage": (faults.RegistryOutage, {}),
    "artifact-corrupt": (faults.ArtifactCorrupt, {}),
}


def _release(lab_dir: Path, variant: str, cls: type[Any], fields: dict[str, Any]) -> dict[str, Any]:
    """Inject the fault through its plugin, run one release, remove the fault; return the manifest."""
    fault = cls(cls.Spec(lab_dir=str(lab_dir), **fields), FakeCtx())
    lease = Lease.new("t", 60.0)
    applied = asyncio.run(fault.inject(lease))
    try:
        cfg = PipelineConfig(lab_dir=str(lab_dir), variant=variant,
                             timeouts={"train": 60, "validate": 5, "register": 20, "deploy": 60},
                             canary={"replica": "serving-0", "window_s": 2.0, "interval_s": 0.5, "rows": 300})
        return run_pipeline(cfg)
    finally:
        asyncio.run(fault.remove())
        cls.revert(applied.undo)  # idempotent after remove
        assert fp.status(applied.undo.get("name", "x"), directory=applied.undo.get("directory")) is None


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("variant", ["naive", "mitigated"])
def test_fault_against_variant(case: str, variant: str, lab_dir: Path, serving: Callable[[str], Lab]) -> None:
    lab = serving(variant)
    champion = bootstrap(lab_dir)
    assert champion == "fraud-v2"
    cls, fields = CASES[case]
    manifest = _release(lab_dir, variant, cls, fields)
    served = served_versions(str(lab_dir))
    versions = {r["version"] for r in served.values()}
    steps = {s["name"]: s["status"] for s in manifest["steps"]}
    why = json.dumps({"manifest": {k: manifest[k] for k in ("status", "decision", "gate")}, "steps": steps,
                      "served": served}, default=str)
    assert len(served) == 3 and all(r["reachable"] for r in served.values()), why
    if variant == "mitigated":
        assert versions == {"fraud-v2"}, why  # nothing new reached serving
        assert all(r["validated"] for r in served.values()), why
        assert manifest["status"] in ("blocked", "failed") and manifest["deployed_version"] is None, why
        reg = FileRegistry(DeliveryPaths(lab_dir).registry)
        assert reg.by_alias("fraud", "production").version == "fraud-v2"  # type: ignore[union-attr]
        return
    # naive: a release went out anyway
    assert len(versions) == 1 and versions != {"fraud-v2"}, why
    new = versions.pop()
    assert manifest["status"] == "succeeded", why
    if case == "training-poison":
        # the accuracy-only gate waved a poisoned model through: it is "validated", and bad
        from mlchaos.lab.delivery.training import evaluate, holdout_frame
        from mlchaos.lab.models import load_fraud_model

        m = evaluate(load_fraud_model(lab.paths.models, new), holdout_frame())
        assert m["auc"] < 0.9 or m["recall"] < 0.3, (m, why)
    else:
        assert not any(r["validated"] for r in served.values()), why
    if case.startswith("validation-") and case != "validation-nan" and case != "validation-missing":
        assert steps["validate"] in ("failed", "timeout"), why
    if case == "validation-hang":
        assert steps["validate"] == "timeout", why
    if case == "registry-outage":
        assert new.startswith("fraud-2"), why  # the unregistered local build (fraud-<run id>)


@pytest.mark.parametrize("variant", ["naive", "mitigated"])
def test_slow_registry(variant: str, lab_dir: Path, serving: Callable[[str], Lab]) -> None:
    """Slow, not down: the naive client waits and ships; the mitigated one gives up at its deadline."""
    serving(variant)
    bootstrap(lab_dir)
    manifest = _release(lab_dir, variant, faults.RegistryOutage, {"mode": "slow", "delay": 3.0})
    served = served_versions(str(lab_dir))
    versions = {r["version"] for r in served.values()}
    if variant == "mitigated":
        assert manifest["status"] == "failed" and versions == {"fraud-v2"}, manifest
        register = next(s for s in manifest["steps"] if s["name"] == "register")
        assert register["status"] == "failed" and register["duration_s"] < 15, register
    else:
        assert manifest["status"] == "succeeded" and versions == {manifest["deployed_version"]}, manifest
