"""One run summary type: what the runner ends a run with, what a journal cut short still yields.

A finished run's journal ends with a ``summary`` event built by
:func:`mlchaos.engine.summary.build_summary`; a journal cut short by
``kill -9`` has none, and :meth:`RunSummary.from_events` rebuilds what the
events show (``status: unfinished``).  Both come back as one
:class:`RunSummary`, so the report, ``mlchaos journal`` and the CLI read typed
fields with their defaults in one place instead of guarding every dict
access with ``.get(...) or {}``.

The JSON is unchanged: :meth:`RunSummary.to_dict` writes the keys each kind
of summary always had (a rebuilt one only those the events can tell), plus
whatever a caller added (``scenario``, ``variant``, ``expected``, the
journal's own ``t``/``event``...), kept in :attr:`RunSummary.extra`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

__all__ = ["During", "FaultSummary", "ProbeSummary", "RunSummary", "Timing"]


def _dict(v: Any) -> dict[str, Any]:
    return dict(v) if isinstance(v, Mapping) else {}


@dataclasses.dataclass
class During:
    """What one probe saw while the faults were in place."""

    evaluations: int = 0
    breaches: int = 0
    insufficient: int = 0
    untrusted: int = 0
    min: Any = None
    max: Any = None

    @classmethod
    def from_dict(cls, d: Any) -> During:
        d = _dict(d)
        return cls(int(d.get("evaluations") or 0), int(d.get("breaches") or 0), int(d.get("insufficient") or 0),
                   int(d.get("untrusted") or 0), d.get("min"), d.get("max"))


@dataclasses.dataclass
class ProbeSummary:
    name: str
    role: str | None = "steady"
    """``steady`` (the hypothesis) or ``abort``; None when a cut-short journal's events did not say."""
    probe: str = ""
    tolerance: Any = dataclasses.field(default_factory=dict)
    before: dict[str, Any] | None = None
    """The checkpoint before the faults: ``value``, ``ok``, ``reason`` (and ``trusted``, ``instrument``)."""
    after: dict[str, Any] | None = None
    during: During = dataclasses.field(default_factory=During)

    @property
    def held(self) -> bool:
        """Met before, never breached while a fault was in place, met after (the resilience score's rule)."""
        return bool((self.before or {}).get("ok")) and not self.during.breaches and bool((self.after or {}).get("ok"))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProbeSummary:
        return cls(name=str(d.get("name")), role=d.get("role", "steady"), probe=d.get("probe") or "",
                   tolerance=d.get("tolerance", {}), before=d.get("before") or None,
                   after=d.get("after") or None, during=During.from_dict(d.get("during")))

    def to_dict(self, *, partial: bool = False) -> dict[str, Any]:
        if partial:  # what a journal cut short can tell
            return {"name": self.name, "role": self.role, "before": self.before, "after": self.after,
                    "during": {"evaluations": self.during.evaluations, "breaches": self.during.breaches}}
        return {"name": self.name, "role": self.role, "probe": self.probe, "tolerance": self.tolerance,
                "before": self.before, "after": self.after, "during": dataclasses.asdict(self.during)}


@dataclasses.dataclass
class FaultSummary:
    name: str
    plugin: str | None = None
    injected_at: float | None = None
    removed_at: float | None = None
    targets: list[Any] = dataclasses.field(default_factory=list)
    planned: Any = dataclasses.field(default_factory=dict)
    """What the fault meant to hit, as its plugin reported it (written back as it came)."""
    actual: Any = dataclasses.field(default_factory=dict)
    observed: Any = dataclasses.field(default_factory=dict)
    error: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FaultSummary:
        return cls(name=str(d.get("name")), plugin=d.get("plugin"), injected_at=d.get("injected_at"),
                   removed_at=d.get("removed_at"), targets=list(d.get("targets") or []),
                   planned=d.get("planned", {}), actual=d.get("actual", {}),
                   observed=d.get("observed", {}), error=d.get("error"))

    def to_dict(self, *, partial: bool = False) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # no deep copy: plugins' data as is
        if partial:
            return {k: out[k] for k in ("name", "plugin", "injected_at", "removed_at", "targets")}
        return out


@dataclasses.dataclass
class Timing:
    start: float | None = None
    end: float | None = None
    duration_s: float = 0.0
    t0: float | None = None
    phases: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any) -> Timing:
        d = _dict(d)
        return cls(d.get("start"), d.get("end"), float(d.get("duration_s") or 0.0), d.get("t0"),
                   _dict(d.get("phases")))


