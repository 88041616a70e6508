"""Text from targets and plugins reaches the console as written: rich markup never swallows ``[kubernetes]``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml


def test_a_message_with_brackets_is_printed_whole(tmp_path: Path) -> None:
    msg = "the 'kubernetes' package is not installed: pip install 'mlchaos[kubernetes]' [bold]x[/bold]"
    exp = {
        "title": "brackets",
        "target": {"platform": "process", "command": [sys.executable, "-c", f"import sys; sys.exit({msg!r})"],
                   "url": "http://127.0.0.1:9", "ready": "/", "ready_timeout": "5s"},
        "steady_state": [{"probe": "http", "url": "/", "equals": 200}],
        "method": [],
        "phases": {"baseline": "100ms", "recovery": "100ms"},
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(exp))
    r = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(path), "-j", str(tmp_path / "j.jsonl")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 5, r.stdout + r.stderr
    assert "mlchaos[kubernetes]" in r.stdout and "[bold]x[/bold]" in r.stdout, r.stdout
