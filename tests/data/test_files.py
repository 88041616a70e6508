"""Parquet and CSV files through corrupt() and corrupt_file()."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlchaos.data import corrupt, corrupt_file


@pytest.fixture
def df() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=500), "s": rng.choice(["a", "b"], 500)})


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_path_input_and_copy(tmp_path: Path, df: pd.DataFrame, suffix: str) -> None:
    src = tmp_path / f"in{suffix}"
    df.to_parquet(src) if suffix == ".parquet" else df.to_csv(src, index=False)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    table, mask = corrupt(src, "nulls", "x", fraction=0.1, seed=1)
    assert isinstance(table, pa.Table) and table.column("x").null_count == 50 and mask.n_cells_changed == 50
    dst = tmp_path / f"out{suffix}"
    mask2 = corrupt_file(src, dst, "nulls", columns="x", fraction=0.1, seed=1)
    back = pd.read_parquet(dst) if suffix == ".parquet" else pd.read_csv(dst)
    assert back["x"].isna().sum() == 50
    np.testing.assert_array_equal(mask2.cells["x"], mask.cells["x"])
    assert hashlib.sha256(src.read_bytes()).hexdigest() == digest  # the source is never touched
    with pytest.raises(ValueError, match="dst"):
        corrupt_file(src, src, "nulls", columns="x")
    with pytest.raises(ValueError, match="path"):
        corrupt(tmp_path / "missing.parquet", "nulls")
    with pytest.raises(ValueError, match="path"):
        corrupt(tmp_path / "data.txt", "nulls")
