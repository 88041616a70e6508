"""``mlchaos journal``: read a run's journal, finished or not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def summarize(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Rebuild a summary from events alone, so a journal cut short by ``kill -9`` still reads."""
    start = next((e for e in events if e.get("event") == "run-start"), {})
    final = next((e for e in reversed(events) if e.get("event") == "summary"), None)
    if final is not None:
        return final
    phases = [e["phase"] for e in events if e.get("event") == "phase"]
    faults: dict[str, dict[str, Any]] = {}
    for e in events:
        if e.get("event") == "fault-inject":
            faults[e["fault"]] = {"name": e["fault"], "plugin": e.get("plugin"), "injected_at": e["t"],
                                  "removed_at": None, "targets": e.get("targets", [])}
        elif e.get("event") == "fault-remove" and e.get("fault") in faults:
            faults[e["fault"]]["removed_at"] = e["t"]
    probes: dict[str, dict[str, Any]] = {}
    for e in events:
        if e.get("event") != "probe":
            continue
        p = probes.setdefault(e["probe"], {"name": e["probe"], "role": e.get("role"), "before": None, "after": None,
                                           "during": {"evaluations": 0, "breaches": 0}})
        if e.get("checkpoint") in ("before", "after"):
            p[e["checkpoint"]] = {"value": e.get("value"), "ok": e.get("ok"), "reason": e.get("reason")}
        elif e.get("during"):
            p["during"]["evaluations"] += 1
            p["during"]["breaches"] += e.get("ok") is False
    return {"title": start.get("title"), "run_id": start.get("run_id"), "status": "unfinished",
            "reason": f"journal ends in phase {phases[-1] if phases else 'none'} (the runner stopped before its verdict)",
            "faults": list(faults.values()), "probes": list(probes.values()), "unfinished": True}


def journal(
    file: Path = typer.Argument(..., help="A journal (JSON Lines) written by 'mlchaos run'.", show_default=False),
) -> None:
    """Print a readable summary of a journal, also of an unfinished one."""
    from rich.console import Console
    from rich.table import Table

    from mlchaos.engine.journal import read

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
