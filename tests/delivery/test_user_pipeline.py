"""A user's own pipeline (steps = commands): CI semantics, and the delivery faults acted out around a named
step or at a failpoint in the user's code — real processes, no MLflow (see tests/stacks/test_mlflow_registry.py
for the server)."""

from __future__ import annotations

import asyncio
import json
import math
import sys
from pathlib import Path

import pytest

from mlchaos.contract.lease import Lease
from mlchaos.faults import delivery as faults
from mlchaos.lab.delivery.userpipeline import UserPipeline, run
from mlchaos.plugin import FaultError

from .conftest import FakeCtx

PY = sys.executable
WRITE_METRICS = "import json; json.dump({'auc': 0.97, 'n': 3, 'ok': True}, open('metrics.json', 'w'))"
SHOW_URI = "import os; open('uri.txt', 'w').write(os.environ.get('MLFLOW_TRACKING_URI', ''))"


def _pipeline(tmp_path: Path, **validate: object) -> UserPipeline:
    return UserPipeline.model_validate({
        "cwd": str(tmp_path), "runs_dir": str(tmp_path / "runs"),
        "steps": [
            {"name": "validate", "argv": [PY, "-c", WRITE_METRICS], "metrics": "metrics.json", **validate},
            {"name": "register", "argv": [PY, "-c", SHOW_URI], "timeout": "20s"},
        ]})


def _arm(cls: type, tmp_path: Path, **fields: object) -> tuple[object, dict[str, object]]:
    fault = cls(cls.Spec(directory=str(tmp_path / "fp"), **fields), FakeCtx())
    applied = asyncio.run(fault.inject(Lease.new("t", 30.0)))
    return fault, applied.undo


def _statuses(m: dict[str, object]) -> dict[str, str]:
    return {s["name"]: s["status"] for s in m["steps"]}  # type: ignore[attr-defined,index]


def test_step_faults_acted_out_around_commands(tmp_path: Path) -> None:
    fp = str(tmp_path / "fp")
    uris = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"}
    m = run(_pipeline(tmp_path), "clean", failpoint_dir=fp, uris=uris)
    assert m["status"] == "succeeded" and set(_statuses(m).values()) == {"succeeded"}, m
    assert (tmp_path / "uri.txt").read_text() == "http://127.0.0.1:5000"  # registry_uri reaches every step

    # crash: the step exits 1 before its command runs; CI semantics stop the pipeline there
    (tmp_path / "metrics.json").unlink()
    crash, undo = _arm(faults.ValidationCrash, tmp_path, step="validate", message="boom")
    try:
        m = run(_pipeline(tmp_path), "crash", failpoint_dir=fp, uris=uris)
        assert _statuses(m) == {"validate": "failed", "register": "skipped"}
        assert not (tmp_path / "metrics.json").exists()
        assert "boom" in (tmp_path / "runs" / "crash" / "validate.log").read_text()
        assert asyncio.run(crash.observed())["hits"] == 1  # type: ignore[attr-defined]
        # (fail-open, continue_on_error: tests/stacks/test_mlflow_registry.py)
    finally:
        faults.ValidationCrash.revert(undo)

    # nan: exit 0, the declared metrics file comes back NaN (booleans left alone)
    _nan, undo = _arm(faults.ValidationNan, tmp_path, step="validate")
    try:
        m = run(_pipeline(tmp_path), "nan", failpoint_dir=fp, uris=uris)
        assert m["status"] == "succeeded", m
        got = json.loads((tmp_path / "metrics.json").read_text())
        assert math.isnan(got["auc"]) and math.isnan(got["n"]) and got["ok"] is True
    finally:
        faults.ValidationNan.revert(undo)

    # hang: killed by the step's timeout
    _hang, undo = _arm(faults.ValidationHang, tmp_path, step="validate", hang="60s")
    try:
        m = run(_pipeline(tmp_path, timeout="1s"), "hang", failpoint_dir=fp, uris=uris)
        assert _statuses(m)["validate"] == "timeout" and m["status"] == "failed", m
    finally:
        faults.ValidationHang.revert(undo)

    # registry unreachable for one step: its MLflow URIs point at a port that refuses connections
    _out, undo = _arm(faults.RegistryOutage, tmp_path, step="register")
    try:
        m = run(_pipeline(tmp_path), "outage", failpoint_dir=fp, uris=uris)
        dead = (tmp_path / "uri.txt").read_text()
        assert dead.startswith("http://127.0.0.1:") and dead != uris["MLFLOW_TRACKING_URI"]
    finally:
        faults.RegistryOutage.revert(undo)


def test_failpoint_in_user_code_and_refused_modes(tmp_path: Path) -> None:
    code = "from mlchaos import failpoint; import pandas as pd; failpoint('myapp.validate', pd.DataFrame({'a': [1]}))"
    p = UserPipeline.model_validate({"cwd": str(tmp_path), "runs_dir": str(tmp_path / "runs"),
                                     "steps": [{"name": "validate", "argv": [PY, "-c", code]}]})
    _crash, undo = _arm(faults.ValidationCrash, tmp_path, failpoint="myapp.validate")
    try:
        m = run(p, "fp", failpoint_dir=str(tmp_path / "fp"), uris={})
        assert _statuses(m) == {"validate": "failed"}
        assert "FailpointError" in (tmp_path / "runs" / "fp" / "validate.log").read_text()
    finally:
        faults.ValidationCrash.revert(undo)
    for cls, fields, match in [
        (faults.ValidationHang, {"failpoint": "x.y"}, "cannot hang"),
        (faults.RegistryOutage, {"step": "register", "mode": "slow"}, "latency"),
        (faults.ArtifactCorrupt, {"step": "register"}, "model"),
        (faults.ValidationNan, {"failpoint": "x.y", "mode": "missing"}, "missing"),
    ]:
        f = cls(cls.Spec(directory=str(tmp_path / "fp2"), **fields), FakeCtx())
        with pytest.raises(FaultError, match=match):
            asyncio.run(f.preflight())
    assert not (tmp_path / "fp2").exists()  # preflight wrote nothing


def test_pipeline_spec_errors() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="two steps named"):
        UserPipeline.model_validate({"steps": [{"name": "a", "argv": ["x"]}, {"name": "a", "argv": ["y"]}]})
    with pytest.raises(ValidationError, match="argv"):
        UserPipeline.model_validate({"steps": [{"name": "a", "argv": []}]})
    f = faults.DeliveryRun(faults.DeliveryRun.Spec(pipeline={"steps": [{"name": "a", "argv": ["no-such-prog-x"]}]}),
                           FakeCtx())
    with pytest.raises(FaultError, match=r"steps\[0\].argv\[0\].*no-such-prog-x"):
        asyncio.run(f.preflight())
