"""The same corruption inside a distributed engine's map step (Dask ``map_partitions`` over Arrow batches)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlchaos.data import corrupt

dd = pytest.importorskip("dask.dataframe", reason="dask[dataframe] is not installed")


def corrupt_partition(pdf: pd.DataFrame, partition_info: dict[str, Any] | None = None) -> pd.DataFrame:
    batch = pa.RecordBatch.from_pandas(pdf, preserve_index=False)
    number = partition_info["number"] if partition_info else 0
    out, _mask = corrupt(batch, "nulls", "x", fraction=0.1, seed=1000 + number)  # a seed per partition
    assert isinstance(out, pa.RecordBatch)
    res = out.to_pandas()
    res.index = pdf.index
    return res


def test_map_partitions_with_arrow_batches() -> None:
    rng = np.random.default_rng(0)
    pdf = pd.DataFrame({"x": rng.normal(size=10_000), "s": rng.choice(["a", "b"], 10_000)})
    ddf = dd.from_pandas(pdf, npartitions=4)
    out = ddf.map_partitions(corrupt_partition, meta=ddf._meta).compute(scheduler="synchronous")
    sizes = ddf.map_partitions(len).compute(scheduler="synchronous")
    assert out["x"].isna().sum() == sum(round(0.1 * s) for s in sizes)
    assert (out["s"] == pdf["s"]).all()
    kept = out["x"].notna()
    assert (out["x"][kept] == pdf["x"][kept]).all()
    again = ddf.map_partitions(corrupt_partition, meta=ddf._meta).compute(scheduler="synchronous")
    pd.testing.assert_frame_equal(out, again)  # reproducible per partition
