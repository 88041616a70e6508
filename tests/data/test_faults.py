"""Engine plugins: failpoint fault, file swap and restore, model swap and truncation."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlchaos.contract.lease import Lease
from mlchaos.failpoints import effects, failpoint, status
from mlchaos.faults.data import FailpointFault, FileCorrupt
from mlchaos.faults.models import ModelSwap, ModelTruncate
from mlchaos.plugin import FaultError
from tests.data.standalone import Ctx, run


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def df() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"amount": rng.normal(100, 10, 2000), "city": rng.choice(["a", "b", "c"], 2000)})


def test_failpoint_fault_lifecycle(df: pd.DataFrame) -> None:
    spec = FailpointFault.Spec(fault="failpoint", point="batch.after_extract", kind="nulls", columns=["amount"],
                               fraction="5%", seed=1)
    fault = FailpointFault(spec, Ctx())
    assert run(fault.preflight())["failpoint"] == "batch.after_extract"
    lease = Lease.new("l1", 2.0)
    applied = run(fault.inject(lease))
    assert applied.undo["name"] == "batch.after_extract" and applied.targets == ["failpoint:batch.after_extract"]
    out = failpoint("batch.after_extract", df)
    assert out["amount"].isna().sum() == 100
    run(fault.renew(lease))
    obs = run(fault.observed())
    assert obs["hits"] == 1 and obs["seen"] == 2000 and obs["affected"] == 100
    run(fault.remove())
    assert failpoint("batch.after_extract", df) is df
    run(fault.remove())  # idempotent


def test_failpoint_fault_revert_from_undo_only(df: pd.DataFrame) -> None:
    spec = FailpointFault.Spec(fault="failpoint", point="p", kind="scale", columns="amount", params={"factor": 10})
    applied = run(FailpointFault(spec, Ctx()).inject(Lease.new("l2", 30.0)))
    assert status("p") is not None
    FailpointFault.revert(applied.undo)
    assert status("p") is None and failpoint("p", df) is df
    assert effects("p") == []


def test_failpoint_fault_rejects_bad_spec() -> None:
    with pytest.raises(FaultError, match="kind"):
        run(FailpointFault(FailpointFault.Spec(fault="failpoint", point="p", kind="nope"), Ctx()).preflight())
    with pytest.raises(FaultError, match="factr"):
        run(FailpointFault(FailpointFault.Spec(fault="failpoint", point="p", kind="scale",
                                               params={"factr": 1}), Ctx()).preflight())


def test_revert_leaves_a_newer_arming_alone() -> None:
    spec = FailpointFault.Spec(fault="failpoint", point="p", kind="nulls")
    first = run(FailpointFault(spec, Ctx()).inject(Lease.new("a", 30.0)))
    second = run(FailpointFault(spec, Ctx()).inject(Lease.new("b", 30.0)))
    FailpointFault.revert(first.undo)
    assert status("p")["lease_id"] == second.undo["lease_id"]


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_file_corrupt_swap_and_restore(tmp_path: Path, df: pd.DataFrame, suffix: str) -> None:
    path = tmp_path / f"features{suffix}"
    if suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)
    before = sha(path)
    spec = FileCorrupt.Spec(fault="file-corrupt", path=str(path), kind="nulls", columns=["amount"],
                            fraction=0.1, seed=3)
    fault = FileCorrupt(spec, Ctx())
    assert run(fault.preflight())["format"] == suffix[1:]
    applied = run(fault.inject(Lease.new("lease1", 5.0)))
    backup = Path(applied.undo["backup"])
    assert backup.exists() and sha(backup) == before and sha(path) != before
    read = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    assert read["amount"].isna().sum() == 200 and applied.actual["cells_changed"] == 200
    assert run(fault.observed())["affected"] == 200
    run(fault.remove())
    assert sha(path) == before and not backup.exists()
    run(fault.remove())
    assert sha(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_file_corrupt_revert_from_undo_after_crash(tmp_path: Path, df: pd.DataFrame) -> None:
    path = tmp_path / "f.parquet"
    df.to_parquet(path)
    before = sha(path)
    applied = run(FileCorrupt(FileCorrupt.Spec(fault="file-corrupt", path=str(path), kind="drop_column",
                                               columns="city"), Ctx()).inject(Lease.new("x", 5.0)))
    assert "city" not in pq.read_schema(path).names
    FileCorrupt.revert(dict(applied.undo))  # a fresh process: the undo record alone
    assert sha(path) == before


def test_file_corrupt_does_not_clobber_a_newer_file(tmp_path: Path, df: pd.DataFrame) -> None:
    path = tmp_path / "f.parquet"
    df.to_parquet(path)
    applied = run(FileCorrupt(FileCorrupt.Spec(fault="file-corrupt", path=str(path), kind="nulls", columns="amount"),
                              Ctx()).inject(Lease.new("y", 5.0)))
    df.head(5).to_parquet(path)  # the pipeline rewrote the file meanwhile
    with pytest.raises(FaultError, match="original is kept"):
        FileCorrupt.revert(applied.undo)
    assert Path(applied.undo["backup"]).exists() and len(pd.read_parquet(path)) == 5


def test_file_corrupt_preflight_errors(tmp_path: Path) -> None:
    with pytest.raises(FaultError, match="no such file"):
        run(FileCorrupt(FileCorrupt.Spec(fault="file-corrupt", path=str(tmp_path / "x.csv"), kind="nulls"),
                        Ctx()).preflight())
    (tmp_path / "x.txt").write_text("a\n1\n")
    with pytest.raises(FaultError, match="format"):
        run(FileCorrupt(FileCorrupt.Spec(fault="file-corrupt", path=str(tmp_path / "x.txt"), kind="nulls"),
                        Ctx()).preflight())


def test_model_swap_symlink(tmp_path: Path) -> None:
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    (tmp_path / "v1" / "model.bin").write_text("old")
    (tmp_path / "v2" / "model.bin").write_text("new")
    current = tmp_path / "current"
    current.symlink_to(tmp_path / "v2")
    fault = ModelSwap(ModelSwap.Spec(fault="model-swap", path=str(current), replacement=str(tmp_path / "v1")), Ctx())
    assert run(fault.preflight())["mode"] == "symlink"
    applied = run(fault.inject(Lease.new("m", 5.0)))
    assert (current / "model.bin").read_text() == "old"
    ModelSwap.revert(applied.undo)
    assert (current / "model.bin").read_text() == "new" and os.readlink(current) == str(tmp_path / "v2")


def test_model_swap_dir_and_file(tmp_path: Path) -> None:
    served = tmp_path / "model"
    served.mkdir()
    (served / "w").write_text("new")
    old = tmp_path / "old"
    old.mkdir()
    (old / "w").write_text("old")
    fault = ModelSwap(ModelSwap.Spec(fault="model-swap", path=str(served), replacement=str(old)), Ctx())
    run(fault.inject(Lease.new("d", 5.0)))
    assert (served / "w").read_text() == "old" and (old / "w").read_text() == "old"
    run(fault.remove())
    assert (served / "w").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "old"]
    f_new, f_old = tmp_path / "m.pkl", tmp_path / "m_old.pkl"
    f_new.write_bytes(b"new")
    f_old.write_bytes(b"old")
    fault = ModelSwap(ModelSwap.Spec(fault="model-swap", path=str(f_new), replacement=str(f_old)), Ctx())
    applied = run(fault.inject(Lease.new("f", 5.0)))
    assert f_new.read_bytes() == b"old"
    ModelSwap.revert(applied.undo)
    assert f_new.read_bytes() == b"new"


def test_model_truncate(tmp_path: Path) -> None:
    import pickle

    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"weights": list(range(1000))}))
    before = sha(path)
    fault = ModelTruncate(ModelTruncate.Spec(fault="model-truncate", path=str(path), keep="50%"), Ctx())
    applied = run(fault.inject(Lease.new("t", 5.0)))
    assert applied.actual["kept"] == applied.actual["size"] // 2
    with pytest.raises((pickle.UnpicklingError, EOFError)):
        pickle.loads(path.read_bytes())
    run(fault.remove())
    assert sha(path) == before
