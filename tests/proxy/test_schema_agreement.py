"""One schema per proxy fault kind: ``mlchaos validate`` refuses exactly what the proxy refuses.

For every kind the proxy knows, values are generated per field from the kind's own parameter
model and the proxy's blast-radius model: out-of-range numbers (from each field's bounds),
wrong enum values, wrong types, non-finite and huge numbers, negative durations, and every pair
of them (which reaches the cross-field rules, e.g. latency's distribution needs a jitter).  Each
case goes to the proxy's own parser (``rules.parse_rule``, HTTP mode) and, as a step of an
experiment file, to the experiment loader; they must agree, and every refusal must be reported
at FILE:LINE:COL.
"""

from __future__ import annotations

import itertools
import typing
from typing import Any

import pytest
import yaml
from pydantic.fields import FieldInfo

from mlchaos.faults import network
from mlchaos.proxy.faults import KINDS
from mlchaos.proxy.rules import Blast, RuleError, parse_rule
from mlchaos.registry import BUILTIN
from mlchaos.spec.errors import SpecErrors
from mlchaos.spec.loader import load_text

TEMPLATE = {
    "title": "agreement",
    "target": {"platform": "lab", "system": "realtime"},
    "steady_state": [{"name": "p99", "probe": "latency", "percentile": 99, "window": "5s", "max": "50ms"}],
    "phases": {"baseline": "5s", "fault": "5s", "recovery": "5s"},
}
GENERIC_BAD: list[Any] = ["bogus", "", -1, 0, 1, 10**30, 1e300, "1e999", "-5s", True, None, {"x": 1}, [1], ["a"]]
PAIR_GENERIC: list[Any] = [0, -1, 1, None, "1s"]
"""The generic values tried in pairs (the cross-field rules turn on zero, sign, absence and size)."""
PLAUSIBLE = ["200ms", 1000, ["amount"], "a", 1, 0.5]


def steps() -> dict[str, str]:
    """The registered step name (``fault: <name>``) of each proxy kind."""
    out = {}
    for name, where in BUILTIN["fault"].items():
        module, _, attr = where.partition(":")
        if module == "mlchaos.faults.network":
            cls = getattr(network, attr)
            if cls.kind:
                out[cls.kind] = name
    return out


def bad_values(field: FieldInfo, generic: list[Any]) -> list[Any]:
    """Values worth trying on ``field``: generic mistakes, its enum plus a wrong one, its bounds +- a step."""
    vals = list(generic)
    for arg in typing.get_args(field.annotation) or (field.annotation,):
        if typing.get_origin(arg) is typing.Literal:
            vals += [*typing.get_args(arg), "not-a-choice"]
    for m in field.metadata:
        for bound in ("gt", "ge", "lt", "le"):
            b = getattr(m, bound, None)
            if isinstance(b, int | float):
                vals += [b, b - 1, b + 1, b - 1e-9, b + 1e-9]
    return vals


BASES: dict[str, dict[str, Any]] = {
    "stream-delay": {"first_event": "200ms"},  # every field is optional, but one of them is needed
    "stream-stall": {"after_events": 3},  # exactly one of after_events or after
    "stream-corrupt": {"mode": "drop"},
}
"""A valid base for kinds whose required values no plausible value finds."""


def valid_base(kind: str) -> dict[str, Any]:
    """The kind's required parameters with a value the proxy accepts (found from plausible values)."""
    model = KINDS[kind].params_model
    base: dict[str, Any] = dict(BASES.get(kind, {}))
    for name, f in model.model_fields.items():
        if not f.is_required() or name in base:
            continue
        for v in PLAUSIBLE:
            try:
                model.model_validate({**base, name: v}, strict=False)
            except Exception:
                continue
            base[name] = v
            break
    parse_rule({"kind": kind, **base}, "http")  # the base itself is valid
    return base


