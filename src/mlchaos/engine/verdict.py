"""Statuses, exit codes and tolerance evaluation.

The verdict is deliberately pessimistic: a run can be ``passed`` only when the
baseline held, every fault was really injected (and, where the holder counts,
really affected something), every steady-state probe produced evidence during
the fault window without a single breach, and the hypothesis held again after
recovery.  Anything less is one of the other statuses, each with a reason.
"""

from __future__ import annotations

import enum
import math
from typing import Any


class Status(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    INVALID = "invalid"
    ABORTED = "aborted"
    NOT_RUN = "not-run"
    ERRORED = "errored"

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
}


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


def within(spec: Any, value: Any) -> tuple[bool, str]:
    """Does ``value`` meet the probe's tolerance (max/min/between/equals)?  Returns (ok, why)."""
    if spec.equals is not None:
        ok = value == spec.equals or (_num(value) is not None and _num(spec.equals) is not None
                                      and _num(value) == _num(spec.equals))
        return ok, "" if ok else f"expected {spec.equals!r}, got {value!r}"
    x = _num(value)
    if x is None or math.isnan(x):
        if any(getattr(spec, k) is not None for k in ("max", "min", "between")):
            return False, f"not a number: {value!r}"
        return True, ""
    if spec.max is not None and x > spec.max:
        return False, f"{x:g} > max {spec.max:g}"
    if spec.min is not None and x < spec.min:
        return False, f"{x:g} < min {spec.min:g}"
    if spec.between is not None and not spec.between[0] <= x <= spec.between[1]:
        return False, f"{x:g} outside [{spec.between[0]:g}, {spec.between[1]:g}]"
    return True, ""


def tripped(spec: Any, value: Any) -> tuple[bool, str]:
    """Does an abort condition trip?  above/below, or any max/min/between/equals not met."""
    x = _num(value)
    if spec.above is not None and x is not None and x > spec.above:
        return True, f"{x:g} > {spec.above:g}"
    if spec.below is not None and x is not None and x < spec.below:
        return True, f"{x:g} < {spec.below:g}"
    if any(getattr(spec, k) is not None for k in ("max", "min", "between", "equals")):
        ok, why = within(spec, value)
        return (not ok), why
    return False, ""
