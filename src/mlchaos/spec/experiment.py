"""The experiment a user holds: what ``load_file`` returns and ``run_experiment`` takes.

Its frame (title, phases, timings) is the pydantic :class:`~mlchaos.spec.model.ExperimentSpec`
in :attr:`Experiment.spec`; its targets, faults and probes are each their plugin's own
validated ``Spec``.  It is a plain dataclass, not a model: it is only ever built by the
loader after every part has passed validation, so nothing here re-checks anything.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mlchaos.spec.errors import SpecError
from mlchaos.spec.model import ExperimentSpec

__all__ = ["Experiment"]


@dataclasses.dataclass
class Experiment:
    """An experiment whose every part was validated against its plugin's model."""

    spec: ExperimentSpec
    targets: dict[str, Any]
    faults: list[Any]
    steady_state: list[Any]
    abort: list[Any]
    load: Any | None
    source: str
    raw: dict[str, Any]
    #: Deprecation notes (an old spelling was used): printed by ``validate`` and ``run``, never fatal.
    notes: list[SpecError] = dataclasses.field(default_factory=list)
    #: The ``command`` steps of ``method`` (:class:`~mlchaos.spec.model.StepSpec`), in file order.
    steps: list[Any] = dataclasses.field(default_factory=list)

    @property
    def experiment(self) -> ExperimentSpec:
        """The old name of :attr:`spec` (``experiment.experiment.title`` read badly), kept working."""
        return self.spec

    @property
    def title(self) -> str:
        return self.spec.title

    def fault_windows(self) -> list[tuple[float, float]]:
        """(start, end) of every fault, relative to the start of the fault phase."""
        length = self.fault_phase_length()
        return [(f.at, f.at + f.duration if f.duration is not None else length) for f in self.faults]

    def fault_phase_length(self) -> float:
        ends = [f.at + (f.duration or 0.0) for f in self.faults]
        return self.spec.fault_phase_length(ends)

    def planned_length(self) -> float:
        p = self.spec.phases
        return p.baseline + self.fault_phase_length() + p.recovery

    def longest_length(self) -> float:
        """The planned length plus the whole settle window: what max_duration must allow."""
        return self.planned_length() + self.spec.phases.settle
