"""A real ``mlflow models serve`` of a scikit-learn model, driven by experiments that read its batched answers.

One server for the module (it takes seconds to start): a logistic regression trained here on scikit-learn's
bundled breast-cancer data (nothing downloaded), saved with ``mlflow.sklearn.save_model`` and served with
``mlflow models serve --env-manager local``.  The load posts ``dataframe_split`` batches of 10 rows of which
the model puts exactly 6 in class 1, so the true class-1 share is 0.6:

* the predictions probe with ``protocol: mlflow`` (``predictions[*]``) measures 0.6 — not 1.0
  (``predictions[0]``) nor 0.0 (``predictions``), which is what the issue saw;
* a latency fault on the path (a fault proxy the run starts) breaches p99, the class share holds;
* corrupted batched predictions (``json-corrupt`` of ``predictions.*``) are detected by the same probe;
* a model swap followed by a restart ``command`` step (the server is a process mlchaos did not start) is
  seen by ``model-fingerprint``, and after the swap is removed the restarted server keeps the swapped
  model in memory: the canary still sees it in recovery (a stale model), while ``model-version``, which
  reads MLflow's ``/version`` (the MLflow version, not the model's), sees nothing.

The stale-model test restarts the server, so it runs last; the fixture stops whichever server is up.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mlchaos
from tests.stacks import serve_ctl

pytestmark = pytest.mark.slow

SERVE_CTL = Path(serve_ctl.__file__).resolve()


@dataclasses.dataclass
class Stack:
    url: str
    port: int
    model: Path
    other: Path
    columns: list[str]
    batch: list[list[float]]
    pidfile: Path
    log: Path
    startup_s: float


def _train(d: Path) -> tuple[Path, Path, list[str], list[list[float]]]:
    """Model A (served) and model B (trained on flipped labels: another model), and a 60 % class-1 batch."""
    import mlflow.sklearn
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    a = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    b = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, 1 - y)
    pred = a.predict(x)
    ones = [i for i in range(len(x)) if pred[i] == 1 and y.iloc[i] == 1][:6]
    zeros = [i for i in range(len(x)) if pred[i] == 0 and y.iloc[i] == 0][:4]
    rows = x.iloc[[ones[0], zeros[0], ones[1], ones[2], zeros[1], ones[3], zeros[2], ones[4], zeros[3], ones[5]]]
    # given requirements (no inference in a subprocess) and cloudpickle (skops' import alone takes 5 s):
    # suite time; the model is our own, so pickle's trust question does not arise
    for model, where in ((a, d / "model"), (b, d / "model-b")):
        mlflow.sklearn.save_model(model, str(where), pip_requirements=["scikit-learn"],
                                  serialization_format="cloudpickle")
    return d / "model", d / "model-b", [str(c) for c in x.columns], rows.astype(float).values.tolist()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    d = tmp_path_factory.mktemp("mlflow-serve")
    model, other, columns, batch = _train(d)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    pidfile, log = d / "server.pid", d / "server.log"
    t0 = time.monotonic()
    try:
        serve_ctl.start(pidfile, model, port, log)
        startup = time.monotonic() - t0
        _warm_up(f"http://127.0.0.1:{port}", columns, batch)
        yield Stack(f"http://127.0.0.1:{port}", port, model, other, columns, batch, pidfile, log, startup)
    finally:
        serve_ctl.stop(pidfile)  # whichever server is up now: the first one, or the one a step restarted


def _warm_up(url: str, columns: list[str], batch: list[list[float]]) -> None:
    """A few scoring calls first: the first answers of a fresh server are slow (lazy imports), not its p99."""
    import httpx

    body = {"dataframe_split": {"columns": columns, "data": batch}}
    for _ in range(5):
        httpx.post(url + "/invocations", json=body, timeout=30).raise_for_status()


def _exp(stack: Stack, *, proxy: bool, probes: list[dict[str, Any]], method: list[dict[str, Any]],
         phases: dict[str, str], load: bool = True) -> dict[str, Any]:
    exp: dict[str, Any] = {
        "title": "mlflow serve",
        "target": {"platform": "http", "url": stack.url, "health": "/ping", "proxy": proxy},
        "steady_state": probes,
        "method": method,
        "phases": phases,
    }
    if load:
        body = {"dataframe_split": {"columns": stack.columns, "data": stack.batch}}
        exp["load"] = {"rate": "20/s", "request": {"path": "/invocations", "body": body}, "sample": 1.0}
    return exp


def _run(exp: dict[str, Any], journal: Path) -> Any:
    """mlchaos.run; once more if the load generator could not keep up (a starved runner: no verdict either way)."""
    res = mlchaos.run(exp, journal=journal)
    if res.status.value == "inconclusive":
        res = mlchaos.run(exp, journal=journal.with_suffix(".rerun.jsonl"))
    return res


SHARE = {"name": "class-1 share", "probe": "predictions", "protocol": "mlflow", "stat": "rate", "label": 1,
         "window": "1s", "min_samples": 50, "between": [0.6, 0.6]}


def test_latency_on_the_path_breaches_p99_and_the_class_share_holds(tmp_path: Path, stack: Stack) -> None:
    # bounds far apart (a starved runner's own stalls stay under 500 ms; the fault adds a full second),
    # and a settle window for a baseline that a neighbour's burst disturbed
    probes = [{"name": "p99", "probe": "latency", "percentile": 99, "window": "1s", "min_samples": 10,
               "max": "500ms"}, SHARE]
    method = [{"name": "slow", "fault": "latency", "delay": "1s", "at": "0s", "duration": "1500ms"}]
    res = _run(_exp(stack, proxy=True, probes=probes, method=method,
                    phases={"baseline": "1200ms", "settle": "4s", "recovery": "1200ms"}), tmp_path / "j.jsonl")
    assert res.status.value == "failed", res.reason
    by = {p["name"]: p for p in res.summary["probes"]}
    assert by["class-1 share"]["before"]["value"] == 0.6  # every row of each batched answer: 6 of 10
    assert by["p99"]["during"]["breaches"] >= 1 and by["p99"]["during"]["max"] >= 1.0
    assert by["class-1 share"]["during"]["breaches"] == 0


def test_corrupted_batched_predictions_are_detected(tmp_path: Path, stack: Stack) -> None:
    probes = [SHARE, {"name": "rows without a prediction", "probe": "predictions", "protocol": "mlflow",
                      "stat": "missing", "window": "1s", "min_samples": 50, "max": 0}]
    method = [{"name": "nulls", "fault": "json-corrupt", "fields": ["predictions.*"], "action": "null",
               "at": "0s", "duration": "1500ms"}]
    res = _run(_exp(stack, proxy=True, probes=probes, method=method,
                    phases={"baseline": "1200ms", "recovery": "2s"}), tmp_path / "j.jsonl")
    assert res.status.value == "failed", res.reason
    by = {p["name"]: p for p in res.summary["probes"]}
    assert by["class-1 share"]["before"]["value"] == 0.6
    assert by["class-1 share"]["during"]["breaches"] >= 1
    assert by["rows without a prediction"]["during"]["max"] == 1.0  # every row of every answer went null
    assert by["rows without a prediction"]["after"]["ok"] is True  # the proxy's fault is gone: rows are back


def test_a_stale_model_after_a_swap_and_restart_is_seen_by_the_canary(tmp_path: Path, stack: Stack) -> None:
    """Runs last: it leaves the server serving model B (files restored, the process not restarted)."""
    restart = [sys.executable, str(SERVE_CTL), "restart", "--pidfile", str(stack.pidfile), "--model",
               str(stack.model), "--port", str(stack.port), "--log", str(stack.log)]
    # the swap must outlast the restart (a stop, then a start like the first one), or the server would
    # read the restored files; sized from the first start, so a slow runner gets a longer fault rather
    # than a false result
    hold = max(8.0, 1.6 * stack.startup_s + 4.0)
    probes = [
        {"name": "canary", "probe": "model-fingerprint", "protocol": "mlflow", "rows": stack.batch,
         "columns": stack.columns, "stat": "changed", "max": 0},
        {"name": "mlflow version", "probe": "model-version", "protocol": "mlflow", "stat": "changed"},
    ]
    method = [
        {"name": "swap", "fault": "model-swap", "path": str(stack.model), "replacement": str(stack.other),
         "at": "0s", "duration": f"{hold:.1f}s"},
        {"step": "command", "name": "restart", "argv": restart, "at": "100ms", "timeout": f"{hold:.1f}s"},
    ]
    res = _run(_exp(stack, proxy=False, probes=probes, method=method, load=False,
                    phases={"baseline": "500ms", "recovery": "1s"}), tmp_path / "j.jsonl")
    assert res.status.value == "failed", res.reason
    by = {p["name"]: p for p in res.summary["probes"]}
    assert by["canary"]["before"]["value"] == 0
    assert by["canary"]["during"]["max"] == 1.0  # model B answers every canary row the other way
    assert by["canary"]["after"]["value"] == 1.0  # files restored, the old process state: a stale model
    assert by["mlflow version"]["after"]["value"] == 0  # /version is MLflow's: blind to the model
    ends = [e for e in map(json.loads, (tmp_path / "j.jsonl").read_text().splitlines())
            if e.get("event") == "step-end"]
    assert ends and ends[0]["ok"] is True, ends
