"""``mlchaos report``: render reports from journals."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mlchaos.cli._common import fail_json


def report(
    journals: list[Path] = typer.Argument(..., help="Journals (JSON Lines) written by 'mlchaos run'.", show_default=False),
    out: Path = typer.Option(Path("mlchaos-report"), "--out", "-o", help="Report directory."),
    postmortem: bool = typer.Option(False, "--postmortem", help="Also write a blameless experiment record per run."),
    json_out: bool = typer.Option(False, "--json", help="Print where the report is and each run's verdict as JSON."),
) -> None:
    """Render one report (and, for several journals, a suite page with a resilience score)."""
    from mlchaos.report import load_runs, write_report

    missing = [str(j) for j in journals if not j.exists()]
    if missing:
        raise fail_json(json_out, f"report: no such journal: {', '.join(missing)}", files=missing)
    runs = load_runs(journals)
    if not runs:
        raise fail_json(json_out, "report: the journals hold no events", files=[str(j) for j in journals])
    for j in journals:
        (out / j.name).parent.mkdir(parents=True, exist_ok=True)
    write_report(runs, out, postmortems=postmortem)
    if json_out:
        print(json.dumps({"report": str(out / "index.html"), "dir": str(out),
                          "runs": [{k: r.get(k) for k in ("run_id", "title", "status", "exit_code", "reason")}
                                   for r in runs]}, default=str))
        return
    print(f"report: {out / 'index.html'} ({len(runs)} run(s))")
