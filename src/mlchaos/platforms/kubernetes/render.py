"""The dry-run rendering of an experiment: ``mlchaos k8s render``.

``render_chaos(experiment)`` gives the Chaos Mesh objects an experiment would
create; ``render_plan`` gives them per method step with a note.  Each object
comes from the fault's own ``render`` (the code path of a run), with the fault
class looked up by name in :mod:`mlchaos.registry`, so this module imports no
fault module itself (platforms do not import faults).

Without a cluster the pods cannot be listed, so these objects select by
labels with Chaos Mesh's own mode (``fixed``, ``fixed-percent``); a real run
pins the pods it chose after applying the ready pods to keep.  That
difference is stated in each step's note.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, cast

from mlchaos.platforms.kubernetes.labels import dns_name

__all__ = ["API_FAULTS", "CHAOS_FAULTS", "KUBERNETES_FAULTS", "RenderedStep", "render_chaos", "render_plan"]


CHAOS_FAULTS = ("k8s-network", "k8s-http", "k8s-stress")
API_FAULTS = ("pod-delete", "deployment-scale")
KUBERNETES_FAULTS = CHAOS_FAULTS + API_FAULTS
"""The built-in Kubernetes faults, by their registered names (:data:`mlchaos.registry.BUILTIN`)."""


@dataclasses.dataclass
class RenderedStep:
    """One ``method`` step: the Chaos Mesh object it would create (or None) and a note."""

    index: int
    fault: str
    object: dict[str, Any] | None
    note: str


def _targets(experiment: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    targets = dict(experiment.get("targets") or {})
    if experiment.get("target") is not None:
        targets.setdefault("default", experiment["target"])
    return targets


def render_plan(
    experiment: Mapping[str, Any], *, run_id: str = "dry-run", machine: str | None = None
) -> list[RenderedStep]:
    """Every method step of an experiment, with the Chaos Mesh object a Kubernetes fault would create.

    Steps are validated with the fault's own spec model, so a wrong field is
    reported here as it would be by ``mlchaos validate``.  Faults that are not
    Kubernetes faults are listed with a note and no object.
    """
    from mlchaos import registry
    from mlchaos.platforms.kubernetes.chaosmesh import PodScope
    from mlchaos.platforms.kubernetes.specs import parse_selector

    targets = _targets(experiment)
    steps: list[RenderedStep] = []
    for i, raw in enumerate(experiment.get("method") or []):
        fault = str(raw.get("fault", ""))
        if fault not in KUBERNETES_FAULTS:
            steps.append(
                RenderedStep(i, fault, None, f"not a Kubernetes fault ({fault!r}): nothing to render")
            )
            continue
        plugin = registry.get("fault", fault)
        spec = plugin.Spec.model_validate(raw)
        target = targets.get(spec.target) or {}
        if target and target.get("platform", "kubernetes") != "kubernetes":
            raise ValueError(
                f"method[{i}] ({fault}) points at target {spec.target!r}, which is not kubernetes"
            )
        namespace = getattr(spec, "namespace", None) or target.get("namespace") or "default"
        if fault in API_FAULTS:
            what = (
                f"delete pods (grace period {getattr(spec, 'grace_period', None)})"
                if fault == "pod-delete"
                else f"scale deployment {getattr(spec, 'deployment', '?')} to {getattr(spec, 'replicas', '?')}"
            )
            steps.append(
                RenderedStep(
                    i, fault, None, f"{what} in {namespace!r} through the Kubernetes API (no object)"
                )
            )
            continue
        labels = parse_selector(getattr(spec, "selector", None))
        note = "pods selected by labels here; a run lists them, applies keep_healthy and pins them by name"
        if labels is None:
            dep = getattr(spec, "deployment", None)
            labels = {}
            note = (
                f"pods of deployment {dep!r} (or a set-based selector) cannot be resolved without a cluster: "
                "the selector below is empty; a run pins the pods by name"
                if dep
                else "set-based selector cannot be expressed as labelSelectors; a run pins pods by name"
            )
        blast = spec.blast_mode()
        scope = PodScope.by_labels(
            namespace,
            labels,
            mode=blast,
            count=getattr(spec, "count", None),
            percent=getattr(spec, "percent", None),
        )
        name = dns_name("mlchaos", plugin.kind.lower(), run_id[:16], spec.name or str(i))
        obj = _render_dry(plugin, spec, scope, name=name, namespace=namespace, run_id=run_id, machine=machine)
        if fault == "k8s-network" and getattr(spec, "peer", None) is not None:
            note += "; the peer side selects all matching pods"
        if getattr(spec, "keep_healthy", 0):
            note += f"; keep_healthy={spec.keep_healthy} is enforced by mlchaos, not Chaos Mesh"
        steps.append(RenderedStep(i, fault, obj, note))
    return steps


def _render_dry(
    plugin: Any, spec: Any, scope: Any, *, name: str, namespace: str, run_id: str, machine: str | None
) -> dict[str, Any]:
    """Render with the fault's own ``render`` (the same code path as a run); no context needed."""
    fault = plugin(spec, cast(Any, None))
    obj: dict[str, Any] = fault.render(scope, name=name, run_id=run_id, namespace=namespace)
    if machine is not None:
        from mlchaos.platforms.kubernetes.labels import MACHINE_LABEL

        obj["metadata"]["labels"][MACHINE_LABEL] = machine
    return obj


def render_chaos(
    experiment: Mapping[str, Any], *, run_id: str = "dry-run", machine: str | None = None
) -> list[dict[str, Any]]:
    """The Chaos Mesh objects an experiment would create (``mlchaos k8s render``)."""
    return [s.object for s in render_plan(experiment, run_id=run_id, machine=machine) if s.object is not None]
