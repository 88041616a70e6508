"""``mlchaos journal``: read a run's journal, finished or not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from mlchaos.cli._common import console, fail_json


def journal(
    file: Path = typer.Argument(..., help="A journal (JSON Lines) written by 'mlchaos run'.", show_default=False),
    json_out: bool = typer.Option(False, "--json", help="Print the summary (raw values) as JSON on stdout."),
) -> None:
    """Print a readable summary of a journal, also of an unfinished one."""
    from rich.markup import escape
    from rich.table import Table

    from mlchaos import fmt
    from mlchaos.engine.journal import read, summarize
    from mlchaos.report.llm import llm_line

    try:
        events = read(file)
    except OSError as exc:
        raise fail_json(json_out, f"journal: cannot read {file}: {exc.strerror or exc}", file=str(file)) from None
    if not events:
        raise fail_json(json_out, f"journal: {file}: no events", file=str(file))
    s = summarize(events)
    if json_out:
        print(json.dumps(s, default=str))
        return
    units = fmt.journal_units(events, s)
    t0 = events[0]["t"]
    c = console()
    c.print(f"[bold]{escape(str(s.get('title')))}[/bold]  run {s.get('run_id')}")
    c.print(f"status: [bold]{s.get('status')}[/bold] — {escape(str(s.get('reason')))}")
    lv = s.get("load_validity")
    if lv is not None:
        c.print("load: VALID" if lv.get("valid") else
                f"load: INVALID ({escape(str(lv.get('reason')))}): it cannot support a pass")
    if (llm := llm_line(s)) is not None:  # an LLM load: the same line as at the end of 'mlchaos run'
        c.print(escape(llm))
    inst = s.get("instruments") or {}
    if inst.get("untrusted"):
        c.print(f"instruments: {inst['untrusted']} of {inst['evaluations']} evaluations untrustworthy, "
                f"evidence of nothing ({escape('; '.join(inst.get('why') or []))})")
    ft = Table("fault", "plugin", "injected", "removed", "targets")
    for f in s.get("faults", []):
        inj = f"+{f['injected_at'] - t0:.2f}s" if f.get("injected_at") else "never"
        rem = f"+{f['removed_at'] - t0:.2f}s" if f.get("removed_at") else ("NOT REMOVED" if f.get("injected_at") else "-")
        ft.add_row(str(f["name"]), str(f.get("plugin")), inj, rem, ", ".join(map(str, f.get("targets", []))))
    c.print(ft)
    pt = Table("probe", "role", "tolerance", "before", "during (breaches/evals, untrusted)", "after")

    for p in s.get("probes", []):
        unit = units.get(str(p["name"]), "")

        def cell(o: dict[str, Any] | None, unit: str = unit) -> str:
            if not o:
                return "-"
            mark = {True: "✓", False: "✗", None: "?"}[o.get("ok")]
            return f"{mark} {fmt.quantity(o.get('value'), unit)}"

        d = p.get("during", {})
        pt.add_row(str(p["name"]), str(p.get("role")), fmt.tolerance(p.get("tolerance") or {}, unit) or "-",
                   cell(p.get("before")),
                   f"{d.get('breaches', 0)}/{d.get('evaluations', 0)}" + (f", {d['untrusted']}" if d.get("untrusted") else ""),
                   cell(p.get("after")))
    c.print(pt)
