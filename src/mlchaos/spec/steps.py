"""``- step: command`` items of ``method``: validated here, run by the engine itself (no plugin involved).

The loader splits ``method`` into faults (items with ``fault``) and steps
(items with ``step`` and no ``fault``: some faults have a ``step`` field of
their own, a pipeline step's name).  ``col`` is the loader's error collector,
so a step's errors get the same ``FILE:LINE:COL`` as a fault's.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from mlchaos import registry
from mlchaos.spec.experiment import Experiment
from mlchaos.spec.model import StepSpec

Loc = tuple[str | int, ...]

__all__ = ["check_steps", "split_method", "validate_steps"]


def split_method(col: Any, method: list[tuple[Loc, Any]]) -> tuple[list[tuple[Loc, Any]], list[tuple[Loc, Any]]]:
    """(faults, steps) of ``method``, each item with its place in the file; a bare ``on:`` key is an error."""
    kept = []
    for loc, x in method:
        if isinstance(x, dict) and True in x:  # YAML 1.1 reads a bare 'on' key as the boolean true
            col.add((*loc, "on"), "YAML reads the key 'on' as true; a step runs 'when: fault-removed' or "
                    "'when: recovery'", key=True)
        else:
            kept.append((loc, x))

    def is_step(x: Any) -> bool:  # an item with 'fault' is a fault (some faults have a 'step' field)
        return isinstance(x, dict) and "step" in x and "fault" not in x

    return [(loc, x) for loc, x in kept if not is_step(x)], [(loc, x) for loc, x in kept if is_step(x)]


def validate_steps(col: Any, items: list[tuple[Loc, Any]]) -> list[Any]:
    """``- step: command`` items of ``method``: the engine runs them itself, no plugin involved."""
    out: list[Any] = []
    for loc, item in items:
        kind = item.get("step")
        if kind != "command":
            col.add((*loc, "step"), f"unknown step {kind!r}{registry.suggest(str(kind), ['command'])} "
                    "(known: command)")
            continue
        try:
            out.append(StepSpec.model_validate(item))
        except ValidationError as exc:
            col.pydantic(exc, StepSpec, loc)
    return out


def check_steps(col: Any, v: Experiment, step_locs: list[Loc]) -> None:
    """A step must have a point of the run it can reach: inside the fault phase, or a fault that exists."""
    labels = {f.name or f"{f.fault}#{i}" for i, f in enumerate(v.faults)}
    length = v.fault_phase_length()
    for loc, step in zip(step_locs, v.steps, strict=True):
        if step.of is not None and step.of not in labels:
            known = sorted(labels)
            col.add((*loc, "of"), f"no fault named {step.of!r} in method{registry.suggest(step.of, known)}"
                    f" (faults: {', '.join(known) or 'none'})")
        if step.at is not None and step.at >= length:
            col.add((*loc, "at"), f"step at {step.at:g}s does not start inside the fault phase ({length:g}s): "
                    "set phases.fault or an earlier 'at'")
