"""A blameless experiment record in Markdown, written from a run's summary.

It follows the usual post-mortem shape (hypothesis, method, blast radius,
observations, verdict, follow-ups) so a team can paste it into its incident
or game-day log and review it like any other post-mortem.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from mlchaos import fmt
from mlchaos.engine.runsummary import FaultSummary, RunSummary
from mlchaos.report.llm import llm_line


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "–"


def _until(f: FaultSummary, run_end: float | None) -> str:
    """When the fault stopped acting (:func:`~mlchaos.engine.records.fault_end`), saying so if it was never removed."""
    from mlchaos.engine.records import fault_end

    if f.injected_at is None:
        return "–"
    end = fault_end(f.removed_at, run_end)
    if end == float("inf"):
        return "– (never removed)"
    return _when(end) + (" (never removed: the run's end)" if f.removed_at is None else "")


def postmortem(run: RunSummary | Mapping[str, Any]) -> str:
    s = run if isinstance(run, RunSummary) else RunSummary.from_dict(run)
    cfg, t, x = s.config, s.timing, s.extra
    lines = [f"# Experiment record: {s.title}", ""]
    if x.get("scenario"):
        lines += [f"Scenario `{x['scenario']}`, variant `{x.get('variant', '')}`.", ""]
    lines += [f"- Run: `{s.run_id}`, {_when(t.start)} → {_when(t.end)} "
              f"({t.duration_s:.1f} s), mlchaos {s.version or '?'}",
              f"- Verdict: **{s.status}** (exit {s.exit_code}) — {s.reason}", "",
              "## Hypothesis", "", "The system stays within these tolerances before, during and after the fault:", ""]
    for p in s.probes:
        if p.role == "steady":
            lines.append(f"- {p.name} (`{p.probe}`): {p.tolerance}")
    aborts = [p for p in s.probes if p.role == "abort"]
    if aborts:
        lines += ["", "Abort when:"] + [f"- {p.name}: {p.tolerance}" for p in aborts]
    lines += ["", "## Method and blast radius", ""]
    for f in s.faults:
        lines.append(f"- **{f.name}** (`{f.plugin}`): planned {f.planned}; applied "
                     f"{f.actual} on {', '.join(map(str, f.targets)) or 'nothing'}; "
                     f"in place {_when(f.injected_at)} → {_until(f, t.end)}"
                     + (f"; the holder observed {f.observed}" if f.observed else ""))
    if cfg.get("load"):
        lines.append(f"- Load: {cfg['load']}")
    lines += ["", "## Observations", "", "| probe | before | during the faults | after |", "|---|---|---|---|"]
    units = fmt.journal_units(x.get("events") or [], s.to_dict())
    for p in s.probes:
        unit = units.get(p.name, "")

        def cell(o: dict[str, Any] | None, unit: str = unit) -> str:
            return "–" if not o else f"{'met' if o.get('ok') else 'NOT met'}: {fmt.quantity(o.get('value'), unit)}"

        lines.append(f"| {p.name} | {cell(p.before)} | {p.during.breaches} breach(es) in "
                     f"{p.during.evaluations} evaluations | {cell(p.after)} |")
    if (llm := llm_line(s)) is not None:  # an LLM load: the token-level figures of the whole run
        lines += ["", llm]
    lines += ["", "## Verdict", "", f"**{s.status}**: {s.reason}"]
    if s.decided_by:
        lines.append(f"Decided by: {', '.join(s.decided_by)}.")
    lines += ["", "## Follow-ups", ""]
    status = s.status
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
