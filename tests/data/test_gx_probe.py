"""The Great Expectations probe on real files, alone and through the engine.

great_expectations is an optional extra (``mlchaos[gx]``): without it every test
here but the import check is skipped.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlchaos.data import corrupt
from mlchaos.plugin import ProbeError
from tests.data.standalone import Ctx

SUITE = {
    "name": "features",
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "amount"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0,
                                                                  "max_value": 1000}},
        # the 0.x spelling is accepted too
        {"expectation_type": "expect_column_values_to_be_in_set",
         "kwargs": {"column": "city", "value_set": ["a", "b", "c"]}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
    ],
}


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(SUITE))
    return path


def _probe(data: Path, suite: Path, **kw: Any) -> Any:
    from mlchaos.probes.gx import GreatExpectationsProbe

    spec = GreatExpectationsProbe.Spec(probe="gx-validation", path=str(data), suite=str(suite), **kw)
    return GreatExpectationsProbe(spec, Ctx())


def test_module_import_does_not_import_great_expectations() -> None:
    code = ("import sys, mlchaos.probes.gx as m; m.GreatExpectationsProbe.Spec.model_json_schema(); "
            "sys.exit(1 if 'great_expectations' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_missing_package_names_the_extra(data: Path, suite: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "great_expectations", None)  # makes the import raise ImportError
    with pytest.raises(ProbeError, match=r"pip install 'mlchaos\[gx\]'"):
        asyncio.run(_probe(data, suite).measure())


def test_clean_then_corrupted(data: Path, suite: Path) -> None:
    pytest.importorskip("great_expectations")
    probe = _probe(data, suite)
    clean = asyncio.run(probe.measure())
    assert clean.value == 0 and clean.samples == 5000
    assert clean.detail["evaluated"] == 4 and clean.detail["failed"] == []
    bad, _ = corrupt(pd.read_parquet(data), "nulls", columns=["amount"], fraction=0.05, seed=1)
    bad.to_parquet(data)
    m = asyncio.run(probe.measure())  # the same probe: suite and context are reused, the file is re-read
    assert m.value == pytest.approx(1 / 4)
    (failed,) = m.detail["failed"]
    assert failed["type"] == "expect_column_values_to_not_be_null" and failed["column"] == "amount"
    assert failed["unexpected_count"] == 250 and failed["unexpected_rate"] == pytest.approx(0.05)
    assert asyncio.run(_probe(data, suite, value="failures").measure()).value == 1
    assert asyncio.run(_probe(data, suite, value="unexpected_rate").measure()).value == pytest.approx(0.05)
    assert asyncio.run(_probe(data, suite, value="valid").measure()).value == 0


def test_csv_file(data: Path, suite: Path, tmp_path: Path) -> None:
    pytest.importorskip("great_expectations")
    csv = tmp_path / "batch.csv"
    pd.read_parquet(data).to_csv(csv, index=False)
    m = asyncio.run(_probe(csv, suite).measure())
    assert m.value == 0 and m.samples == 5000


def test_dropped_column_is_a_failure_not_an_error(data: Path, suite: Path) -> None:
    pytest.importorskip("great_expectations")
    pd.read_parquet(data).drop(columns=["city"]).to_parquet(data)
    m = asyncio.run(_probe(data, suite, value="unexpected_rate").measure())
    assert m.value == 1.0
    (failed,) = m.detail["failed"]
    assert failed["column"] == "city" and "city" in failed["error"]


@pytest.mark.parametrize(("content", "match"), [
    ("{not json", "not valid JSON"),
    (json.dumps({"name": "s"}), "'expectations' list"),
    (json.dumps({"expectations": []}), "no expectations"),
    (json.dumps({"expectations": [{"kwargs": {"column": "amount"}}]}), r"#0 has no 'type'"),
    (json.dumps({"expectations": [{"type": "expect_nonsense", "kwargs": {}}]}), r"#0 \(expect_nonsense\)"),
    (json.dumps({"expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {}}]}),
     r"#0 \(expect_column_values_to_not_be_null\).*column"),
])
def test_malformed_suite_is_a_probe_error(data: Path, tmp_path: Path, content: str, match: str) -> None:
    pytest.importorskip("great_expectations")
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(ProbeError, match=match):
        asyncio.run(_probe(data, bad).measure())


def test_start_builds_the_suite_ahead_of_measure(data: Path, suite: Path, tmp_path: Path) -> None:
    pytest.importorskip("great_expectations")
    probe = _probe(data, suite)
    asyncio.run(probe.start())
    assert probe._suite is not None and probe._suite.name == "features"
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    broken = _probe(data, bad)
    asyncio.run(broken.start())  # does not raise: the engine would call that an internal error ...
    with pytest.raises(ProbeError, match="'expectations' list"):  # ... measure reports it instead
        asyncio.run(broken.measure())


def test_missing_suite_file_and_empty_data(data: Path, suite: Path, tmp_path: Path) -> None:
    pytest.importorskip("great_expectations")
    with pytest.raises(ProbeError, match="cannot read"):
        asyncio.run(_probe(data, tmp_path / "nope.json").measure())
    pd.read_parquet(data).head(0).to_parquet(data)
    m = asyncio.run(_probe(data, suite).measure())
    assert m.value is None and "no rows" in (m.insufficient or "")


@pytest.fixture
def plugins() -> Iterator[None]:
    from mlchaos import registry
    from mlchaos.faults.data import FileCorrupt
    from mlchaos.probes.gx import GreatExpectationsProbe

    registry.register("fault", "file-corrupt", FileCorrupt)
    registry.register("probe", "gx-validation", GreatExpectationsProbe)
    yield
    registry.unregister("fault", "file-corrupt")
    registry.unregister("probe", "gx-validation")


def _experiment(data: Path, suite: Path) -> dict[str, Any]:
    return {
        "title": "nulls in a feature file break the GX contract",
        "target": {"platform": "process", "pids": [os.getpid()]},
        "steady_state": [{"name": "features suite", "probe": "gx-validation", "path": str(data),
                          "suite": str(suite), "max": 0}],
        "method": [{"fault": "file-corrupt", "path": str(data), "kind": "nulls", "columns": ["amount"],
                    "fraction": "5%", "seed": 1, "at": "200ms", "duration": "1s"}],
        "phases": {"baseline": "500ms", "recovery": "500ms"},
        "interval": "150ms",
        "lease_ttl": "2s",
        "max_duration": "60s",
    }


@pytest.fixture
def features(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    (tmp_path / "data").mkdir()
    data = tmp_path / "data" / "features.parquet"
    pd.DataFrame({"amount": rng.normal(100, 10, 2000), "city": rng.choice(["a", "b", "c"], 2000)}).to_parquet(data)
    return data


def test_engine_run_fails_when_corrupted_file_breaks_the_suite(tmp_path: Path, suite: Path, features: Path,
                                                               plugins: None) -> None:
    pytest.importorskip("great_expectations")
    from mlchaos.engine.runner import run_experiment
    from mlchaos.spec.loader import load_dict

    before = hashlib.sha256(features.read_bytes()).hexdigest()
    result = run_experiment(load_dict(_experiment(features, suite)), journal_path=tmp_path / "journal.jsonl")
    assert str(getattr(result.status, "value", result.status)) == "failed", result
    assert "features suite deviated" in str(result.reason) and "0.25 > max 0" in str(result.reason)
    probe = result.summary["probes"][0]
    assert probe["before"]["value"] == 0 and probe["after"]["value"] == 0  # clean before and after
    assert hashlib.sha256(features.read_bytes()).hexdigest() == before  # the original is back
    assert [p.name for p in features.parent.iterdir()] == ["features.parquet"]


def test_engine_run_with_malformed_suite_injects_nothing(tmp_path: Path, features: Path, plugins: None) -> None:
    pytest.importorskip("great_expectations")
    from mlchaos.engine.runner import run_experiment
    from mlchaos.spec.loader import load_dict

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"expectations": [{"type": "expect_nonsense", "kwargs": {}}]}))
    result = run_experiment(load_dict(_experiment(features, bad)), journal_path=tmp_path / "journal.jsonl")
    assert str(getattr(result.status, "value", result.status)) != "passed", result
    assert "expect_nonsense" in str(result.reason), result.reason
    assert "fault-inject" not in (tmp_path / "journal.jsonl").read_text()
