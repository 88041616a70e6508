"""``mlchaos demo``: the built-in demonstration.

Until the lab's six scenarios land, the demo runs the self-contained example
``tiny-pause.yaml`` against a tiny prediction service it starts itself on a
free loopback port, and writes a report directory.  Its expected verdict is
``failed`` (one paused replica cannot keep a latency hypothesis); the demo
exits 0 when every verdict is the expected one.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import typer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo(
    out: Path = typer.Option(Path("mlchaos-report"), "--out", help="Report directory."),
) -> None:
    """Run the built-in demo experiment(s) and write a report."""
    from mlchaos.cli.run import _Progress
    from mlchaos.engine.runner import run_experiment
    from mlchaos.examples import path
    from mlchaos.report import write_report
    from mlchaos.spec.loader import load_file

    port = _free_port()
    v = load_file(path("tiny-pause.yaml"))
    tgt = v.targets["default"]
    tgt.command = [sys.executable, "-m", "mlchaos.examples.tiny_service", "--port", str(port)]
    tgt.url = f"http://127.0.0.1:{port}"
    out.mkdir(parents=True, exist_ok=True)
    journal = out / "tiny-pause.jsonl"
    journal.unlink(missing_ok=True)
    with _Progress(v.planned_length(), False) as progress:
        result = run_experiment(v, journal_path=journal, on_event=progress)
    run = {**result.summary, "scenario": "tiny-pause", "variant": "naive", "expected": ["failed"]}
    write_report([run], out, journals=[journal])
    ok = result.status.value == "failed"
    print(f"tiny-pause [naive]: {result.status.value} (expected failed) — {result.reason}")
    print(f"report: {out / 'index.html'}")
    raise typer.Exit(0 if ok else 1)
