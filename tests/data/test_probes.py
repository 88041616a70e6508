"""Drift and validation probes on real files."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pandas as pd
import pytest

from mlchaos.data import corrupt
from mlchaos.probes.drift import DriftProbe
from tests.data.standalone import Ctx


@pytest.mark.parametrize("statistic", ["psi", "ks", "wasserstein", "jensen_shannon"])
def test_drift_probe_baseline_then_shift(data: Path, statistic: str) -> None:
    col = "city" if statistic == "jensen_shannon" else "amount"
    probe = DriftProbe(DriftProbe.Spec(probe="drift", path=str(data), column=col, statistic=statistic), Ctx())
    first = asyncio.run(probe.measure())
    assert first.value == pytest.approx(0.0, abs=1e-9) and first.samples == 5000
    df = pd.read_parquet(data)
    if col == "city":  # a uniform swap keeps the marginal shares; a mapping moves them
        out, _ = corrupt(df, "category_swap", col, fraction=1.0, seed=1, mapping={"a": "b"})
    else:
        out, _ = corrupt(df, "mean_shift", col, fraction=0.5, seed=1, sd=1.0)
    out.to_parquet(data)
    after = asyncio.run(probe.measure())
    assert after.value is not None and after.value > 0.1


def test_drift_probe_window_too_small(data: Path, tmp_path: Path) -> None:
    probe = DriftProbe(DriftProbe.Spec(probe="drift", path=str(data), column="amount", reference=str(data),
                                       last=50), Ctx())
    m = asyncio.run(probe.measure())
    assert m.value is None and "min_size" in (m.insufficient or "")


def test_validation_probe(tmp_path: Path, data: Path) -> None:
    pytest.importorskip("pandera")
    import pandera.pandas as pa

    from mlchaos.probes.validation import ValidationProbe

    schema = pa.DataFrameSchema({"amount": pa.Column(float, nullable=False), "city": pa.Column(str)})
    schema_path = tmp_path / "schema.yaml"
    schema_path.write_text(schema.to_yaml())
    spec = ValidationProbe.Spec(probe="validation", path=str(data), schema=str(schema_path))
    probe = ValidationProbe(spec, Ctx())
    assert asyncio.run(probe.measure()).value == 0
    df = pd.read_parquet(data)
    corrupt(df, "nulls", "amount", fraction=0.05, seed=1)[0].to_parquet(data)
    m = asyncio.run(probe.measure())
    assert m.value == 250 and m.detail["failed_rows"] == 250
    rate = ValidationProbe(ValidationProbe.Spec(probe="validation", path=str(data), schema=str(schema_path),
                                                value="failure_rate"), Ctx())
    assert asyncio.run(rate.measure()).value == pytest.approx(0.05)