_FULL = ("run_id", "title", "source", "status", "exit_code", "reason", "decided_by", "weight", "version",
         "timing", "probes", "faults", "evidence", "instruments", "load_validity", "removal_latency_s",
         "config", "load")
_PARTIAL = ("title", "run_id", "status", "reason", "faults", "probes", "unfinished")
_KNOWN = frozenset(_FULL) | {"settle", "unfinished"}


@dataclasses.dataclass
class RunSummary:
    """A run's summary, finished (from the runner) or rebuilt from the events of a journal cut short."""

    status: str
    reason: str | None = None
    title: str | None = None
    run_id: str | None = None
    source: str | None = None
    exit_code: int | None = None
    decided_by: list[str] = dataclasses.field(default_factory=list)
    weight: float = 1.0
    version: str | None = None
    timing: Timing = dataclasses.field(default_factory=Timing)
    probes: list[ProbeSummary] = dataclasses.field(default_factory=list)
    faults: list[FaultSummary] = dataclasses.field(default_factory=list)
    evidence: Any = None
    instruments: dict[str, Any] = dataclasses.field(default_factory=dict)
    load_validity: dict[str, Any] | None = None
    removal_latency_s: float | None = None
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    load: Any = None
    settle: dict[str, Any] | None = None
    unfinished: bool = False
    """Rebuilt from a journal with no ``summary`` event: only what the events tell is known."""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Keys a caller added (``scenario``, ``variant``, ``expected``, ``events``...), written back as they were."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunSummary:
        weight = d.get("weight", 1.0)
        return cls(
            status=str(d.get("status")), reason=d.get("reason"), title=d.get("title"), run_id=d.get("run_id"),
            source=d.get("source"), exit_code=d.get("exit_code"), decided_by=list(d.get("decided_by") or []),
            weight=float(weight) if weight is not None else 0.0, version=d.get("version"),
            timing=Timing.from_dict(d.get("timing")),
            probes=[ProbeSummary.from_dict(p) for p in d.get("probes") or []],
            faults=[FaultSummary.from_dict(f) for f in d.get("faults") or []],
            evidence=d.get("evidence"), instruments=_dict(d.get("instruments")),
            load_validity=d.get("load_validity"), removal_latency_s=d.get("removal_latency_s"),
            config=_dict(d.get("config")), load=d.get("load"), settle=d.get("settle"),
            unfinished=bool(d.get("unfinished")), extra={k: v for k, v in d.items() if k not in _KNOWN},
        )

    @classmethod
    def from_events(cls, events: list[dict[str, Any]]) -> RunSummary:
        """The journal's own ``summary`` event, or, for a journal cut short by ``kill -9``, one rebuilt from its events."""
        final = next((e for e in reversed(events) if e.get("event") == "summary"), None)
        if final is not None:
            return cls.from_dict(final)
        start = next((e for e in events if e.get("event") == "run-start"), {})
        phases = [e["phase"] for e in events if e.get("event") == "phase"]
        faults: dict[str, FaultSummary] = {}
        probes: dict[str, ProbeSummary] = {}
        for e in events:
            kind = e.get("event")
            if kind == "fault-inject":
                faults[e["fault"]] = FaultSummary(e["fault"], e.get("plugin"), e["t"], None, e.get("targets", []))
            elif kind == "fault-remove" and e.get("fault") in faults:
                faults[e["fault"]].removed_at = e["t"]
            elif kind == "probe":
                p = probes.setdefault(e["probe"], ProbeSummary(e["probe"], role=e.get("role")))
                if e.get("checkpoint") in ("before", "after"):
                    setattr(p, e["checkpoint"], {"value": e.get("value"), "ok": e.get("ok"), "reason": e.get("reason")})
                elif e.get("during"):
                    p.during.evaluations += 1
                    p.during.breaches += e.get("ok") is False
        where = phases[-1] if phases else "none"
        return cls(status="unfinished", title=start.get("title"), run_id=start.get("run_id"),
                   reason=f"journal ends in phase {where} (the runner stopped before its verdict)",
                   faults=list(faults.values()), probes=list(probes.values()), unfinished=True)

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-able data, in the shape the journal and ``summary.json`` have always had."""
        partial = self.unfinished and self.version is None  # rebuilt here, not a runner's summary marked so
        values: dict[str, Any] = {
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
            "timing": dataclasses.asdict(self.timing),
            "probes": [p.to_dict(partial=partial) for p in self.probes],
            "faults": [f.to_dict(partial=partial) for f in self.faults],
        }
        out = {k: values[k] for k in (_PARTIAL if partial else _FULL)}
        if self.settle is not None:
            out["settle"] = self.settle
        return {**out, **self.extra}
