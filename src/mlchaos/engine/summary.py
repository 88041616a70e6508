"""The run summary: the one JSON object a run ends with (journal, ``--json``, reports).

Built from the runner's records and the verdict, never recomputed elsewhere,
as a :class:`~mlchaos.engine.runsummary.RunSummary`: the report and
``mlchaos journal`` read the same type back from the journal.  Besides
the verdict it carries what the verdict was judged on, so a reader can check
it: per probe, the evidence in each phase and how much of it came from an
untrustworthy instrument; the load generator's own VALID/INVALID judgement;
the instruments' worst readings.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from mlchaos import __version__
from mlchaos.engine.records import Evaluation, ProbeRecord, relation
from mlchaos.engine.runsummary import During, FaultSummary, ProbeSummary, RunSummary, Timing

if TYPE_CHECKING:
    from mlchaos.engine.runner import Runner
    from mlchaos.engine.verdict import Verdict


def as_dict(obj: Any) -> Any:
    """A report object (dataclass, pydantic model, or one with ``to_dict``) as plain JSON-able data."""
    if obj is None:
        return None
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    return obj


def _checkpoint(ev: Evaluation | None) -> dict[str, Any] | None:
    if ev is None:
        return None
    return {"value": ev.value, "ok": ev.ok, "reason": ev.reason or None, "trusted": ev.trusted,
            "instrument": ev.instrument if not ev.trusted else None}


def probe_summary(pr: ProbeRecord, windows: list[tuple[float, float]]) -> ProbeSummary:
    """One probe: its tolerance, checkpoints, and what it saw while the faults were in place."""
    during = [e for e in pr.evaluations
              if e.checkpoint is None and relation(e, windows) in ("during", "straddles-removal")]
    nums = [e.value for e in during if isinstance(e.value, int | float) and not isinstance(e.value, bool)]
    return ProbeSummary(
        name=pr.label, role=pr.role, probe=pr.probe, tolerance=pr.tolerance,
        before=_checkpoint(pr.before), after=_checkpoint(pr.after),
        during=During(
            evaluations=len(during),
            breaches=sum(1 for e in during if e.ok is False and e.trusted),
            insufficient=sum(1 for e in during if e.ok is None),
            untrusted=sum(1 for e in during if not e.trusted),
            min=min(nums) if nums else None, max=max(nums) if nums else None,
        ),
    )


def instruments(probes: list[ProbeRecord]) -> dict[str, Any]:
    """Worst instrument readings of the run, and how many evaluations were not trustworthy."""
    evs = [e for p in probes for e in p.evaluations]
    untrusted = [e for e in evs if not e.trusted]

    def worst(key: str) -> float | None:
        vals = [float(e.instrument[key]) for e in evs if isinstance(e.instrument.get(key), int | float)]
        return max(vals) if vals else None

    return {
        "evaluations": len(evs), "untrusted": len(untrusted),
        "worst": {"runner_stall_s": worst("stall"), "probe_delay_s": worst("delay"), "steal": worst("steal"),
                  "load_lag_p99_s": worst("lag_p99")},
        "why": sorted({str(e.instrument.get("why")) for e in untrusted if e.instrument.get("why")})[:5],
    }


def build_run_summary(runner: Runner, v: Verdict, t_start: float, t_end: float) -> RunSummary:
    """The run's :class:`~mlchaos.engine.runsummary.RunSummary`, from its records and verdict."""
    records = runner.records()
    windows = records.fault_windows(end=t_end)
    events = runner.journal.events
    summary = RunSummary(
        run_id=runner.run_id, title=runner.spec.title, source=runner.experiment.source,
        status=v.status.value, exit_code=v.status.exit_code, reason=v.reason,
        decided_by=v.decided_by, weight=runner.spec.weight, version=__version__,
        timing=Timing(start=t_start, end=t_end, duration_s=round(t_end - t_start, 6),
                      t0=records.t0, phases=dict(runner.phase_times)),
        probes=[probe_summary(pr, windows) for pr in records.probes],
        faults=[FaultSummary(
            name=fr.label, plugin=fr.plugin, injected_at=fr.injected_at, removed_at=fr.removed_at,
            targets=fr.applied.targets if fr.applied else [],
            planned=(fr.applied.planned if fr.applied and fr.applied.planned else fr.planned),
            actual=fr.applied.actual if fr.applied else {}, observed=fr.observed, error=fr.error,
        ) for fr in runner.faults],
        evidence=v.evidence,
        instruments=instruments(records.probes),
        load_validity=({"valid": records.load_validity[0], "reason": records.load_validity[1] or None}
                       if records.load_validity is not None else None),
        config=runner.effective_config(),
        load=as_dict(runner._load_report),
    )
    unsettled = [e for e in events if e.get("event") == "baseline-unsettled"]
    if unsettled:
        settled = next((e for e in events if e.get("event") == "baseline-settled"), None)
        summary.settle = {"failed_checks": len(unsettled), "settled": settled is not None,
                          "waited_s": settled["waited"] if settled else unsettled[-1]["waited"]}
    aborted = next((e for e in events if e.get("event") == "aborted"), None)
    if aborted:
        summary.removal_latency_s = aborted.get("removal_latency_s")
    return summary


def build_summary(runner: Runner, v: Verdict, t_start: float, t_end: float) -> dict[str, Any]:
    """:func:`build_run_summary` as the JSON the journal's ``summary`` event and ``RunResult.summary`` carry."""
    return build_run_summary(runner, v, t_start, t_end).to_dict()
