"""``mlchaos journal``: read a run's journal, finished or not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def journal(
    file: Path = typer.Argument(..., help="A journal (JSON Lines) written by 'mlchaos run'.", show_default=False),
) -> None:
    """Print a readable summary of a journal, also of an unfinished one."""
    from rich.console import Console
    from rich.table import Table

    from mlchaos.engine.journal import read, summarize

    try:
        events = read(file)
    except OSError as exc:
        print(f"mlchaos journal: cannot read {file}: {exc.strerror or exc}")
        raise typer.Exit(2) from None
    if not events:
        print(f"mlchaos journal: {file}: no events")
        raise typer.Exit(2)
    s = summarize(events)
    t0 = events[0]["t"]
    c = Console(highlight=False)
    c.print(f"[bold]{s.get('title')}[/bold]  run {s.get('run_id')}")
    c.print(f"status: [bold]{s.get('status')}[/bold] — {s.get('reason')}")
    ft = Table("fault", "plugin", "injected", "removed", "targets")
    for f in s.get("faults", []):
        inj = f"+{f['injected_at'] - t0:.2f}s" if f.get("injected_at") else "never"
        rem = f"+{f['removed_at'] - t0:.2f}s" if f.get("removed_at") else ("NOT REMOVED" if f.get("injected_at") else "-")
        ft.add_row(str(f["name"]), str(f.get("plugin")), inj, rem, ", ".join(map(str, f.get("targets", []))))
    c.print(ft)
    pt = Table("probe", "role", "before", "during (breaches/evals)", "after")

    def cell(o: dict[str, Any] | None) -> str:
        if not o:
            return "-"
        mark = {True: "✓", False: "✗", None: "?"}[o.get("ok")]
        return f"{mark} {o.get('value')!r}"

    for p in s.get("probes", []):
        d = p.get("during", {})
        pt.add_row(str(p["name"]), str(p.get("role")), cell(p.get("before")),
                   f"{d.get('breaches', 0)}/{d.get('evaluations', 0)}", cell(p.get("after")))
    c.print(pt)
