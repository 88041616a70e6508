"""An LLM load's figures where people read a run: ``mlchaos run``'s end, ``mlchaos journal``, the HTML report.

One real experiment (module-scoped, ~6-9 s): the scripted SSE server (``tests/load/llm_server.py``)
behind a real fault proxy, an LLM load with SLOs, a ``stream-stall`` on 30 % of the streams for 1.5 s,
run by the ``mlchaos`` CLI in its own process with ``--report``.  Every check compares what is shown with
the figures the run itself recorded (its journal's summary and ``load-tick`` events), so nothing here
depends on the timing of a shared machine.  A run without an LLM load keeps exactly the report and lines
it had.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from mlchaos import fmt
from mlchaos.cli import app
from mlchaos.report import load_runs, write_report
from mlchaos.report.llm import LLMFigures, llm_line

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Recorded:
    stdout: str
    rc: int
    journal: Path
    report: Path
    summary: dict[str, Any]
    events: list[dict[str, Any]]


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.fixture(scope="module")
def llm_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    from mlchaos.proxy import spawn

    d = tmp_path_factory.mktemp("llm-run")
    server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "load" / "llm_server.py")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    proxy = None
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("PORT "), line
        proxy = spawn(upstream=f"127.0.0.1:{int(line.split()[1])}", mode="http")
        (d / "p.jsonl").write_text(json.dumps("q @@ ttft=0.02 itl=0.01 n=8") + "\n")
        exp = {
            "title": "llm figures",
            "target": {"platform": "http", "url": f"http://{proxy.listen_addr}", "health": "/health"},
            "load": {"rate": "20/s", "llm": {"prompts": {"file": str(d / "p.jsonl")}, "stall_timeout": "300ms",
                                             "slo": {"ttft": "200ms", "e2e": "1s"}}},
            "steady_state": [{"name": "completion", "probe": "stream-completion", "window": "1s",
                              "min_samples": 5, "min": "10%"}],
            "method": [{"fault": "stream-stall", "control": proxy.control_url, "after_events": 3,
                        "probability": "30%", "duration": "1500ms"}],
            "phases": {"baseline": "1s", "recovery": "1s"},
        }
        (d / "exp.yaml").write_text(yaml.safe_dump(exp))
        r = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(d / "exp.yaml"), "--journal",
                            str(d / "j.jsonl"), "--report", str(d / "report")],
                           capture_output=True, text=True, timeout=120)
        assert proxy.client.list() == []  # no fault left behind
        events = [json.loads(ln) for ln in (d / "j.jsonl").read_text().splitlines()]
        summary = next(e for e in reversed(events) if e["event"] == "summary")
        yield Recorded(r.stdout, r.returncode, d / "j.jsonl", d / "report", summary, events)
    finally:
        if proxy is not None:
            proxy.stop()
        if server.stdin is not None:
            server.stdin.close()
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.mark.slow  # one real experiment of ~3.5 s in its own process: 6-9 s on 2 shared cores
def test_run_prints_the_llm_line(llm_run: Recorded) -> None:
    assert llm_run.rc == 0, llm_run.stdout
    f = LLMFigures.of(llm_run.summary)
    assert f is not None and f.ended > 0 and f.offered
    line = llm_line(llm_run.summary)
    assert line is not None and _flat(line) in _flat(llm_run.stdout), llm_run.stdout
    # every figure of the point, in mlchaos.fmt's units
    for piece in ("TTFT p50 ", ", p99 ", "ITL p99 ", "TPOT p50 ", "e2e p99 ", " ms", "% of offered",
                  "SLO TTFT ≤ 200 ms, e2e ≤ 1 s", "streams with [DONE] ", "errors: "):
        assert piece in line, (piece, line)
    block = llm_run.summary["load"]["llm"]
    assert f"completed {block['completed']}/{block['ended']}" in line
    share = min(1.0, block["good"] / llm_run.summary["load"]["scheduled"])
    assert f"goodput {fmt.number(block['goodput'])}/s = {fmt.percent(share)} of offered" in line
    for kind, n in block["errors"].items():  # errors by kind, as the load counted them
        assert f"{kind} {n}" in line


@pytest.mark.slow
def test_journal_shows_the_same_line_and_json_carries_the_block(llm_run: Recorded) -> None:
    runner = CliRunner()
    shown = runner.invoke(app, ["journal", str(llm_run.journal)])
    assert shown.exit_code == 0, shown.output
    line = llm_line(llm_run.summary)
    assert line is not None and _flat(line) in _flat(shown.output)
    raw = runner.invoke(app, ["journal", str(llm_run.journal), "--json"])
    llm = json.loads(raw.output)["load"]["llm"]  # --json: the raw block (milliseconds), as the run wrote it
    assert llm == llm_run.summary["load"]["llm"]
    assert {"ttft_ms", "itl_ms", "tpot_ms", "e2e_ms", "goodput", "stream_completion", "errors"} <= llm.keys()


def _figures(page: str) -> dict[str, str]:
    """Caption → svg of every chart of a report page."""
    return {cap: svg for svg, cap in re.findall(r"<figure>(<svg.*?</svg>)<figcaption>(.*?)</figcaption>", page)}


@pytest.mark.slow
def test_report_charts_and_tables_the_llm_figures(llm_run: Recorded) -> None:
    page = (llm_run.report / "index.html").read_text()
    figs = _figures(page)
    llm_figs = [c for c in figs if c.startswith("LLM: ")]
    assert llm_figs == ["LLM: TTFT p99 per second (ms)", "LLM: ITL p99 per second (ms)", "LLM: goodput (requests/s)"]
    ticks = [e for e in llm_run.events if e["event"] == "load-tick"]
    assert ticks and all("ttft_p99" in e for e in ticks)
    for cap in llm_figs:
        svg = figs[cap]
        assert "<title>fault: stream-stall#0</title>" in svg  # the fault window, shaded like the other charts
        assert "<path d=" in svg and "no data" not in svg  # a line drawn from the ticks
    assert "tolerance 200</title>" in figs["LLM: TTFT p99 per second (ms)"]  # the TTFT SLO, in ms
    assert "LLM load</h3>" in page
    f = LLMFigures.of(llm_run.summary)
    assert f is not None
    row = re.search(r"<tr><td>TTFT</td><td>(\d+)</td><td>([^<]*)</td>", page)
    assert row is not None and int(row.group(1)) == f.hists["ttft_ms"]["count"]
    assert row.group(2) == _html(fmt.seconds(f.hists["ttft_ms"]["p50"] / 1e3))
    assert _html(f"{f.completed} of {f.ended} ended ({f.offered} offered)") in page
    assert _html(f.goodput_text()) in page and _html(f.errors_text()) in page
    # the same report rebuilt from the journal alone (mlchaos report JOURNAL) shows the same
    rebuilt = write_report(load_runs([llm_run.journal]), llm_run.report.parent / "rebuilt", postmortems=True)
    assert list(_figures((rebuilt / "index.html").read_text())) == list(figs)
    assert f"\n{llm_line(llm_run.summary)}\n" in (rebuilt / "postmortem-0.md").read_text()  # the record too


def _html(text: str) -> str:
    import html

    return html.escape(text)


def _plain_run() -> dict[str, Any]:
    """A plain (non-LLM) load's run as its journal records it: ticks without token fields, no ``load.llm``."""
    t = 1000.0
    events: list[dict[str, Any]] = [
        {"t": t, "event": "run-start", "config": {"steady_state": [
            {"name": "p99", "probe": "latency", "percentile": 99, "max": 0.1}]}},
        *({"t": t + i, "event": "load-tick", "count": 10, "throughput": 10.0, "p50": 0.01, "p99": 0.02,
           "error_rate": 0.0, "errors": {}} for i in range(1, 5)),
        {"t": t + 2, "event": "probe", "probe": "p99", "value": 0.02, "ok": True},
    ]
    return {"title": "plain", "status": "passed", "exit_code": 0, "reason": "r", "events": events,
            "faults": [{"name": "latency#0", "plugin": "latency", "injected_at": t + 1.5, "removed_at": t + 3}],
            "load": {"scheduled": 40, "completed": 40, "errors": {}},
            "probes": [{"name": "p99", "probe": "latency", "role": "steady", "tolerance": {"max": 0.1},
                        "before": {"value": 0.02, "ok": True}, "after": {"value": 0.02, "ok": True},
                        "during": {"evaluations": 1, "breaches": 0}}]}


