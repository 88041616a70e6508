"""Tolerances (max / min / between / equals, above / below): compared exactly, explained in units.

Why exact: a verdict must not hinge on a float artefact.  ``1 - 99/100`` is
``0.010000000000000009`` in floats, which "breached" ``max: 1%`` with the
message "0.01 > max 0.01".  So a probe that counts (missing / seen, errors /
requests) hands over the exact fraction, and a tolerance is compared as the
decimal the user wrote: a float tolerance becomes the shortest decimal that
reads back as the same float (``0.01`` is 1/100, not 0.01000000000000000020…).
A value with no exact form is compared as its own shortest decimal, which is
the float itself, so nothing is lost for measured (not counted) values.

Why units: people read "p99 113 ms > 100 ms" faster than "0.113 > max 0.1";
the raw numbers stay in the journal and the JSON.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

__all__ = ["exact", "show", "tripped", "within"]


def exact(x: Any) -> Fraction | None:
    """The exact rational a number stands for (a Fraction as is; a float as its shortest decimal)."""
    if isinstance(x, Fraction):
        return x
    if isinstance(x, bool):
        return Fraction(int(x))
    if isinstance(x, int):
        return Fraction(x)
    if isinstance(x, float):
        return Fraction(repr(x)) if math.isfinite(x) else None
    return None


def show(x: Any, unit: str = "") -> str:
    """A number for people (``113 ms``, ``3.2 %``): one formatting rule, :func:`mlchaos.fmt.quantity`."""
    from mlchaos.fmt import quantity

    return quantity(float(x) if isinstance(x, Fraction) else x, unit)


def _apart(value: Any, bound: Any, unit: str) -> tuple[str, str]:
    """Both sides with the digits it takes to tell them apart (:func:`mlchaos.fmt.apart`): ``1.996/s``, ``2/s``."""
    from mlchaos.fmt import apart

    return apart(float(value) if isinstance(value, Fraction) else value, bound, unit)


def _breach(value: Any, op: str, bound: Any, unit: str) -> str:
    v, b = _apart(value, bound, unit)
    return f"{v} {op} {b}"


def within(spec: Any, value: Any, unit: str = "", fraction: Fraction | None = None) -> tuple[bool, str]:
    """Does ``value`` meet the tolerance?  Returns (ok, why); ``fraction`` is the exact value if counted."""
    if spec.equals is not None:
        a, b = exact(value), exact(spec.equals)
        ok = value == spec.equals or (a is not None and b is not None and a == b)
        return ok, "" if ok else f"expected {spec.equals!r}, got {value!r}"
    x = fraction if fraction is not None else exact(value)
    if x is None:
        if any(getattr(spec, k) is not None for k in ("max", "min", "between")):
            return False, f"not a number: {value!r}"
        return True, ""
    v = value if fraction is None else fraction
    if spec.max is not None and x > exact(spec.max):  # type: ignore[operator]
        return False, _breach(v, "> max", spec.max, unit)
    if spec.min is not None and x < exact(spec.min):  # type: ignore[operator]
        return False, _breach(v, "< min", spec.min, unit)
    if spec.between is not None:
        lo, hi = exact(spec.between[0]), exact(spec.between[1])
        if not (lo <= x <= hi):  # type: ignore[operator]
            lo_s, hi_s = show(spec.between[0], unit), show(spec.between[1], unit)
            if x < lo:  # type: ignore[operator]
                shown, lo_s = _apart(v, spec.between[0], unit)
            else:
                shown, hi_s = _apart(v, spec.between[1], unit)
            return False, f"{shown} outside [{lo_s}, {hi_s}]"
    return True, ""


def tripped(spec: Any, value: Any, unit: str = "", fraction: Fraction | None = None) -> tuple[bool, str]:
    """Does an abort condition trip?  above/below, or any max/min/between/equals not met."""
    x = fraction if fraction is not None else exact(value)
    v = value if fraction is None else fraction
    if spec.above is not None and x is not None and x > exact(spec.above):  # type: ignore[operator]
        return True, _breach(v, ">", spec.above, unit)
    if spec.below is not None and x is not None and x < exact(spec.below):  # type: ignore[operator]
        return True, _breach(v, "<", spec.below, unit)
    if any(getattr(spec, k) is not None for k in ("max", "min", "between", "equals")):
        ok, why = within(spec, value, unit, fraction)
        return (not ok), why
    return False, ""
