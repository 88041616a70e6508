"""The experiment's JSON Schema, with every registered plugin's fields (``mlchaos schema``, for editors).

Kept apart from the loader: the schema is built from the same models, but only
editors need it, and the loader's module stays about loading.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from mlchaos import registry
from mlchaos.spec.model import ExperimentSpec, StepSpec

__all__ = ["json_schema"]


def json_schema() -> dict[str, Any]:
    """JSON Schema of an experiment, with every registered plugin's fields (for editors)."""
    from pydantic.json_schema import models_json_schema

    groups: dict[str, dict[type[BaseModel], list[str]]] = {"fault": {}, "probe": {}, "target": {}}
    for kind in groups:
        for name in registry.names(kind):  # type: ignore[arg-type]
            try:
                cls = registry.get(kind, name)  # type: ignore[arg-type]
            except Exception:  # a broken third-party plugin must not break the schema
                continue
            groups[kind].setdefault(cls.Spec, []).append(name)
    models: list[tuple[type[BaseModel], Any]] = [(ExperimentSpec, "validation"), (StepSpec, "validation")]
    for by_spec in groups.values():
        models += [(spec, "validation") for spec in by_spec]
    keys, schema = models_json_schema(models, ref_template="#/$defs/{model}")
    defs = schema["$defs"]
    name_key = {"fault": "fault", "probe": "probe", "target": "platform"}
    refs: dict[str, list[dict[str, str]]] = {"fault": [], "probe": [], "target": []}
    for kind, by_spec in groups.items():
        for spec, plugin_names in by_spec.items():
            ref = keys[(spec, "validation")]["$ref"]
            d = defs[ref.rsplit("/", 1)[-1]]
            d["properties"][name_key[kind]] = {"enum": sorted(plugin_names)}
            refs[kind].append({"$ref": ref})
    root_ref = keys[(ExperimentSpec, "validation")]["$ref"].rsplit("/", 1)[-1]
    root = defs.pop(root_ref)
    props = root["properties"]
    step_ref = {"$ref": keys[(StepSpec, "validation")]["$ref"]}  # ``- step: command`` beside the faults
    props["method"] = {"type": "array", "items": {"anyOf": [*refs["fault"], step_ref]}, "description": props["method"].get("description", "")}
    for section in ("steady_state", "abort"):
        props[section] = {"type": "array", "items": {"anyOf": refs["probe"]}, "description": props[section].get("description", "")}
    props["target"] = {"anyOf": refs["target"], "description": props["target"].get("description", "")}
    props["targets"] = {"type": "object", "additionalProperties": {"anyOf": refs["target"]}}
    try:
        LoadSpec = registry.service_spec("load")  # by name: the spec does not import the load package
        load_schema = LoadSpec.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(load_schema.pop("$defs", {}))
        defs["LoadSpec"] = load_schema
        props["load"] = {"$ref": "#/$defs/LoadSpec"}
    except ImportError:
        pass
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "mlchaos experiment", **root, "$defs": defs}
