"""The MLflow adapter against a real local MLflow registry (SQLite backend store, file artifact store)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

pytest.importorskip("mlflow")

from mlchaos import failpoint as fp
from mlchaos.lab.delivery import faultpoints
from mlchaos.lab.delivery.registry import (
    ChecksumMismatch,
    RegistryUnavailable,
    open_registry,
    sha256_file,
)


def test_register_alias_load_checksum(tmp_path: Path, built_dir: Path) -> None:
    from mlchaos.lab.models import FraudModel

    reg = open_registry("mlflow", tmp_path / "lab")
    model_file = built_dir / "models" / "fraud" / "fraud-v2.pkl"
    meta = {"validation": {"status": "passed", "passed": True, "metrics": {"auc": 0.95, "recall": 0.5}}}
    a = reg.register("fraud", model_file, metadata=meta, metrics={"auc": 0.95, "recall": 0.5})
    b = reg.register("fraud", model_file, version="fraud-v2", metrics={"auc": 0.9})
    assert a.version == "fraud-m1" and b.version == "fraud-v2"
    assert a.artifact_sha256 == sha256_file(model_file)
    got = reg.get("fraud", "fraud-m1")
    assert got.validation == meta["validation"] and got.metrics == {"auc": 0.95, "recall": 0.5}
    assert [v.version for v in reg.versions("fraud")] == ["fraud-m1", "fraud-v2"]
    # aliases are MLflow registered-model aliases
    reg.set_alias("fraud", "production", "fraud-m1")
    assert reg.by_alias("fraud", "production").version == "fraud-m1"  # type: ignore[union-attr]
    reg.set_alias("fraud", "production", "fraud-v2")
    assert reg.by_alias("fraud", "production").version == "fraud-v2"  # type: ignore[union-attr]
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'lab' / 'delivery' / 'mlflow.sqlite'}"
    assert str(MlflowClient(uri, uri).get_model_version_by_alias("fraud", "production").version) == "2"
    # load: the fetched artifact is a model the serving code can use
    out = reg.fetch("fraud", "fraud-m1", tmp_path / "fetched.pkl")
    with open(out, "rb") as fh:
        model = FraudModel("fraud-m1", "", pickle.load(fh), {"threshold": 0.5})
    assert model.predict_proba([{"amount": 50.0, "merchant_category": "grocery", "hour": 12}]).shape == (1,)
    # checksum: damage the stored artifact behind MLflow's back
    stored = reg.artifact_path("fraud", "fraud-m1")
    stored.write_bytes(stored.read_bytes()[:100])
    with pytest.raises(ChecksumMismatch):
        reg.fetch("fraud", "fraud-m1", tmp_path / "bad.pkl")
    # the outage fault reaches this backend too
    rec = fp.arm(faultpoints.REGISTRY, "raise", ttl=30, mode="unreachable")
    try:
        with pytest.raises(RegistryUnavailable):
            reg.get("fraud", "fraud-v2")
        assert reg.inspect("fraud", "fraud-v2") is not None
    finally:
        fp.disarm(faultpoints.REGISTRY, lease_id=rec["lease_id"])


def test_release_through_mlflow(lab_dir: Path, serving) -> None:  # type: ignore[no-untyped-def]
    """A clean mitigated release with the MLflow registry: registered, canary-promoted, validated in serving."""
    from mlchaos.lab.delivery.pipeline import PipelineConfig, bootstrap, run_pipeline
    from mlchaos.probes.delivery import served_versions

    serving("mitigated")
    assert bootstrap(lab_dir, "mlflow") == "fraud-v2"
    m = run_pipeline(PipelineConfig(lab_dir=str(lab_dir), variant="mitigated", registry="mlflow",
                                    canary={"replica": "serving-0", "window_s": 1.5, "interval_s": 0.5,
                                            "rows": 300}))
    assert m["status"] == "succeeded", m
    assert m["deployed_version"] == "fraud-m2", m
    served = served_versions(str(lab_dir), "mlflow")
    assert {r["version"] for r in served.values()} == {"fraud-m2"}, served
    assert all(r["validated"] for r in served.values()), served
    assert open_registry("mlflow", lab_dir).by_alias("fraud", "production").version == "fraud-m2"  # type: ignore[union-attr]
