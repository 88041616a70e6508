"""Load experiments from YAML (or dicts) and report every error with its position.

Errors are reported as ``FILE:LINE:COL: field.path: message``.  Positions come
from the YAML nodes themselves (PyYAML's composer keeps a mark for every key
and value), never from searching the text, so an error inside a repeated
block points at the right copy.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from mlchaos import registry
from mlchaos.spec.aliases import rename_fields
from mlchaos.spec.errors import MAX_ERRORS, SpecError, SpecErrors, escape
from mlchaos.spec.experiment import Experiment
from mlchaos.spec.model import ExperimentSpec
from mlchaos.spec.overrides import apply_overrides, flag_for, plain_copy
from mlchaos.spec.schema import json_schema
from mlchaos.spec.steps import check_steps, split_method, validate_steps
from mlchaos.spec.variables import lookup
from mlchaos.spec.yamlload import MAX_BYTES, parse

Loc = tuple[str | int, ...]

__all__ = [
    "Experiment", "ExperimentSpec", "SpecError", "SpecErrors", "ValidatedExperiment", "escape", "json_schema",
    "load_dict", "load_file", "load_text",
]

#: The old name of :class:`Experiment` (what the loaders return), kept importable.
ValidatedExperiment = Experiment


class _Positions:
    """Marks of every value and every key, by path."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.values: dict[Loc, tuple[int, int]] = {}
        self.keys: dict[Loc, tuple[int, int]] = {}
        self.duplicates: list[SpecError] = []
        self._walked: set[int] = set()

    def walk(self, node: yaml.Node, path: Loc = ()) -> None:
        """Record marks below ``node``; a node reached again through an alias is not re-entered.

        Its copies' inner errors then point at the alias's own value position (the
        anchor), and the walk costs the text's size, not the size alias expansion
        would give it.
        """
        self.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if id(node) in self._walked:
            return
        self._walked.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for knode, vnode in node.value:
                key = knode.value if isinstance(knode, yaml.ScalarNode) else f"<{knode.id} key>"
                if key == "<<":
                    continue
                sub = (*path, key)
                if key in seen:
                    self.duplicates.append(
                        SpecError(self.source, knode.start_mark.line + 1, knode.start_mark.column + 1,
                                  _dotted(sub), f"duplicate key {key!r}")
                    )
                seen.add(key)
                self.keys[sub] = (knode.start_mark.line + 1, knode.start_mark.column + 1)
                self.walk(vnode, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.walk(item, (*path, i))

    def alias(self, old: Loc, new: Loc) -> None:
        """Errors about a renamed key's value point at the key as the file wrote it."""
        for table in (self.values, self.keys):
            for loc, mark in list(table.items()):
                if loc[:len(old)] == old:
                    table[new + loc[len(old):]] = mark

    def at(self, loc: Loc, *, key: bool = False) -> tuple[int, int]:
        if key and loc in self.keys:
            return self.keys[loc]
        probe = loc
        while probe:
            if probe in self.values:
                return self.values[probe]
            # a key the model nests but the file may write flat (``load: {url: …}`` is ``load.request.url``)
            for i in range(len(probe) - 1):
                flat = probe[:i] + probe[i + 1:]
                if flat in self.values:
                    return self.values[flat]
            probe = probe[:-1]
        return self.values.get((), (1, 1))


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The pydantic model that owns the last element of ``loc`` (for 'did you mean')."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = _find_model(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _find_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _find_model(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, tuple, dict):
        for arg in typing.get_args(annotation):
            found = _find_model(arg)
            if found is not None:
                return found
    return None


# Errors kept before sorting by position and cutting to MAX_ERRORS: enough that the ones
# shown are the first in the file in practice, few enough that 100,000 bad keys stay cheap.
_KEEP = 4 * MAX_ERRORS


class _Collector:
    def __init__(self, positions: _Positions, applied: dict[Loc, str] | None = None) -> None:
        self.pos = positions
        self.applied = applied or {}
        self.errors: list[SpecError] = positions.duplicates[:_KEEP]
        self.notes: list[SpecError] = []
        self.dropped = len(positions.duplicates) - len(self.errors)

    def full(self) -> bool:
        return len(self.errors) >= _KEEP

    def add(self, loc: Loc, message: str, *, key: bool = False) -> None:
        if self.full():
            self.dropped += 1
            return
        flag = flag_for(loc, self.applied)
        if flag is not None:  # the value came from a --set flag: point at it, not at the file
            self.errors.append(SpecError(self.pos.source, 0, 0, _dotted(loc), message, flag=flag))
            return
        line, col = self.pos.at(loc, key=key)
        self.errors.append(SpecError(self.pos.source, line, col, _dotted(loc), message))

    def note(self, loc: Loc, message: str, *, key: bool = False) -> None:
        """A deprecation: the experiment is valid, but an old spelling was used."""
        line, col = self.pos.at(loc, key=key)
        self.notes.append(SpecError(self.pos.source, line, col, _dotted(loc), message))

    def fail(self) -> SpecErrors:
        return SpecErrors(self.errors, dropped=self.dropped)

    def pydantic(self, exc: ValidationError, model: type[BaseModel], prefix: Loc = ()) -> None:
        for err in exc.errors(include_url=False):
            if self.full():  # count the rest without the 'did you mean' work
                self.dropped += 1
                continue
            loc: Loc = (*prefix, *err["loc"])
            kind = err["type"]
            msg = str(err["msg"])
            if kind == "extra_forbidden":
                name = str(err["loc"][-1])
                owner = _model_at(model, tuple(err["loc"]))
                hint = ""
                if owner is not None:
                    allowed = sorted(owner.model_fields)
                    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
                    hint = f"; did you mean {close[0]!r}?" if close else f" (allowed: {', '.join(allowed)})"
                self.add(loc, f"unknown key {name!r}{hint}", key=True)
            elif kind == "missing":
                self.add(loc, f"missing required field {err['loc'][-1]!r}")
            else:
                if msg.startswith("Value error, "):
                    msg = msg[len("Value error, "):]
                if kind not in ("value_error",) and "input" in err and not isinstance(err["input"], dict | list):
                    msg = f"{msg} (got {err['input']!r})"
                self.add(loc, msg)


def _validate_plugin_items(
    col: _Collector, kind: registry.Kind, items: list[tuple[Loc, Any]], name_key: str
) -> list[Any]:
    out: list[Any] = []
    for loc, item in items:
        if not isinstance(item, dict):
            col.add(loc, f"expected a mapping with a {name_key!r} key, got {type(item).__name__}")
            continue
        name = item.get(name_key)
        if name is None:
            col.add(loc, f"missing required field {name_key!r}")
            continue
        if not isinstance(name, str):
            col.add((*loc, name_key), f"{name_key} must be a string, got {name!r}")
            continue
        try:
            cls = registry.get(kind, name)
        except registry.UnknownPlugin as exc:
            col.add((*loc, name_key), str(exc))
            continue
        new_name = registry.deprecated(kind, name)
        if new_name is not None:
            col.note((*loc, name_key), f"{kind} {name!r} is deprecated, write {new_name!r}")
            item = {**item, name_key: new_name}
        item, renamed = rename_fields(item, cls.Spec.model_fields)
        for old, new in renamed:
            col.note((*loc, old), f"{old!r} is deprecated, write {new!r}", key=True)
            col.pos.alias((*loc, old), (*loc, new))
        try:
            out.append(cls.Spec.model_validate(item))
        except ValidationError as exc:
            col.pydantic(exc, cls.Spec, loc)
    return out


def _check_semantics(col: _Collector, v: Experiment, fault_locs: list[Loc]) -> None:
    exp = v.spec
    names_seen: dict[str, Loc] = {}
    for section, specs in (("steady_state", v.steady_state), ("abort", v.abort)):
        for i, spec in enumerate(specs):
            loc: Loc = (section, i)
            has_tol = any(getattr(spec, k) is not None for k in ("max", "min", "between", "equals"))
            has_abort = any(getattr(spec, k) is not None for k in ("above", "below"))
            if section == "steady_state" and has_abort:
                col.add(loc, "above/below are for abort conditions; a steady-state probe uses max/min/between/equals")
            elif not (has_tol or has_abort):
                col.add(loc, "a probe needs a tolerance (max, min, between or equals"
                        + (", above or below)" if section == "abort" else ")")
                        + ": without one it cannot decide anything")
            if spec.between is not None and spec.between[0] > spec.between[1]:
                col.add((*loc, "between"), f"between: low {spec.between[0]} is above high {spec.between[1]}")
            label = spec.name or f"{section}[{i}] {spec.probe}"
            if spec.name and spec.name in names_seen:
                col.add((*loc, "name"), f"duplicate probe name {spec.name!r}")
            names_seen[label] = loc
    for section, specs in (("method", v.faults), ("steady_state", v.steady_state), ("abort", v.abort)):
        for i, spec in enumerate(specs):
            if spec.target != "default" and spec.target not in v.targets:
                known = sorted(v.targets)
                col.add((*fault_locs[i], "target") if section == "method" else (section, i, "target"),
                        f"unknown target {spec.target!r}{registry.suggest(spec.target, known)}"
                        f" (defined: {', '.join(known) or 'none'})")
    for i, spec in enumerate(v.steady_state):
        if v.faults and spec.window is not None and spec.window > exp.phases.recovery:
            col.add(("steady_state", i, "window"),
                    f"window ({spec.window:g}s) is longer than phases.recovery ({exp.phases.recovery:g}s): "
                    "the 'after' checkpoint would still see the fault; lengthen the recovery or shorten the window")
    length = v.fault_phase_length()
    if exp.phases.fault is not None:
        for i, f in enumerate(v.faults):
            end = f.at + (f.duration or 0.0)
            if f.at >= exp.phases.fault or end > exp.phases.fault:
                col.add((*fault_locs[i], "at"), f"fault window [{f.at:g}s, {end:g}s] does not fit in phases.fault ({exp.phases.fault:g}s)")
    if v.faults and length <= 0:
        col.add(("method",), "the fault phase has zero length: give the faults a duration or set phases.fault")
    total = v.longest_length()
    if total > exp.max_duration:
        settle = f" (settle {exp.phases.settle:g}s included)" if exp.phases.settle else ""
        col.add(("max_duration",),
                f"the phases add up to {total:g}s{settle}, more than max_duration ({exp.max_duration:g}s)")


def load_text(text: str, source: str = "<string>", overrides: Sequence[str] = (),
              variables: Mapping[str, str] | None = None) -> Experiment:
    """Parse and validate YAML text; raise :class:`SpecErrors` with every problem found.

    ``${NAME}`` in the text is substituted from ``variables`` (``--var``), then the environment
    (:mod:`mlchaos.spec.variables`), before YAML types each value.  ``overrides`` are
    ``--set KEY=VALUE`` flags applied before validation: errors in what they set point at the
    flag, every other error keeps its position in the text.
    """
    positions = _Positions(source)
    # bounded: size, depth, aliases; every failure positioned (an undefined variable too)
    node, data = parse(text, source, lookup(variables))
    positions.walk(node)
    applied: dict[Loc, str] = {}
    if overrides:
        if not isinstance(data, dict):
            _validate(data, positions)  # reports the top-level error at its position
        data = plain_copy(data)
        applied = apply_overrides(data, overrides)
    return _validate(data, positions, applied)


def load_file(path: str | os.PathLike[str], overrides: Sequence[str] = (),
              variables: Mapping[str, str] | None = None) -> Experiment:
    """Read and validate an experiment file (with ``--var`` variables and ``--set`` overrides, see
    :func:`load_text`)."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise SpecErrors([SpecError(str(p), 1, 1, "", f"cannot read file: {exc.strerror or exc}")]) from None
    if len(raw) > MAX_BYTES:
        raise SpecErrors([SpecError(str(p), 1, 1, "", f"file too large: more than {MAX_BYTES:,} bytes "
                                    "(request bodies belong in a body_file)")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecErrors([SpecError(str(p), line, col, "", f"not UTF-8 text: {exc.reason}")]) from None
    return load_text(text, str(p), overrides, variables)


def load_dict(data: dict[str, Any], source: str = "<dict>") -> Experiment:
    """Validate an experiment given as Python data (positions are not known: line 1)."""
    return _validate(data, _Positions(source))


def _validate(data: Any, positions: _Positions, applied: dict[Loc, str] | None = None) -> Experiment:
    col = _Collector(positions, applied or {})
    if not isinstance(data, dict):
        col.add((), f"expected an experiment mapping at the top level, got {type(data).__name__}")
        raise col.fail()
    try:
        exp = ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        col.pydantic(exc, ExperimentSpec)
        # keep going on the parts that can be checked on their own
        exp = None
    target_items: list[tuple[Loc, Any]] = []
    if isinstance(data.get("target"), dict):
        target_items.append((("target",), data["target"]))
    if isinstance(data.get("targets"), dict):
        target_items += [(("targets", k), t) for k, t in data["targets"].items()]
    target_specs = _validate_plugin_items(col, "target", target_items, "platform")
    target_names = (["default"] if isinstance(data.get("target"), dict) else []) + (
        list(data["targets"]) if isinstance(data.get("targets"), dict) else []
    )

    def items(section: str) -> list[tuple[Loc, Any]]:
        value = data.get(section)
        return [((section, i), x) for i, x in enumerate(value)] if isinstance(value, list) else []

    fault_items, step_items = split_method(col, items("method"))
    faults = _validate_plugin_items(col, "fault", fault_items, "fault")
    steps = validate_steps(col, step_items)
    steady = _validate_plugin_items(col, "probe", items("steady_state"), "probe")
    abort = _validate_plugin_items(col, "probe", items("abort"), "probe")
    load = None
    if isinstance(data.get("load"), dict):
        try:
            LoadSpec = registry.service_spec("load")  # by name: the spec does not import the load package
        except ImportError:
            col.add(("load",), "load generation is not available in this build")
        else:
            try:
                load = LoadSpec.model_validate(data["load"])
            except ValidationError as exc:
                col.pydantic(exc, LoadSpec, ("load",))
    if exp is None or col.errors:
        raise col.fail()
    v = Experiment(
        spec=exp,
        targets=dict(zip(target_names, target_specs, strict=False)),
        faults=faults,
        steady_state=steady,
        abort=abort,
        load=load,
        source=positions.source,
        raw=data,
        notes=sorted(col.notes, key=lambda e: (e.line, e.col)),
        steps=steps,
    )
    # method mixes faults and steps: semantic errors name each item by its place in the file
    _check_semantics(col, v, [loc for loc, _ in fault_items])
    check_steps(col, v, [loc for loc, _ in step_items])
    if col.errors:
        raise col.fail()
    return v
