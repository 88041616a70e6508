"""A real engine run: a corrupted file swapped in, seen by the drift probe, restored afterwards.

The plugins are registered in-process (``registry.register``), so the test does not depend on the
entry points being installed yet.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

registry = pytest.importorskip("mlchaos.registry")
runner = pytest.importorskip("mlchaos.engine.runner")
loader = pytest.importorskip("mlchaos.spec.loader")


@pytest.fixture
def plugins() -> Iterator[None]:
    from mlchaos.faults.data import FailpointFault, FileCorrupt
    from mlchaos.probes.drift import DriftProbe

    registry.register("fault", "file-corrupt", FileCorrupt)
    registry.register("fault", "failpoint", FailpointFault)
    registry.register("probe", "drift", DriftProbe)
    yield
    registry.unregister("fault", "file-corrupt")
    registry.unregister("fault", "failpoint")
    registry.unregister("probe", "drift")


def test_file_corrupt_run_fails_on_drift_and_restores(tmp_path: Path, plugins: None) -> None:
    rng = np.random.default_rng(0)
    (tmp_path / "data").mkdir()
    data = tmp_path / "data" / "features.parquet"
    pd.DataFrame({"amount": rng.normal(100, 10, 5000)}).to_parquet(data)
    before = hashlib.sha256(data.read_bytes()).hexdigest()
    exp = {
        "title": "a unit error in a feature file is visible as drift",
        "target": {"platform": "process", "pids": [os.getpid()]},
        "steady_state": [{"name": "amount drift", "probe": "drift", "path": str(data), "column": "amount",
                          "reference": str(data), "statistic": "wasserstein", "max": 0.1}],
        "method": [{"fault": "file-corrupt", "path": str(data), "kind": "scale", "columns": ["amount"],
                    "fraction": "10%", "seed": 1, "at": "200ms", "duration": "1s"}],
        "phases": {"baseline": "300ms", "recovery": "300ms"},
        "interval": "100ms",
        "lease_ttl": "2s",
        "max_duration": "30s",
    }
    result = runner.run_experiment(loader.load_dict(exp), journal_path=tmp_path / "journal.jsonl")
    status = getattr(result, "status", None)
    assert str(getattr(status, "value", status)) == "failed", result
    assert hashlib.sha256(data.read_bytes()).hexdigest() == before
    assert "amount drift" in str(getattr(result, "reason", "")) or "deviated" in str(getattr(result, "reason", ""))
    assert [p.name for p in data.parent.iterdir()] == ["features.parquet"]  # no backup or temp file left


def test_failpoint_run_records_effects_and_disarms(tmp_path: Path, plugins: None) -> None:
    import threading

    import pyarrow as pa

    from mlchaos.data import write_table
    from mlchaos.failpoints import failpoint, status

    rng = np.random.default_rng(1)
    clean = pd.DataFrame({"amount": rng.normal(100, 10, 4000)})
    (tmp_path / "data").mkdir()
    ref = tmp_path / "data" / "reference.parquet"
    out = tmp_path / "data" / "output.parquet"
    clean.to_parquet(ref)
    clean.to_parquet(out)
    stop = threading.Event()

    def pipeline() -> None:  # a tiny batch job: extract → failpoint → write
        while not stop.is_set():
            df = failpoint("batch.after_extract", clean)
            write_table(pa.Table.from_pandas(df, preserve_index=False), out)
            stop.wait(0.05)

    worker = threading.Thread(target=pipeline, daemon=True)
    worker.start()
    try:
        exp = {
            "title": "a unit error after extraction moves the output distribution",
            "target": {"platform": "process", "pids": [os.getpid()]},
            "steady_state": [{"name": "output drift", "probe": "drift", "path": str(out), "column": "amount",
                              "reference": str(ref), "statistic": "wasserstein", "max": 0.1}],
            "method": [{"fault": "failpoint", "point": "batch.after_extract", "kind": "scale",
                        "columns": ["amount"], "fraction": "20%", "seed": 3, "at": "200ms", "duration": "1s"}],
            "phases": {"baseline": "300ms", "recovery": "500ms"},
            "interval": "100ms",
            "lease_ttl": "2s",
            "max_duration": "30s",
        }
        result = runner.run_experiment(loader.load_dict(exp), journal_path=tmp_path / "journal.jsonl")
    finally:
        stop.set()
        worker.join(5)
    assert str(getattr(result.status, "value", result.status)) == "failed", result
    assert status("batch.after_extract") is None  # disarmed at removal
    fault = result.summary["faults"][0]
    assert fault["observed"]["hits"] >= 5 and fault["observed"]["affected"] >= 5 * 800
