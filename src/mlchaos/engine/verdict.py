"""Statuses, exit codes and the verdict: a pure function of the run's records.

The verdict is deliberately pessimistic.  ``passed`` needs, each from a
trustworthy instrument: the baseline met; every fault really injected and
really hitting something; for every steady-state probe at least one
measurement completed while a fault was in place and no breach among them;
the hypothesis met again after recovery; and a load generator that judged its
own load VALID.  Anything less is another status, with the reason:

* a breach measured by a trustworthy instrument while a fault was in place
  (or by a window reaching back into one) → ``failed``;
* too little trustworthy evidence to decide either way (load generator late,
  runner starved, no answer completed inside the fault window, a breach seen
  only through an untrustworthy instrument) → ``inconclusive``: never a pass,
  never a fail caused by the instrument rather than the system.

:func:`judge` reads only :class:`~mlchaos.engine.records.RunRecords`, so every
rule is tested in-process in milliseconds (tests/engine/test_verdict_rules.py).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from mlchaos.engine.records import (
    Evaluation,
    ProbeRecord,
    RunRecords,
    counts_as_breach,
    is_fault_evidence,
    relation,
)
from mlchaos.engine.tolerance import tripped, within

__all__ = ["EXIT_CODES", "Status", "Verdict", "judge", "tripped", "within"]


class Status(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    INVALID = "invalid"
    ABORTED = "aborted"
    NOT_RUN = "not-run"
    ERRORED = "errored"
    INCONCLUSIVE = "inconclusive"
    REFUSED = "refused"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self]


EXIT_CODES: dict[Status, int] = {
    Status.PASSED: 0,
    Status.FAILED: 1,
    Status.INVALID: 2,
    Status.ABORTED: 3,
    Status.NOT_RUN: 4,
    Status.ERRORED: 5,
    Status.INCONCLUSIVE: 6,
    Status.REFUSED: 7,
}


@dataclasses.dataclass
class Verdict:
    status: Status
    reason: str
    decided_by: list[str] = dataclasses.field(default_factory=list)
    evidence: dict[str, Any] = dataclasses.field(default_factory=dict)


def _rel_time(t: float, t0: float) -> str:
    return f"+{t - t0:.1f} s"


def _where(ev: Evaluation, windows: list[tuple[float, float]]) -> str:
    """Where a breach was measured, relative to the fault windows, in words."""
    if relation(ev, windows) != "straddles-removal":
        return "while the fault was in place"
    m0, m1 = ev.span
    removed = max((b for a, b in windows if a < m1 and b > m0), default=m1)
    after = m1 - removed
    if ev.window > 0:
        return (f"{after:.1f} s after the fault was removed "
                f"(its {ev.window:g} s window reaches back into the fault)")
    return f"sent while the fault was in place, answered {after:.1f} s after it was removed"


def _evidence(records: RunRecords, windows: list[tuple[float, float]]) -> dict[str, Any]:
    """Per steady probe: how much of each phase's evidence was trustworthy (the report's table)."""
    out: dict[str, Any] = {}
    for pr in records.probes:
        if pr.role != "steady":
            continue
        cont = [e for e in pr.evaluations if e.checkpoint is None]
        faulty = [e for e in cont if relation(e, windows) in ("during", "straddles-removal")]
        out[pr.label] = {
            "before": _checkpoint_state(pr.before),
            "fault_window": {
                "evaluations": len(faulty),
                "evidence": sum(is_fault_evidence(e, windows) for e in faulty),
                "untrusted": sum(not e.trusted for e in faulty),
                "insufficient": sum(e.ok is None for e in faulty),
                "breaches": sum(counts_as_breach(e, windows) for e in faulty),
                "untrusted_breaches": sum(e.ok is False and not e.trusted for e in faulty),
                "answered_after_removal": sum(e.window == 0 and relation(e, windows) == "straddles-removal"
                                              for e in faulty),
            },
            "after": _checkpoint_state(pr.after),
        }
    return out


def _checkpoint_state(ev: Evaluation | None) -> str:
    if ev is None:
        return "missing"
    if not ev.trusted:
        return "untrusted"
    return {True: "met", False: "breached", None: "insufficient"}[ev.ok]


def _steady(records: RunRecords) -> list[ProbeRecord]:
    return [p for p in records.probes if p.role == "steady"]


def judge(records: RunRecords) -> Verdict:
    """The run's status, its reason, the probes that decided it and the evidence table."""
    windows = records.fault_windows(end=records.phase_times.get("recovery", [None])[0])
    evidence = _evidence(records, windows)

    def v(status: Status, reason: str, decided_by: list[str] | None = None) -> Verdict:
        return Verdict(status, reason, decided_by or [], evidence)

    if records.refused is not None:
        return v(Status.REFUSED, records.refused)
    if records.errors:
        return v(Status.ERRORED, "; ".join(records.errors))
    if records.baseline == "breached":
        return v(Status.NOT_RUN, f"baseline steady state not met: {records.baseline_reason}; no fault was injected",
                 [p.label for p in _steady(records) if p.before is not None and p.before.ok is not True])
    if records.baseline == "untrusted":
        return v(Status.INCONCLUSIVE, f"baseline could not be measured with a trustworthy instrument: "
                 f"{records.baseline_reason}; no fault was injected",
                 [p.label for p in _steady(records) if p.before is not None and not p.before.trusted])
    if records.stop is not None:
        return v(Status(records.stop[0]), records.stop[1], [p.label for p in records.probes if p.role == "abort"
                 and any(e.ok is False for e in p.evaluations)])
    if not records.reached_faults:
        return v(Status.ERRORED, "run ended without a verdict")
    for fr in records.faults:
        if fr.injected_at is None:
            return v(Status.ERRORED, f"fault {fr.label} was never injected")
        if not fr.targets:
            return v(Status.ERRORED, f"fault {fr.label} hit no target")
        affected = fr.observed.get("affected")
        if isinstance(affected, int | float) and affected <= 0:
            seen = fr.observed.get("seen", "?")
            return v(Status.ERRORED, f"fault {fr.label} affected nothing ({affected} of {seen}): no evidence")
    steady = _steady(records)
    breached = [(p, [e for e in p.evaluations if counts_as_breach(e, windows)]) for p in steady]
    breached = [(p, b) for p, b in breached if b]
    if breached:
        p, bs = breached[0]
        first = bs[0]
        n = sum(relation(e, windows) in ("during", "straddles-removal") for e in p.evaluations if e.checkpoint is None)
        return v(Status.FAILED,
                 f"{p.label} deviated during the fault window: {first.reason} from "
                 f"{_rel_time(first.t_end, records.t0)}, {_where(first, windows)} "
                 f"({len(bs)} of {n} evaluations breached)",
                 [q.label for q, _ in breached])
    after_bad = [p for p in steady if p.after is not None and p.after.trusted and p.after.ok is False]
    if after_bad:
        why = "; ".join(f"{p.label}: {p.after.reason or 'not met'}" for p in after_bad if p.after)
        return v(Status.FAILED, f"hypothesis did not hold after recovery: {why}", [p.label for p in after_bad])
    missing: list[str] = []
    undecided: list[str] = []
    for p in steady:
        fw = evidence[p.label]["fault_window"]
        n_before = len(missing)
        if fw["untrusted_breaches"]:
            missing.append(f"fault window: {p.label} breached {fw['untrusted_breaches']} time(s) "
                           f"only while its instrument was untrustworthy ({_untrusted_why(p)})")
        elif records.faults and not fw["evidence"]:
            missing.append(f"fault window: {p.label} has no trustworthy measurement completed while the fault "
                           f"was in place ({_shortfall(fw, p)})")
        if p.after is None or not p.after.trusted or p.after.ok is None:
            state = _checkpoint_state(p.after)
            detail = _untrusted_why(p, [p.after]) if state == "untrusted" else (p.after.reason if p.after else "")
            missing.append(f"recovery: {p.label} {state}" + (f" ({detail})" if detail else ""))
        if len(missing) > n_before:
            undecided.append(p.label)
    if records.load_validity is not None and not records.load_validity[0]:
        missing.append(f"load: the generator judged its load INVALID ({records.load_validity[1]})")
    if missing:
        return v(Status.INCONCLUSIVE, "the hypothesis could not be decided: " + "; ".join(missing), undecided)
    return v(Status.PASSED, "hypothesis held before, during and after the faults (trustworthy evidence in every phase)")


def _shortfall(fw: dict[str, Any], p: ProbeRecord) -> str:
    parts = [f"{fw['evaluations']} evaluations reached into it"]
    if fw["untrusted"]:
        parts.append(f"{fw['untrusted']} untrustworthy: {_untrusted_why(p)}")
    if fw["insufficient"]:
        parts.append(f"{fw['insufficient']} with insufficient data")
    if fw["answered_after_removal"]:
        parts.append(f"{fw['answered_after_removal']} answered only after the fault was removed")
    return ", ".join(parts)


def _untrusted_why(p: ProbeRecord, evs: list[Evaluation | None] | None = None) -> str:
    whys = [str(e.instrument.get("why")) for e in (evs if evs is not None else p.evaluations)
            if e is not None and not e.trusted and e.instrument.get("why")]
    return whys[0] if whys else "instrument untrustworthy"
