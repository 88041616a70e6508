"""Run records: what a run measured and did, typed, so the verdict can be a pure function of them.

The runner only orchestrates; everything the verdict needs ends up here:
probe evaluations with the span of time each measurement describes and the
health of the instrument that took it, fault windows with their inject and
remove times, the load generator's own validity, errors and stop requests.
:func:`mlchaos.engine.verdict.judge` reads nothing else, which is what lets
the verdict rules be tested in milliseconds with no process and no sleep.

Time attribution is exact and lives here, in one place.  An evaluation
describes a *span* of time: ``[t_end - window, t_end]`` for a windowed probe
(it summarises what finished in its window), ``[t, t_end]`` for a point probe
(a request sent at ``t`` and answered at ``t_end``).  How that span relates to
the union of the fault windows decides what it is evidence of:

* ``during``: the measurement completed while a fault was in place;
* ``straddles-removal``: it completed after a removal but reaches back into a
  fault (a window still covering the fault, or a request sent under the fault
  and answered after it was removed).  A breach there is a fault-window breach,
  labelled so; a pass there is evidence only for a windowed probe, whose
  window really contains what finished under the fault;
* ``before`` / ``after`` / ``between``: no part of it lay inside a fault.
"""

from __future__ import annotations

import dataclasses
from typing import Any

Relation = str  # "before" | "during" | "straddles-removal" | "after" | "between"


def fault_end(removed_at: float | None, run_end: float | None) -> float:
    """When a fault stopped acting: the one rule the verdict, the summary and the report share.

    Its removal time; a fault never removed acted until the run's end (for a
    run cut short by a crash, the last thing its journal recorded); with no
    end known yet (the run is still going) it is still acting: ``inf``.
    A removal at t = 0.0 is a removal (only ``None`` means "never").
    """
    if removed_at is not None:
        return float(removed_at)
    return float(run_end) if run_end is not None else float("inf")


@dataclasses.dataclass
class Evaluation:
    """One probe evaluation: its value, what it is evidence of, and whether its instrument could be trusted."""

    t: float
    """Wall-clock time the evaluation started (``time.time()``)."""
    t_end: float
    """Wall-clock time its answer arrived."""
    window: float
    """Seconds the measurement summarises (0 for a point probe: one request, one answer)."""
    phase: str
    value: Any
    ok: bool | None
    """True: met the tolerance; False: breached it (or the probe failed); None: insufficient data."""
    reason: str = ""
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)
    trusted: bool = True
    """False when an instrument was not trustworthy (load generator late, runner starved, CPU stolen)."""
    instrument: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The instrument readings behind ``trusted`` (lag, scheduling delay, steal) and ``why`` when untrusted."""
    checkpoint: str | None = None
    """"before" / "after" for the phase checkpoints, None for the continuous evaluations."""
    exact: Any = None
    """The value as an exact fraction (:class:`fractions.Fraction`) when the probe counted it."""

    @property
    def span(self) -> tuple[float, float]:
        if self.window > 0:
            return (self.t_end - self.window, self.t_end)
        return (self.t, self.t_end)


@dataclasses.dataclass
class ProbeRecord:
    label: str
    role: str  # "steady" | "abort"
    probe: str
    tolerance: dict[str, Any]
    latency_bound: float | None = None
    evaluations: list[Evaluation] = dataclasses.field(default_factory=list)
    before: Evaluation | None = None
    after: Evaluation | None = None


@dataclasses.dataclass
class FaultRecord:
    label: str
    plugin: str
    injected_at: float | None = None
    removed_at: float | None = None
    targets: list[str] = dataclasses.field(default_factory=list)
    observed: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: str | None = None


@dataclasses.dataclass
class RunRecords:
    """Everything the verdict may be judged on."""

    t0: float
    """The run's own clock origin (the journal's first event): times in messages are ``+s`` from it."""
    probes: list[ProbeRecord] = dataclasses.field(default_factory=list)
    faults: list[FaultRecord] = dataclasses.field(default_factory=list)
    phase_times: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    errors: list[str] = dataclasses.field(default_factory=list)
    stop: tuple[str, str] | None = None
    """(status, reason) of the first stop request (abort condition, signal, max_duration, 'mlchaos stop')."""
    baseline: str | None = None
    """None: baseline met; "breached": not met by trustworthy evidence; "untrusted": could not be measured."""
    baseline_reason: str = ""
    reached_faults: bool = False
    load_validity: tuple[bool, str] | None = None
    refused: str | None = None

    def fault_windows(self, end: float | None = None) -> list[tuple[float, float]]:
        """Merged ``[inject, remove]`` intervals; a fault never removed runs to ``end`` (or forever)."""
        raw = sorted((f.injected_at, fault_end(f.removed_at, end or None))
                     for f in self.faults if f.injected_at is not None)
        merged: list[tuple[float, float]] = []
        for a, b in raw:
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        return merged


def relation(ev: Evaluation, windows: list[tuple[float, float]]) -> Relation:
    """How an evaluation's measurement relates to the fault windows (see the module docstring)."""
    m0, m1 = ev.span
    if not windows:
        return "before"
    if any(a <= m1 <= b for a, b in windows):
        return "during"
    if any(m0 < b and m1 > a for a, b in windows):
        return "straddles-removal"
    if m1 < windows[0][0]:
        return "before"
    if m0 > windows[-1][1]:
        return "after"
    return "between"


def is_fault_evidence(ev: Evaluation, windows: list[tuple[float, float]]) -> bool:
    """May this evaluation count as trustworthy evidence that the hypothesis held under the fault?"""
    if not ev.trusted or ev.ok is None or ev.checkpoint is not None:
        return False
    rel = relation(ev, windows)
    return rel == "during" or (rel == "straddles-removal" and ev.window > 0)


def counts_as_breach(ev: Evaluation, windows: list[tuple[float, float]]) -> bool:
    """A trustworthy breach measured (wholly or partly) while a fault was in place."""
    return (ev.ok is False and ev.trusted and ev.checkpoint is None
            and relation(ev, windows) in ("during", "straddles-removal"))
