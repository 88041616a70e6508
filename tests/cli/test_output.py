"""Output as scripts read it: --json on errors, piped lines never wrapped or cut, a dying command's stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlchaos.examples import path as example


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlchaos", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def _events(journal: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]


def test_invalid_file_under_json_prints_the_errors_on_stdout(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("title: x\ntarget: {platform: http, url: 'http://127.0.0.1:9'}\nmethd: []\n")
    r = _cli("run", str(bad), "--json")
    assert r.returncode == 2
    out = json.loads(r.stdout)
    assert out["status"] == "invalid" and out["exit_code"] == 2
    assert out["errors"] == [{"file": str(bad), "line": 3, "col": 1, "path": "methd",
                              "message": "unknown key 'methd'; did you mean 'method'?"}]
    assert f"{bad}:3:1" in r.stderr  # people still read the FILE:LINE:COL line

    r = _cli("run", str(bad), "--json", "--set", "steady_state.x.max=1")
    assert r.returncode == 2 and json.loads(r.stdout)["status"] == "invalid"
    r = _cli("validate", "--json", str(bad), str(example("tiny-pause.yaml")))
    assert r.returncode == 2
    files = json.loads(r.stdout)["files"]
    assert [f["valid"] for f in files] == [False, True] and files[0]["errors"][0]["line"] == 3
    for argv in (["journal", str(tmp_path / "none.jsonl")], ["report", str(tmp_path / "none.jsonl")],
                 ["demo", "--only", "no-such-scenario"]):
        r = _cli(*argv, "--json")
        assert r.returncode == 2, argv
        assert json.loads(r.stdout)["errors"][0]["message"], argv


@pytest.mark.slow
def test_piped_output_is_whole_and_journal_shows_units(tmp_path: Path, free_port: int) -> None:
    """A long title and reason, stdout a pipe: no line is wrapped at 80 columns or cut with an ellipsis."""
    exp = yaml.safe_load(example("tiny-pause.yaml").read_text())
    exp["title"] = "A very long title " + "that goes on " * 12 + "END-OF-TITLE"
    exp["target"]["command"][-1] = str(free_port)
    exp["target"]["url"] = f"http://127.0.0.1:{free_port}"
    f = tmp_path / "long.yaml"
    f.write_text(yaml.safe_dump(exp))
    journal = tmp_path / "j.jsonl"
    r = _cli("run", str(f), "-j", str(journal), env={"NO_COLOR": "1", "COLUMNS": "80"})
    assert r.returncode == 1, r.stdout + r.stderr
    verdict = r.stdout.splitlines()[0]
    assert verdict.startswith("FAILED (exit 1): ") and len(verdict) > 100, r.stdout  # one line, not wrapped
    assert "\x1b[" not in r.stdout + r.stderr  # NO_COLOR and a pipe: no escape codes
    assert " ms" in r.stderr  # the live view's checkpoint values carry units

    r = _cli("journal", str(journal), env={"COLUMNS": "80"})
    assert r.returncode == 0
    assert "END-OF-TITLE" in r.stdout and "…" not in r.stdout
    assert max(len(line) for line in r.stdout.splitlines()) > 100
    latency_row = next(line for line in r.stdout.splitlines() if "health latency" in line)
    assert "≤ 300 ms" in latency_row and " ms" in latency_row.split("≤ 300 ms")[1]
    raw = json.loads(_cli("journal", str(journal), "--json").stdout)
    assert raw["status"] == "failed"
    after = next(p for p in raw["probes"] if p["name"] == "health latency")["after"]["value"]
    assert isinstance(after, float) and after < 1  # raw seconds stay in the JSON


def test_a_command_that_dies_before_ready_shows_its_stderr(tmp_path: Path, free_port: int) -> None:
    exp = {
        "title": "a command that dies before it is ready",
        "target": {"platform": "process", "url": f"http://127.0.0.1:{free_port}", "ready": "/health",
                   "command": [sys.executable, "-c",
                               "import sys; print('starting up', file=sys.stderr); import no_such_module_mlchaos"]},
        "steady_state": [{"name": "up", "probe": "http", "url": "/health", "equals": 200}],
        "method": [{"name": "pause", "fault": "process-pause", "count": 1, "at": "1s", "duration": "1s"}],
        "phases": {"baseline": "1s", "recovery": "1s"},
        "max_duration": "20s",
    }
    f = tmp_path / "dies.yaml"
    f.write_text(yaml.safe_dump(exp))
    journal = tmp_path / "dies.jsonl"
    r = _cli("run", str(f), "-j", str(journal), "--json")
    assert r.returncode == 5, r.stdout + r.stderr
    summary = json.loads(r.stdout)
    assert "No module named 'no_such_module_mlchaos'" in summary["reason"]
    assert "exited with code 1 before it was ready" in summary["reason"]
    exited = [e for e in _events(journal) if e["event"] == "target-exited"]
    assert exited and any("no_such_module_mlchaos" in line for line in exited[0]["stderr"])  # type: ignore[union-attr]


def test_stderr_ring_is_bounded_and_never_blocks_a_chatty_child() -> None:
    """2 MB on stderr (far past a pipe's 64 KiB) and the child still exits; only the last lines are kept."""
    from mlchaos.targets.process import STDERR_LINES, StderrTail

    code = "import sys\nfor i in range(20000): print('x' * 100, i, file=sys.stderr)\nprint('last words', file=sys.stderr)"
    p = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    tail = StderrTail(p.stderr)
    assert p.wait(timeout=30) == 0
    lines = tail.lines(wait=5)
    assert len(lines) == STDERR_LINES and lines[-1] == "last words"


def test_demo_board_prints_a_line_per_finished_run_when_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    """Piped (CI logs, tee), a live table would print nothing until the end: one line per run instead."""
    from mlchaos.cli.demo import SCENARIOS, _Board

    with _Board(list(SCENARIOS[:2]), ["naive"], quiet=False) as board:
        assert board.live is None  # pytest's captured stderr is not a terminal
        board.finished(SCENARIOS[0].name, "naive", "failed (14s)", "p99 latency: 2.1 s > max 1 s")
        first = capsys.readouterr().err
        board.finished(SCENARIOS[1].name, "naive", "passed (9s)", "every probe held")
    lines = first.splitlines()
    assert len(lines) == 1 and f"ok  {SCENARIOS[0].name} [naive] failed (14s): p99 latency: 2.1 s > max 1 s" in lines[0]
    assert f"BAD {SCENARIOS[1].name} [naive] passed" in capsys.readouterr().err


def test_piped_load_report_lines_are_whole(tiny_service) -> None:  # type: ignore[no-untyped-def]
    """At 80 columns rich wrapped the plan line and split table cells ("latency (from / plan)")."""
    _, url = tiny_service
    r = _cli("load", url + "/health", "-r", "50/s", "-d", "1s", "--lag-budget", "1s", env={"COLUMNS": "80"})
    assert r.returncode == 0, r.stdout + r.stderr
    plan = next(line for line in r.stdout.splitlines() if line.lstrip().startswith("plan"))
    assert "arrivals" in plan and "connections" in plan, r.stdout
    assert any("latency (from plan)" in line for line in r.stdout.splitlines()), r.stdout