def test_a_run_without_an_llm_load_is_unchanged(tmp_path: Path) -> None:
    run = _plain_run()
    assert LLMFigures.of(run) is None and llm_line(run) is None
    page = (write_report([run], tmp_path / "r") / "index.html").read_text()
    assert list(_figures(page)) == ["Throughput (requests/s)", "Latency (ms)", "Error rate (%)", "Probe: p99 (ms)"]
    assert "LLM" not in page
    journal = tmp_path / "j.jsonl"
    summary = {k: v for k, v in run.items() if k != "events"}
    journal.write_text("".join(json.dumps(e) + "\n" for e in [*run["events"], {"t": 1005.0, "event": "summary",
                                                                                  **summary}]))
    shown = CliRunner().invoke(app, ["journal", str(journal)])
    assert shown.exit_code == 0 and "LLM" not in shown.output, shown.output


def test_line_without_slo_and_without_streams() -> None:
    """No SLO: goodput counts every completed request, and says so; a non-streaming load has no ITL ('–')."""
    ms = {"count": 4, "p50": 120.0, "p99": 300.0}
    run = {"status": "passed", "config": {"load": {"llm": {"slo": {"ttft": None, "tpot": None, "e2e": None}}}},
           "load": {"scheduled": 10, "llm": {
               "ended": 4, "completed": 4, "done_marker": 0, "good": 4, "errors": {}, "stream_completion": None,
               "goodput": 2.0, "ttft_ms": ms, "e2e_ms": ms, "itl_ms": {"count": 0}, "tpot_ms": {"count": 0}}}}
    line = llm_line(run)
    assert line is not None
    assert "TTFT p50 120 ms, p99 300 ms · ITL p99 – · TPOT p50 –" in line
    assert "goodput 2/s = 40 % of offered (no SLO given: every completed request)" in line
    assert "streams with [DONE] – · completed 4/4 · errors: none" in line
