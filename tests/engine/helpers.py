"""Builders for engine tests: real experiments against real local processes."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import yaml

# The smallest valid experiment file, as text: the spec tests build bad ones from it.
GOOD = """\
title: ok
target:
  platform: http
  url: http://127.0.0.1:9
steady_state:
  - probe: http
    url: /health
    equals: 200
method:
  - fault: process-pause
    pids: [1]
    at: 1s
    duration: 2s
"""


def experiment(url: str, pid: int, **over: Any) -> dict[str, Any]:
    """Pause ``pid`` while probing ``url``; override any top-level key."""
    exp: dict[str, Any] = {
        "title": "engine test",
        "target": {"platform": "http", "url": url, "health": "/health"},
        "steady_state": [{"name": "health", "probe": "http", "url": "/health", "equals": 200, "timeout": "300ms"}],
        "method": [{"name": "pause", "fault": "process-pause", "pids": [pid], "at": "300ms", "duration": "1s"}],
        "phases": {"baseline": "300ms", "recovery": "500ms"},
        "lease_ttl": "2s",
        "max_duration": "60s",
    }
    exp.update(over)
    return exp


def write(tmp: Path, exp: dict[str, Any], name: str = "exp.yaml") -> Path:
    p = tmp / name
    p.write_text(yaml.safe_dump(exp, sort_keys=False))
    return p


def run_cli(path: Path, journal: Path, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlchaos", "run", str(path), "--journal", str(journal), "-q", *extra],
                          capture_output=True, text=True, timeout=timeout)


def events(journal: Path) -> list[dict[str, Any]]:
    out = []
    for line in journal.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            out.append(json.loads(line))
    return out


def summary(journal: Path) -> dict[str, Any]:
    return next(e for e in reversed(events(journal)) if e["event"] == "summary")


def is_stopped(pid: int) -> bool:
    return psutil.Process(pid).status() == psutil.STATUS_STOPPED
