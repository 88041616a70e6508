"""The predictions probe reads what the model answered, from sampled load responses and from files."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mlchaos.engine.runner import run_experiment
from mlchaos.spec.loader import load_dict


def test_prediction_rate_and_model_version_from_live_answers(tmp_path: Path, tiny_service) -> None:
    _, url = tiny_service
    exp = {
        "title": "answers",
        "target": {"platform": "http", "url": url, "health": "/health"},
        "load": {"rate": "100/s", "request": {"path": "/predict", "method": "POST", "body": {"amount": 900}},
                 "sample": 1.0},
        "steady_state": [
            {"name": "fraud rate", "probe": "predictions", "field": "prediction", "stat": "rate", "label": 1,
             "window": "1s", "min_samples": 20, "between": [0.99, 1.0]},
            {"name": "model", "probe": "predictions", "field": "model_version", "stat": "mode", "window": "1s",
             "min_samples": 20, "equals": "v1"},
            {"name": "no fallback", "probe": "predictions", "field": "fallback", "stat": "rate", "label": True,
             "window": "1s", "min_samples": 20, "max": 0.0},
        ],
        "phases": {"baseline": "1500ms", "recovery": "200ms"},
    }
    res = run_experiment(load_dict(exp), journal_path=tmp_path / "j.jsonl")
    assert res.status.value == "passed", res.reason
    by_name = {p["name"]: p for p in res.summary["probes"]}
    assert by_name["fraud rate"]["before"]["value"] == 1.0
    assert by_name["model"]["before"]["value"] == "v1"


def test_insufficient_answers_is_not_a_pass(tmp_path: Path, tiny_service) -> None:
    _, url = tiny_service
    exp = {
        "title": "too few",
        "target": {"platform": "http", "url": url},
        "load": {"rate": "5/s", "request": {"path": "/predict", "method": "POST", "body": {"amount": 1}}, "sample": 1.0},
        "steady_state": [{"probe": "predictions", "stat": "rate", "label": 0, "window": "1s", "min_samples": 50,
                          "min": 0.5}],
        "phases": {"baseline": "500ms", "recovery": "100ms"},
    }
    res = run_experiment(load_dict(exp), journal_path=tmp_path / "j.jsonl")
    assert res.status.value == "not-run" and "insufficient data" in res.reason


def test_prediction_mean_from_a_file(tmp_path: Path) -> None:
    f = tmp_path / "preds.parquet"
    pq.write_table(pa.table({"score": [0.1, 0.2, 0.3, 0.4] * 25}), f)
    exp = {
        "title": "file",
        "steady_state": [{"probe": "predictions", "source": "file", "path": str(f), "field": "score", "stat": "mean",
                          "between": [0.24, 0.26]}],
        "phases": {"baseline": "100ms", "recovery": "100ms"},
    }
    res = run_experiment(load_dict(exp), journal_path=tmp_path / "j.jsonl")
    assert res.status.value == "passed", res.reason
