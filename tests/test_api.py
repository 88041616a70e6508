"""The top-level API: ``import mlchaos`` is cheap, and every advertised name resolves and works."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import mlchaos

#: Libraries that ``import mlchaos`` alone must not load (the CLI's --help and a pipeline that only
#: calls ``mlchaos.failpoint`` must not pay for them).
HEAVY = ("numpy", "pandas", "pyarrow", "sklearn", "scipy", "fastapi", "starlette", "uvicorn", "httpx",
         "pydantic", "yaml", "rich", "typer", "mlflow", "kubernetes", "psutil", "orjson", "pandera")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True, timeout=60)
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_import_mlchaos_loads_nothing_heavy() -> None:
    loaded = _modules_after("import mlchaos")
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
    assert heavy == [], f"import mlchaos loaded {heavy}"
    assert sorted(m for m in loaded if m.startswith("mlchaos")) == ["mlchaos"]


def test_every_public_name_resolves() -> None:
    from mlchaos import plugin
    from mlchaos.data import corrupt
    from mlchaos.engine.runner import run_experiment  # noqa: F401 - what mlchaos.run wraps
    from mlchaos.spec.errors import SpecErrors

    assert mlchaos.Fault is plugin.Fault and mlchaos.Probe is plugin.Probe
    assert mlchaos.Target is plugin.Target and mlchaos.Applied is plugin.Applied
    assert mlchaos.corrupt is corrupt
    assert mlchaos.SpecErrors is SpecErrors
    assert callable(mlchaos.failpoint) and callable(mlchaos.failpoint.arm)
    assert callable(mlchaos.drift.psi)
    for name in mlchaos.__all__:
        assert getattr(mlchaos, name) is not None, name
        assert name in dir(mlchaos)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mlchaos.nope  # noqa: B018


def _experiment(fault_phase: str = "1s") -> dict[str, Any]:
    """An experiment that needs no server: a sleeping process, paused by the fault, checked by nothing."""
    return {
        "title": "api smoke",
        "target": {"platform": "process", "command": [sys.executable, "-c", "import time; time.sleep(60)"]},
        "method": [{"fault": "process-pause", "count": 1, "duration": fault_phase}],
        "phases": {"baseline": "0s", "recovery": "0s"},
    }


def test_load_experiment_takes_a_path_or_a_dict(tmp_path: Path) -> None:
    import yaml

    from_dict = mlchaos.load_experiment(_experiment())
    f = tmp_path / "exp.yaml"
    f.write_text(yaml.safe_dump(_experiment()))
    from_file = mlchaos.load_experiment(f)
    assert from_dict.spec.title == from_file.spec.title == "api smoke"
    assert isinstance(from_dict, mlchaos.Experiment) and isinstance(from_file, mlchaos.Experiment)
    assert mlchaos.load_experiment(str(f)).spec.title == "api smoke"


def test_load_experiment_reports_spec_errors_with_positions(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("title: x\ntarget: {platform: process, command: [sleep, '9']}\nmethod:\n  - {fault: no-such-fault}\n")
    with pytest.raises(mlchaos.SpecErrors) as err:
        mlchaos.load_experiment(f)
    assert f"{f}:4:" in str(err.value)
    with pytest.raises(TypeError, match="a path or a dict"):
        mlchaos.load_experiment(42)  # type: ignore[arg-type]


def test_run_returns_the_verdict_and_writes_the_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLCHAOS_STATE_DIR", str(tmp_path / "state"))
    journal = tmp_path / "run.jsonl"
    result = mlchaos.run(_experiment(), journal=journal)
    assert result.status.value == "passed", result.reason  # no hypothesis to break: the fault came and went
    assert result.exit_code == 0
    assert journal.exists() and result.journal == journal
    events = [json.loads(line)["event"] for line in journal.read_text().splitlines()]
    assert "fault-inject" in events and "fault-remove" in events
