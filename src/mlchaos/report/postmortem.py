"""A blameless experiment record in Markdown, written from a run's summary.

It follows the usual post-mortem shape (hypothesis, method, blast radius,
observations, verdict, follow-ups) so a team can paste it into its incident
or game-day log and review it like any other post-mortem.
"""

from __future__ import annotations

import time
from typing import Any

from mlchaos import fmt


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "–"


def _until(f: dict[str, Any], run_end: float | None) -> str:
    """When the fault stopped acting (:func:`~mlchaos.engine.records.fault_end`), saying so if it was never removed."""
    from mlchaos.engine.records import fault_end

    if f.get("injected_at") is None:
        return "–"
    end = fault_end(f.get("removed_at"), run_end)
    if end == float("inf"):
        return "– (never removed)"
    return _when(end) + (" (never removed: the run's end)" if f.get("removed_at") is None else "")


def postmortem(run: dict[str, Any]) -> str:
    cfg = run.get("config") or {}
    t = run.get("timing") or {}
    lines = [f"# Experiment record: {run.get('title')}", ""]
    if run.get("scenario"):
        lines += [f"Scenario `{run['scenario']}`, variant `{run.get('variant', '')}`.", ""]
    lines += [f"- Run: `{run.get('run_id')}`, {_when(t.get('start'))} → {_when(t.get('end'))} "
              f"({t.get('duration_s', 0):.1f} s), mlchaos {run.get('version', '?')}",
              f"- Verdict: **{run.get('status')}** (exit {run.get('exit_code')}) — {run.get('reason')}", "",
              "## Hypothesis", "", "The system stays within these tolerances before, during and after the fault:", ""]
    for p in run.get("probes", []):
        if p.get("role", "steady") == "steady":
            lines.append(f"- {p['name']} (`{p.get('probe', '')}`): {p.get('tolerance', {})}")
    aborts = [p for p in run.get("probes", []) if p.get("role") == "abort"]
    if aborts:
        lines += ["", "Abort when:"] + [f"- {p['name']}: {p.get('tolerance', {})}" for p in aborts]
    lines += ["", "## Method and blast radius", ""]
    for f in run.get("faults", []):
        lines.append(f"- **{f['name']}** (`{f.get('plugin')}`): planned {f.get('planned', {})}; applied "
                     f"{f.get('actual', {})} on {', '.join(map(str, f.get('targets', []))) or 'nothing'}; "
                     f"in place {_when(f.get('injected_at'))} → {_until(f, t.get('end'))}"
                     + (f"; the holder observed {f['observed']}" if f.get("observed") else ""))
    if cfg.get("load"):
        lines.append(f"- Load: {cfg['load']}")
    lines += ["", "## Observations", "", "| probe | before | during the faults | after |", "|---|---|---|---|"]
    units = fmt.journal_units(run.get("events") or [], run)
    for p in run.get("probes", []):
        d = p.get("during") or {}
        unit = units.get(str(p["name"]), "")

        def cell(o: dict[str, Any] | None, unit: str = unit) -> str:
            return "–" if not o else f"{'met' if o.get('ok') else 'NOT met'}: {fmt.quantity(o.get('value'), unit)}"

        lines.append(f"| {p['name']} | {cell(p.get('before'))} | {d.get('breaches', 0)} breach(es) in "
                     f"{d.get('evaluations', 0)} evaluations | {cell(p.get('after'))} |")
    lines += ["", "## Verdict", "", f"**{run.get('status')}**: {run.get('reason')}"]
    if run.get("decided_by"):
        lines.append(f"Decided by: {', '.join(run['decided_by'])}.")
    lines += ["", "## Follow-ups", ""]
    status = run.get("status")
    if status == "passed":
        lines += ["- Keep this experiment in the regular schedule (CI gate or game day) so the mitigation stays proven.",
                  "- Consider widening the blast radius or adding load next."]
    elif status in ("failed", "aborted"):
        lines += ["- Name the weakness the deviation shows and an owner for a mitigation (timeout, fallback, "
                  "readiness gate, validation gate).",
                  "- Re-run this same experiment after the mitigation to prove the fix."]
    else:
        lines += ["- The experiment produced no verdict on the system: fix the cause in the reason above "
                  "(baseline, target, permissions) and run it again."]
    return "\n".join(lines) + "\n"
