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

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any, cast

from mlchaos.platforms.kubernetes.labels import dns_name

__all__ = [
    "API_FAULTS", "CHAOS_FAULTS", "KUBERNETES_FAULTS", "RenderedStep", "proxy_in_front", "render_chaos", "render_plan",
    "with_proxy_sidecar",
]


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
        if "step" in raw and "fault" not in raw:  # a command step runs where mlchaos runs, not in the cluster
            argv = " ".join(str(a) for a in raw.get("argv") or [])
            steps.append(RenderedStep(i, f"step: {raw.get('step')}", None, f"runs on this machine: {argv}"))
            continue
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


# -- the fault proxy in a cluster (stream faults reach a model server through it) --------------------------
PROXY_PORT = 8080
CONTROL_PORT = 8474
TOKEN_DIR = "/var/run/mlchaos"
PROXY_LABEL = "mlchaos.io/fault-proxy"


def _proxy_container(image: str, upstream: str, token_secret: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``mlchaos proxy`` container (HTTP mode, so stream faults apply) and the Secret volume with its token.

    The control API listens beyond loopback (an experiment reaches it through a Service or a port-forward),
    so the proxy requires a token: read from a Secret mounted owner-read-only (the proxy refuses a token file
    that group or others can read).
    """
    container = {
        "name": "fault-proxy",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["mlchaos", "proxy"],
        "args": ["--listen", f"0.0.0.0:{PROXY_PORT}", "--upstream", upstream, "--mode", "http",
                 "--control", f"0.0.0.0:{CONTROL_PORT}", "--token-file", f"{TOKEN_DIR}/token"],
        "ports": [{"name": "proxy", "containerPort": PROXY_PORT, "protocol": "TCP"},
                  {"name": "proxy-control", "containerPort": CONTROL_PORT, "protocol": "TCP"}],
        "readinessProbe": {"tcpSocket": {"port": "proxy"}, "periodSeconds": 2},
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "volumeMounts": [{"name": "fault-proxy-token", "mountPath": TOKEN_DIR, "readOnly": True}],
    }
    volume = {"name": "fault-proxy-token",
              "secret": {"secretName": token_secret, "defaultMode": 0o400, "items": [{"key": "token", "path": "token"}]}}
    return container, volume


def with_proxy_sidecar(
    deployment: Mapping[str, Any], *, app_port: int, image: str = "mlchaos:latest", token_secret: str = "mlchaos-proxy-token"
) -> dict[str, Any]:
    """A copy of a model server's Deployment with the fault proxy as a sidecar in front of ``app_port``.

    Point the model server's Service at the pod's ``proxy`` port (:func:`proxy_service` does) and every
    request reaches the server through the proxy on 127.0.0.1: stream faults then hit every replica's
    streams, chosen per request by the proxy's own ``probability`` and ``match``.
    """
    out = copy.deepcopy(dict(deployment))
    pod = out["spec"]["template"]["spec"]
    container, volume = _proxy_container(image, f"127.0.0.1:{app_port}", token_secret)
    pod["containers"] = [*pod.get("containers", []), container]
    pod["volumes"] = [*pod.get("volumes", []), volume]
    out["spec"]["template"].setdefault("metadata", {}).setdefault("labels", {})[PROXY_LABEL] = "sidecar"
    return out


def proxy_service(name: str, namespace: str, selector: Mapping[str, str], control: bool = False) -> dict[str, Any]:
    """A Service sending port 80 to the pods' fault proxy; with ``control``, its control API on 8474 too.

    Only for a single proxy (:func:`proxy_in_front`): behind a Service, a control call reaches one pod, and
    with sidecars each replica has its own fault table (address each pod's control port instead).
    """
    ports = [{"name": "http", "port": 80, "targetPort": "proxy", "protocol": "TCP"}]
    if control:
        ports.append({"name": "control", "port": CONTROL_PORT, "targetPort": "proxy-control", "protocol": "TCP"})
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": {PROXY_LABEL: name}},
        "spec": {
            "type": "ClusterIP",
            "selector": dict(selector),
            "ports": ports,
        },
    }


def proxy_in_front(
    name: str, *, upstream: str, namespace: str = "default", image: str = "mlchaos:latest",
    token_secret: str = "mlchaos-proxy-token",
) -> list[dict[str, Any]]:
    """A fault proxy Deployment and Service in front of an existing Service (``upstream``: HOST:PORT).

    Nothing of the model server changes; clients that should meet the faults (a gateway) use this
    Service instead.  One replica: one fault table, so a fault's ``probability`` and counters are exact.
    """
    labels = {PROXY_LABEL: name, "app.kubernetes.io/name": name}
    container, volume = _proxy_container(image, upstream, token_secret)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                         "spec": {"containers": [container], "volumes": [volume]}},
        },
    }
    return [deployment, proxy_service(name, namespace, labels, control=True)]
