"""``mlchaos stop --json``: scripts get what was done, also when nothing ran."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _stop(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlchaos", "stop", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "MLCHAOS_STATE_DIR": str(state)})


def test_stop_json_when_nothing_runs_and_release(tmp_path: Path) -> None:
    r = _stop(tmp_path, "--json")
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["status"] == "nothing-running" and doc["refusing_new_runs"] is True
    assert (tmp_path / "STOP").exists()  # the flag is set even when nothing ran
    rel = _stop(tmp_path, "--release", "--json")
    assert json.loads(rel.stdout) == {"status": "released", "exit_code": 0}
    assert not (tmp_path / "STOP").exists()
