"""Strict JSON-Schema validators for Chaos Mesh objects and Kubernetes manifests.

Why "strict" needs work: a CRD's OpenAPI schema is *structural*: the API server
silently prunes fields it does not know instead of rejecting them, and the
JSON-Schema default is to allow extra properties.  A test that only ran the
CRD schema as is would pass an object with a typo (``latancy``) that Chaos
Mesh would then never apply.  So every object schema that does not opt into
unknown fields (``x-kubernetes-preserve-unknown-fields``) or declare its own
``additionalProperties`` gets ``additionalProperties: false`` - exactly the
set of fields the API server would prune.  ``metadata`` (``type: object`` in a
CRD: the server validates it as ObjectMeta) is replaced by the strict
ObjectMeta schema, and ``apiVersion``/``kind`` are pinned.

Schemas come from ``../shared/schemas/chaos-mesh`` beside the repository when
it exists, else from the vendored copies in ``data/`` (see data/SOURCE.txt).
"""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

DATA = Path(__file__).resolve().parent / "data"
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "schemas"
K8S_SCHEMAS = DATA / "k8s-1.37-strict.json"
CRD_FILES = {
    "NetworkChaos": "chaos-mesh.org_networkchaos.yaml",
    "HTTPChaos": "chaos-mesh.org_httpchaos.yaml",
    "StressChaos": "chaos-mesh.org_stresschaos.yaml",
    "PodChaos": "chaos-mesh.org_podchaos.yaml",
}
GO_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")


def crd_path(kind: str) -> Path:
    shared = SHARED / "chaos-mesh" / CRD_FILES[kind]
    return shared if shared.is_file() else DATA / "chaos-mesh" / CRD_FILES[kind]


def make_strict(node: Any) -> Any:
    """Return a copy of an OpenAPI v3 schema where unknown object fields are errors."""
    if isinstance(node, list):
        return [make_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: make_strict(v) for k, v in node.items()}
    is_object = out.get("type") == "object" or "properties" in out
    if (
        is_object
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def k8s_bundle() -> dict[str, Any]:
    return json.loads(K8S_SCHEMAS.read_text())


def _k8s_schema(root: dict[str, Any]) -> dict[str, Any]:
    bundle = k8s_bundle()
    return {**root, "$defs": bundle["$defs"]}


@functools.cache
def crd_schema(kind: str) -> dict[str, Any]:
    doc = yaml.safe_load(crd_path(kind).read_text())
    assert doc["spec"]["names"]["kind"] == kind
    version = next(v for v in doc["spec"]["versions"] if v["name"] == "v1alpha1")
    schema = make_strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
    props = schema["properties"]
    props["apiVersion"] = {"const": "chaos-mesh.org/v1alpha1"}
    props["kind"] = {"const": kind}
    props["metadata"] = {"$ref": "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata", "spec"})
    return _k8s_schema(schema)


def validate_chaos(obj: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``obj`` is a valid, strict Chaos Mesh object.

    Beyond the CRD schema, it checks what Chaos Mesh's admission webhook checks
    and the schema cannot: Go duration strings, a ``value`` for the
    fixed/percent modes, and a name and namespace.
    """
    kind = obj.get("kind")
    if kind not in CRD_FILES:
        raise jsonschema.ValidationError(f"unexpected kind {kind!r}")
    _validator("crd", kind).validate(obj)
    meta, spec = obj["metadata"], obj["spec"]
    for key in ("name", "namespace"):
        if not meta.get(key):
            raise jsonschema.ValidationError(f"metadata.{key} is required")
    durations = [spec.get("duration")]
    if kind == "NetworkChaos":
        durations += [spec.get("delay", {}).get("latency"), spec.get("delay", {}).get("jitter")]
    if kind == "HTTPChaos":
        durations.append(spec.get("delay"))
    for d in durations:
        if d is not None and not GO_DURATION.match(d):
            raise jsonschema.ValidationError(f"not a Go duration: {d!r}")
    for scope in (spec, spec.get("target") if isinstance(spec.get("target"), dict) else None):
        if scope and scope.get("mode") in ("fixed", "fixed-percent", "random-max-percent"):
            if "value" not in scope:
                raise jsonschema.ValidationError(f"mode {scope['mode']} needs a value")
            if scope["mode"] != "fixed" and not 0 < float(scope["value"]) <= 100:
                raise jsonschema.ValidationError(f"percent value out of range: {scope['value']}")


def validate_k8s(obj: dict[str, Any], kind: str | None = None) -> None:
    """Validate a Kubernetes object (or API response) against the vendored strict schema of its kind."""
    _validator("k8s", kind or obj["kind"]).validate(obj)


@functools.cache
def _validator(family: str, kind: str) -> jsonschema.protocols.Validator:
    """One compiled validator per kind: building one resolves ~200 definitions, so reuse it."""
    schema = crd_schema(kind) if family == "crd" else _k8s_schema(k8s_bundle()["kinds"][kind])
    cls = jsonschema.Draft202012Validator
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)
