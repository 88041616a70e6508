"""The file registry: versions, aliases, metadata, checksums; the outage acted out through its failpoint."""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import pytest

from mlchaos import failpoint as fp
from mlchaos.lab.delivery import faultpoints
from mlchaos.lab.delivery.registry import (
    ChecksumMismatch,
    FileRegistry,
    RegistryError,
    RegistryUnavailable,
    sha256_file,
)


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    p = tmp_path / "model.pkl"
    p.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    return p


def test_versions_aliases_metadata_and_checksum(tmp_path: Path, artifact: Path) -> None:
    reg = FileRegistry(tmp_path / "reg")
    a = reg.register("fraud", artifact, metadata={"validation": {"status": "passed"}}, metrics={"auc": 0.95})
    b = reg.register("fraud", artifact, metrics={"auc": 0.96})
    c = reg.register("fraud", artifact, version="fraud-v2")
    assert (a.version, b.version, c.version) == ("fraud-r1", "fraud-r2", "fraud-v2")
    assert a.artifact_sha256 == sha256_file(artifact)
    assert reg.get("fraud", "fraud-r1").validation == {"status": "passed"}
    assert reg.get("fraud", "fraud-r1").metrics == {"auc": 0.95}
    assert [v.version for v in reg.versions("fraud")] == ["fraud-r1", "fraud-r2", "fraud-v2"]
    assert reg.by_alias("fraud", "production") is None
    reg.set_alias("fraud", "production", "fraud-r2")
    assert reg.by_alias("fraud", "production").version == "fraud-r2"  # type: ignore[union-attr]
    assert reg.get("fraud", "fraud-r2").aliases == ["production"]
    reg.set_alias("fraud", "production", "fraud-r1")  # moving an alias
    assert reg.get("fraud", "fraud-r2").aliases == []
    out = reg.fetch("fraud", "fraud-r1", tmp_path / "got.pkl")
    assert pickle.loads(out.read_bytes()) == {"weights": [1, 2, 3]}
    with pytest.raises(RegistryError):
        reg.get("fraud", "fraud-r9")
    with pytest.raises(RegistryError):
        reg.register("fraud", artifact, version="fraud-v2")
    with pytest.raises(RegistryError):
        reg.set_alias("fraud", "production", "nope")


def test_fetch_verifies_the_checksum(tmp_path: Path, artifact: Path) -> None:
    reg = FileRegistry(tmp_path / "reg")
    mv = reg.register("fraud", artifact)
    stored = reg.artifact_path("fraud", mv.version)
    stored.write_bytes(stored.read_bytes()[:-3])  # storage damage after upload
    with pytest.raises(ChecksumMismatch):
        reg.fetch("fraud", mv.version, tmp_path / "got.pkl")
    assert not (tmp_path / "got.pkl").exists()  # a bad copy is not left around to be loaded
    reg.fetch("fraud", mv.version, tmp_path / "got.pkl", verify=False)  # the naive client takes it
    assert (tmp_path / "got.pkl").exists()


def test_artifact_corruption_failpoint_changes_stored_bytes_only(tmp_path: Path, artifact: Path) -> None:
    reg = FileRegistry(tmp_path / "reg")
    other = tmp_path / "other.pkl"
    other.write_bytes(pickle.dumps("another model"))
    rec = fp.arm(faultpoints.ARTIFACT, "raise", ttl=30, mode="swap", replacement=str(other))
    try:
        mv = reg.register("fraud", artifact)
    finally:
        fp.disarm(faultpoints.ARTIFACT, lease_id=rec["lease_id"])
    assert mv.artifact_sha256 == sha256_file(artifact)  # the record keeps the uploaded checksum
    assert sha256_file(reg.artifact_path("fraud", mv.version)) == sha256_file(other)
    with pytest.raises(ChecksumMismatch):
        reg.fetch("fraud", mv.version, tmp_path / "got.pkl")


def test_outage_unreachable_and_slow(tmp_path: Path, artifact: Path) -> None:
    reg = FileRegistry(tmp_path / "reg")
    mv = reg.register("fraud", artifact)
    rec = fp.arm(faultpoints.REGISTRY, "raise", ttl=30, mode="unreachable")
    try:
        with pytest.raises(RegistryUnavailable):
            reg.get("fraud", mv.version)
        assert reg.inspect("fraud", mv.version) is not None  # observers still see the records
    finally:
        fp.disarm(faultpoints.REGISTRY, lease_id=rec["lease_id"])
    rec = fp.arm(faultpoints.REGISTRY, "raise", ttl=30, mode="slow", delay_s=1.0)
    try:
        t0 = time.monotonic()
        assert reg.get("fraud", mv.version).version == mv.version  # no deadline: waits, then answers
        assert time.monotonic() - t0 >= 1.0
        impatient = FileRegistry(tmp_path / "reg", deadline=0.2)
        t0 = time.monotonic()
        with pytest.raises(RegistryUnavailable):
            impatient.get("fraud", mv.version)
        assert time.monotonic() - t0 < 0.9
    finally:
        fp.disarm(faultpoints.REGISTRY, lease_id=rec["lease_id"])
    assert reg.get("fraud", mv.version).version == mv.version
    assert len(fp.effects(faultpoints.REGISTRY)) >= 3
