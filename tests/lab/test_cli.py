"""``mlchaos lab`` commands drive a real lab (batch only here: a supervisor and no services, so it is fast)."""

from __future__ import annotations

import json
from pathlib import Path

import psutil
from typer.testing import CliRunner

from mlchaos.cli.lab import app


def test_cli_up_status_batch_logs_down(tmp_path: Path) -> None:
    runner = CliRunner()
    d = str(tmp_path / "lab")
    r = runner.invoke(app, ["up", "batch", "--variant", "mitigated", "--lab-dir", d])
    assert r.exit_code == 0, r.output
    assert "batch" in r.output and "fraud-v2" in r.output
    r = runner.invoke(app, ["status", "--lab-dir", d, "--json"])
    state = json.loads(r.output)
    sup = state["supervisor"]["pid"]
    assert psutil.pid_exists(sup)
    assert state["variants"] == {"batch": "mitigated"}
    r = runner.invoke(app, ["status", "--lab-dir", d])
    assert r.exit_code == 0 and "mitigated" in r.output
    r = runner.invoke(app, ["batch", "--lab-dir", d])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["status"] == "ok"
    r = runner.invoke(app, ["logs", "supervisor", "--lab-dir", d, "-n", "5"])
    assert r.exit_code == 0 and '"service":"supervisor"' in r.output.replace(" ", "")
    r = runner.invoke(app, ["down", "--lab-dir", d])
    assert r.exit_code == 0
    assert not psutil.pid_exists(sup) or psutil.Process(sup).status() == psutil.STATUS_ZOMBIE
    r = runner.invoke(app, ["status", "--lab-dir", d])
    assert r.exit_code == 1 and "no lab running" in r.output
