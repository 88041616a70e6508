"""``mlchaos report``: render reports from journals."""

from __future__ import annotations

from pathlib import Path

import typer


def report(
    journals: list[Path] = typer.Argument(..., help="Journals (JSON Lines) written by 'mlchaos run'.", show_default=False),
    out: Path = typer.Option(Path("mlchaos-report"), "--out", help="Report directory."),
    postmortem: bool = typer.Option(False, "--postmortem", help="Also write a blameless experiment record per run."),
) -> None:
    """Render one report (and, for several journals, a suite page with a resilience score)."""
    from mlchaos.report import load_runs, write_report

    missing = [str(j) for j in journals if not j.exists()]
    if missing:
        print(f"mlchaos report: no such journal: {', '.join(missing)}")
        raise typer.Exit(2)
    runs = load_runs(journals)
    if not runs:
        print("mlchaos report: the journals hold no events")
        raise typer.Exit(2)
    for j in journals:
        (out / j.name).parent.mkdir(parents=True, exist_ok=True)
    write_report(runs, out, postmortems=postmortem)
    print(f"report: {out / 'index.html'} ({len(runs)} run(s))")
