"""Fixtures for the data tests: one mixed frame in pandas and Arrow form."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

N = 2000


def make_frame(n: int = N, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = np.array(["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"], dtype=object)
    return pd.DataFrame(
        {
            "x": rng.normal(50, 10, n),
            "i": rng.integers(1, 100, n),
            "s": words[rng.integers(0, len(words), n)],
            "u": np.array([f"café-{k % 7}é" for k in range(n)], dtype=object),
            "d": np.array([f"2024-01-{k % 28 + 1:02d}" for k in range(n)], dtype=object),
            "c": pd.Categorical(rng.choice(["red", "green", "blue"], n)),
            "y": rng.integers(0, 2, n),
            "ts": pd.date_range("2024-01-01", periods=n, freq="min"),
        }
    )


@pytest.fixture
def frame() -> pd.DataFrame:
    return make_frame()


@pytest.fixture(params=["pandas", "table", "batch"])
def any_data(request: pytest.FixtureRequest) -> object:
    df = make_frame()
    if request.param == "pandas":
        return df
    table = pa.Table.from_pandas(df, preserve_index=False)
    return table if request.param == "table" else table.combine_chunks().to_batches()[0]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A 5,000-row feature file (amount ~ N(100, 10), city in a/b/c) for the probe tests."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"amount": rng.normal(100, 10, 5000), "city": rng.choice(["a", "b", "c"], 5000)})
    path = tmp_path / "batch.parquet"
    df.to_parquet(path)
    return path
