"""Numbers for people: one place that turns a probe's raw value into ``113 ms``, ``3.2 %`` or ``4 pods``.

Probes measure in base units (seconds, a ratio 0..1, requests per second) and
the journal and ``--json`` keep those raw values, so machines never parse a
display string.  Everything a person reads (the ``mlchaos run`` live view and
verdict line, ``mlchaos journal``, the HTML report, the verdict reasons) goes
through this module, so ``p99 113 ms > 100 ms`` reads the same everywhere and
no screen shows ``0.11300000000000002``.

The unit of a value comes from the probe class (``Probe.unit``: ``"s"``,
``"ratio"``, ``"1/s"``, ``"pods"``, ...), looked up by the probe's kind:

>>> quantity(0.1134, "s")
'113 ms'
>>> quantity(0.032, "ratio")
'3.2 %'
>>> comparison(0.1134, ">", 0.1, "s")
'113 ms > 100 ms'
"""

from __future__ import annotations

import functools
import math
from typing import Any

#: Units whose values are counts of things: shown as ``3 pods``.
_COUNTS = {"pods", "replicas", "events", "rows", "requests"}


def number(x: float, sig: int | None = None) -> str:
    """Three significant digits at most, no exponent for everyday magnitudes, no trailing zeros.

    ``113``, ``12.5``, ``3.2``, ``0.123``, ``0.0004``: a small non-zero value never reads as zero.
    ``sig`` asks for that many significant digits instead (see :func:`apart`).
    """
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, int):
        return f"{x:,}".replace(",", " ") if abs(x) >= 100_000 else str(x)
    if math.isnan(x) or math.isinf(x):
        return str(x)
    a = abs(x)
    if a == 0:
        return "0"
    if sig is not None:
        return f"{x:.{sig}g}"
    if a >= 1e6 or a < 1e-4:
        return f"{x:.3g}"
    if a < 1:
        return f"{x:.3g}"
    digits = 0 if a >= 100 else 1 if a >= 10 else 2
    text = f"{x:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def seconds(s: float, sig: int | None = None) -> str:
    """A duration at the scale a person reads it: ``850 µs``, ``113 ms``, ``1.25 s``, ``2 min 5 s``."""
    a = abs(s)
    if a == 0:
        return "0 ms"
    if a < 1e-3:
        return f"{number(s * 1e6, sig)} µs"
    if a < 1:
        return f"{number(s * 1e3, sig)} ms"
    if a < 120 or sig is not None:
        return f"{number(s, sig)} s"
    minutes, rest = divmod(round(s), 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


def percent(ratio: float, sig: int | None = None) -> str:
    """A ratio 0..1 as a percentage: ``3.2 %``, ``100 %``, ``0.05 %``."""
    return f"{number(ratio * 100, sig)} %"


def quantity(value: Any, unit: str = "", sig: int | None = None) -> str:
    """``value`` in ``unit`` for a person; anything that is not a number is shown as it is (``–`` for none)."""
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        text = str(value)
        return text if len(text) <= 80 else text[:77] + "..."
    if unit == "s":
        return seconds(value, sig)
    if unit in ("ratio", "%"):
        return percent(value, sig)
    if unit == "1/s":
        return f"{number(value, sig)}/s"
    if unit in _COUNTS:
        return f"{number(value, sig)} {unit}" if value != 1 else f"1 {unit.rstrip('s')}"
    return number(value, sig) if not unit else f"{number(value, sig)} {unit}"


def apart(value: Any, bound: Any, unit: str = "") -> tuple[str, str]:
    """A value and the bound it is compared with, with as many digits as it takes to tell them apart.

    A breach must not read ``2/s < min 2/s`` (1.996/s, three digits): a person would take the verdict
    for a bug.  Equal numbers, or anything that is not a number, are shown as :func:`quantity` does.

    >>> apart(1.996, 2, "1/s")
    ('1.996/s', '2/s')
    >>> apart(0.1134, 0.1, "s")
    ('113 ms', '100 ms')
    """
    a, b = quantity(value, unit), quantity(bound, unit)
    numbers = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (value, bound))
    if a != b or not numbers or float(value) == float(bound):
        return a, b
    for sig in (4, 5, 6, 8, 12):
        a, b = quantity(value, unit, sig), quantity(bound, unit, sig)
        if a != b:
            break
    return a, b


@functools.cache
def probe_unit(kind: str | None) -> str:
    """The display unit of a probe kind (``latency`` → ``s``); ``""`` for an unknown or unitless probe."""
    if not kind:
        return ""
    try:
        from mlchaos import registry

        return str(getattr(registry.get("probe", kind), "unit", "") or "")
    except Exception:  # an uninstalled plugin in an old journal: show the plain number
        return ""


def spec_unit(spec: dict[str, Any] | None) -> str:
    """The unit of one configured probe: its kind's unit, or seconds for an ``http`` probe of ``value: latency``."""
    if not spec:
        return ""
    if spec.get("probe") == "http":
        return "s" if spec.get("value") == "latency" else ""
    return probe_unit(spec.get("probe"))


def journal_units(events: list[dict[str, Any]], summary: dict[str, Any]) -> dict[str, str]:
    """Probe label → display unit for one run, from its journal (a label is the user's own name).

    The run-start event's effective configuration has every probe's spec (an ``http`` probe is in
    seconds only with ``value: latency``); the summary names each probe's kind.
    """
    units: dict[str, str] = {}
    for p in summary.get("probes") or []:
        if p.get("probe"):
            units[str(p["name"])] = spec_unit({"probe": p["probe"]})
    start = next((e for e in events if e.get("event") == "run-start"), {})
    config = start.get("config") or summary.get("config") or {}
    for section in ("steady_state", "abort"):
        for p in config.get(section) or []:
            if isinstance(p, dict) and p.get("probe"):
                units[str(p.get("name") or p["probe"])] = spec_unit(p)
    return units


#: How a chart shows a unit: values multiplied by the factor, the axis labelled with the name.
CHART_SCALE = {"s": (1000.0, "ms"), "ratio": (100.0, "%")}


def probe_value(kind: str | None, value: Any) -> str:
    """A value measured by a probe of ``kind``, for a person."""
    return quantity(value, probe_unit(kind))


def comparison(value: Any, op: str, bound: Any, unit: str = "") -> str:
    """``113 ms > 100 ms``: a breach (or a check) as a person reads it; both sides in the same unit."""
    a, b = apart(value, bound, unit)
    return f"{a} {op} {b}"


def tolerance(tol: dict[str, Any], unit: str = "") -> str:
    """A probe's tolerance (``max``/``min``/``between``/``equals``/``above``/``below``) in plain words."""
    parts = []
    for key, word in (("max", "≤"), ("min", "≥"), ("above", ">"), ("below", "<"), ("equals", "=")):
        if tol.get(key) is not None:
            parts.append(f"{word} {quantity(tol[key], unit)}")
    between = tol.get("between")
    if between:
        lo, hi = between
        parts.append(f"between {quantity(lo, unit)} and {quantity(hi, unit)}")
    return ", ".join(parts)
