"""The experiment schema.

An experiment is validated in two passes.  The first checks the frame
(``ExperimentSpec`` below): titles, phases, timings, and that ``method``,
``steady_state``, ``abort`` and ``targets`` are lists/maps of objects.  The
second validates each of those objects against the ``Spec`` model of the
plugin it names (``fault: process-pause`` → that fault's ``Spec``), so the
engine never needs to know a plugin's fields, a third-party plugin gets the
same strictness and error positions as a built-in one, and validating a file
imports only the plugins it uses.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from mlchaos.plugin import CommandAction, StrictModel
from mlchaos.spec.types import Duration


class Phases(StrictModel):
    """How long each observation phase lasts."""

    baseline: Duration = Field(
        1.0, description="Observe the steady state this long before any fault; it must hold at the end."
    )
    settle: Duration = Field(
        0.0,
        description=(
            "If the steady state does not hold at the end of the baseline, keep watching up to this long "
            "(re-checking every second) before giving up with not-run. Shared machines stall; a settle "
            "window lets a system that was briefly disturbed reach steady state, and the journal records "
            "every failed check, so nothing is hidden. 0 (default): one check only."
        ),
    )
    fault: Duration | None = Field(
        None,
        description="Length of the fault phase; default: until the last fault's end (at + duration).",
    )
    recovery: Duration = Field(
        1.0, description="Observe this long after every fault is removed; the hypothesis must hold at the end."
    )


class StepSpec(CommandAction):
    """A ``command`` step in ``method``: a command mlchaos runs at a point of the run.

    It sits beside the faults (``- step: command``) because it is part of the
    method, and runs at one point: ``at`` (an offset in the fault phase, like a
    fault), ``when: fault-removed`` (after the fault named by ``of``, or after
    every fault is removed) or ``when: recovery`` (when the recovery phase
    begins; its observation time counts from the steps' end).  The key is
    ``when``, not ``on``: YAML 1.1 reads a bare ``on`` key as the boolean true.
    """

    step: Literal["command"] = Field(description="The kind of step; 'command' runs argv.")
    name: str | None = Field(None, description="Label used in the journal and report.")
    at: Duration | None = Field(
        None, description="Offset from the start of the fault phase, e.g. '5s' (default 0s when 'when' is not given)."
    )
    when: Literal["fault-removed", "recovery"] | None = Field(
        None, description="Run after fault removal ('fault-removed', see 'of') or when the recovery phase begins."
    )
    of: str | None = Field(
        None, description="With when: fault-removed, the name of the fault whose removal starts the step; "
        "default: after every fault is removed.",
    )

    @model_validator(mode="after")
    def _one_point(self) -> StepSpec:
        if self.at is not None and self.when is not None:
            raise ValueError("give 'at' or 'when', not both: a step runs at one point of the run")
        if self.of is not None and self.when != "fault-removed":
            raise ValueError("'of' names a fault for when: fault-removed only")
        if self.when is None and self.at is None:
            self.at = 0.0
        return self


class ExperimentSpec(StrictModel):
    """One experiment's frame: a hypothesis, a fault, a blast radius and an abort plan.

    Named ``ExperimentSpec`` because :class:`mlchaos.spec.experiment.Experiment` is what a user
    holds (this frame plus every plugin part validated); this model is its ``spec``."""

    # the JSON Schema's title stays what editors have been shown
    model_config = ConfigDict(**StrictModel.model_config, title="Experiment")

    title: str = Field(min_length=1, description="What this experiment proves, in one line.")
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    weight: float = Field(1.0, ge=0, description="Importance of this experiment in a suite's resilience score.")
    target: dict[str, Any] | None = Field(
        None, description="The system under test (shorthand for targets: {default: ...})."
    )
    targets: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Named systems under test; faults and probes refer to them by name."
    )
    load: dict[str, Any] | None = Field(None, description="Open-loop load driven during the whole run.")
    steady_state: list[dict[str, Any]] = Field(
        default_factory=list, description="Probes with tolerances: what normal looks like."
    )
    # keys of any type: a bare 'on' key is the boolean true in YAML 1.1, which the loader names as such
    method: list[dict[Any, Any]] = Field(
        default_factory=list,
        description="Faults, each with its offset ('at') and duration, and command steps ('step: command').",
    )
    abort: list[dict[str, Any]] = Field(
        default_factory=list, description="Conditions watched continuously; one tripping removes every fault."
    )
    phases: Phases = Field(default_factory=lambda: Phases())
    interval: Duration = Field(0.25, description="How often probes and abort conditions are evaluated.")
    max_duration: Duration = Field(300.0, description="Hard limit for the whole run; faults are removed at it.")
    lease_ttl: Duration = Field(
        5.0, description="Faults expire by themselves this long after the runner stops renewing them."
    )

    @field_validator("interval")
    @classmethod
    def _interval_positive(cls, v: float) -> float:
        if not 0.01 <= v <= 60:
            raise ValueError("interval must be between 10ms and 60s")
        return v

    @field_validator("lease_ttl")
    @classmethod
    def _ttl_positive(cls, v: float) -> float:
        if not 0.5 <= v <= 3600:
            raise ValueError("lease_ttl must be between 500ms and 1h")
        return v

    @field_validator("max_duration")
    @classmethod
    def _max_positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("max_duration must be positive")
        return v

    @model_validator(mode="after")
    def _one_target_form(self) -> ExperimentSpec:
        if self.target is not None:
            if "default" in self.targets:
                raise ValueError("give 'target' or a 'default' entry in 'targets', not both")
            self.targets = {"default": self.target, **self.targets}
        return self

    def fault_phase_length(self, fault_ends: list[float]) -> float:
        """The fault phase lasts ``phases.fault`` or until the last fault ends."""
        if self.phases.fault is not None:
            return self.phases.fault
        return max(fault_ends, default=0.0)