def cases(kind: str) -> list[dict[str, Any]]:
    cls = KINDS[kind]
    fields: dict[str, FieldInfo] = {**cls.params_model.model_fields}
    for name in ("probability", "direction", "seed", "match"):
        fields[name] = Blast.model_fields[name]
    per_field = {name: bad_values(f, GENERIC_BAD) for name, f in fields.items()}
    per_field["direction"] += ["request", "response", "both"]
    per_field["match"] += [{"method": "GET"}, {"method": 5}, {"path": 5}, {"headers": {"a": 1}}, {"bogus": 1},
                          {"model": "llama-*"}, {"model": 5}, {"model": ["a"]}]
    base = valid_base(kind)
    out = [{**base, name: v} for name, vals in per_field.items() for v in vals]
    names = list(cls.params_model.model_fields)  # pairs among the kind's own fields: the cross-field rules
    paired = {name: bad_values(fields[name], PAIR_GENERIC) for name in names}
    for a, b in itertools.combinations(names, 2):
        for va, vb in itertools.product(paired[a], paired[b]):
            out.append({**base, a: va, b: vb})
    return out


def proxy_accepts(kind: str, case: dict[str, Any]) -> bool:
    try:
        parse_rule({"kind": kind, **case}, "http")
    except RuleError:
        return False
    return True


def experiment_errors(step: dict[str, Any]) -> list[str] | None:
    """None when the experiment with ``step`` validates, else its errors as printed by ``mlchaos validate``."""
    text = yaml.safe_dump({**TEMPLATE, "method": [step]}, sort_keys=False)
    try:
        load_text(text, "exp.yaml")
    except SpecErrors as exc:
        return [str(e) for e in exc.errors]
    return None


def test_every_proxy_kind_has_a_step() -> None:
    assert set(steps()) == set(KINDS)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_validate_and_proxy_agree(kind: str) -> None:
    fault = steps()[kind]
    checked = refused = 0
    seen: set[str] = set()
    for case in cases(kind):
        key = repr(sorted(case.items(), key=lambda kv: kv[0]))
        if key in seen:
            continue
        seen.add(key)
        step = yaml.safe_load(yaml.safe_dump({"fault": fault, **case}))  # the values as the loader sees them
        proxy_ok = proxy_accepts(kind, {k: v for k, v in step.items() if k != "fault"})
        errors = experiment_errors(step)
        checked += 1
        if proxy_ok:
            assert errors is None, f"{kind}: validate refuses what the proxy accepts: {case} -> {errors}"
            continue
        refused += 1
        assert errors is not None, f"{kind}: the proxy refuses {case}, `mlchaos validate` says ok"
        assert all(e.startswith("exp.yaml:") and e.split(":")[1].isdigit() and e.split(":")[2].isdigit()
                   for e in errors), errors
    assert refused > 10 and checked > refused, (kind, checked, refused)


def test_the_issue_example_is_refused_at_its_line() -> None:
    text = yaml.safe_dump({**TEMPLATE, "method": [{"fault": "latency", "delay": "200ms", "distribution": "normal"}]},
                          sort_keys=False)
    with pytest.raises(SpecErrors) as ei:
        load_text(text, "exp.yaml")
    (e,) = ei.value.errors
    assert str(e).startswith("exp.yaml:") and "needs a jitter > 0" in str(e)
    line = text.splitlines()[e.line - 1]
    assert "latency" in line or "fault" in line or "distribution" in line, (e.line, text)


def test_schema_is_the_proxy_models() -> None:
    """``mlchaos schema`` shows each kind's parameters with the proxy's bounds and choices."""
    schema = network.LatencySpec.model_json_schema()
    assert set(KINDS["latency"].params_model.model_fields) <= set(schema["properties"])
    assert schema["properties"]["distribution"]["anyOf"][0]["enum"] == [
        "fixed", "uniform", "normal", "exponential", "lognormal"]
    http = network.HttpErrorSpec.model_json_schema()["properties"]
    status = http["status"]["anyOf"][0]  # optional since the presets: null means the preset's (else 503)
    assert status["minimum"] == 200 and status["maximum"] == 599
    assert http["preset"]["anyOf"][0]["enum"] == ["rate-limited", "overloaded", "context-length"]
    assert http["direction"]["anyOf"][0]["const"] == "request"
    assert "median" in schema["properties"]["delay"]["description"]  # the proxy model's own field docs
