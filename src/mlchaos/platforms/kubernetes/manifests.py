"""Kubernetes manifests for the lab systems (``mlchaos lab manifests``).

``render_lab(system)`` writes what the Minikube version of practice project 1
(and the other lab systems) needs on a real cluster: per component a
Deployment with readiness (``/ready``) and liveness (``/health``) probes, a
Service, one ConfigMap per system holding the model version and the variant,
and, for ``serving``, a HorizontalPodAutoscaler.  The containers run the same
lab modules ``mlchaos lab`` runs locally (``python -m mlchaos.lab.<module>``);
an init container builds the lab data and models (seeded, so every pod gets
the same ones) into an ``emptyDir``.  The image is a parameter: build one with
mlchaos installed and load it into the cluster (``minikube image load``).

The dry-run rendering of an experiment's Chaos Mesh objects (``mlchaos k8s
render``) is :mod:`mlchaos.platforms.kubernetes.render`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from mlchaos.platforms.kubernetes.labels import MANAGED_BY, MANAGED_BY_LABEL, dns_name

SYSTEMS = ("serving", "realtime", "batch", "recommender")
DEFAULT_IMAGE = "mlchaos:latest"
DEFAULT_NAMESPACE = "mlchaos-lab"
LAB_DIR = "/lab"
PORT = 8000
SYSTEM_LABEL = "mlchaos.io/system"
COMPONENT_LABEL = "app.kubernetes.io/name"
PART_OF_LABEL = "app.kubernetes.io/part-of"


@dataclasses.dataclass(frozen=True)
class Component:
    """One long-running lab service (one Deployment + Service)."""

    name: str
    module: str
    args: tuple[str, ...]
    replicas: int
    autoscale: bool = False


_MODELS = ("--models", f"{LAB_DIR}/models")
_FEATURE_DB = ("--db", f"{LAB_DIR}/data/features.sqlite")

COMPONENTS: dict[str, tuple[Component, ...]] = {
    "serving": (
        Component(
            "model",
            "mlchaos.lab.services.model_server",
            (*_MODELS, "--version", "$(MODEL_VERSION)"),
            replicas=3,
            autoscale=True,
        ),
    ),
    "realtime": (
        Component("features", "mlchaos.lab.services.feature_service", _FEATURE_DB, replicas=2),
        Component(
            "fraud",
            "mlchaos.lab.services.fraud_service",
            (
                *_MODELS,
                "--version",
                "$(MODEL_VERSION)",
                "--feature-url",
                "$(FEATURES_URL)",
                "--variant",
                "$(VARIANT)",
            ),
            replicas=2,
        ),
    ),
    "recommender": (
        Component("embedding", "mlchaos.lab.services.embedding_service", _MODELS, replicas=2),
        Component(
            "recommender",
            "mlchaos.lab.services.recommender_service",
            (*_MODELS, "--embedding-url", "$(EMBEDDING_URL)", "--variant", "$(VARIANT)"),
            replicas=2,
        ),
    ),
    "batch": (),  # the pipeline reads the offline store in its own pod: a Job, no service
}
"""What each lab system runs.  ``$(VAR)`` is expanded by Kubernetes from the ConfigMap."""

BATCH_COMMAND = (
    "python",
    "-m",
    "mlchaos.lab.batch",
    "--dir",
    LAB_DIR,
    "--variant",
    "$(VARIANT)",
    "--model",
    "$(MODEL_VERSION)",
)
"""The batch pipeline Job's command (override with ``batch_command=``)."""


def _labels(system: str, component: str | None = None) -> dict[str, str]:
    labels = {
        PART_OF_LABEL: "mlchaos-lab",
        SYSTEM_LABEL: system,
        MANAGED_BY_LABEL: MANAGED_BY,
    }
    if component:
        labels[COMPONENT_LABEL] = dns_name(system, component)
    return labels


def _selector(system: str, component: str) -> dict[str, str]:
    return {SYSTEM_LABEL: system, COMPONENT_LABEL: dns_name(system, component)}


def _meta(name: str, namespace: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": dict(labels)}


def _config_name(system: str) -> str:
    return dns_name(system, "config")


def _build_container(image: str) -> dict[str, Any]:
    code = (
        "from mlchaos.lab.build import ensure_built; from mlchaos.lab.paths import LabPaths; "
        f"ensure_built(LabPaths({LAB_DIR!r}))"
    )
    return {
        "name": "build-lab",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-c", code],
        "volumeMounts": [{"name": "lab", "mountPath": LAB_DIR}],
    }


def _env(system: str) -> list[dict[str, Any]]:
    return [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "MLCHAOS_LAB_DIR", "value": LAB_DIR},
    ]


def _resources() -> dict[str, Any]:
    # requests are needed for the HPA's CPU utilisation; the limit bounds a stress fault's blast radius
    return {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}


def _deployment(system: str, comp: Component, *, namespace: str, image: str, replicas: int) -> dict[str, Any]:
    name = dns_name(system, comp.name)
    http_get = {"path": "/ready", "port": "http"}
    container = {
        "name": comp.name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", comp.module],
        "args": ["--name", "$(POD_NAME)", "--port", str(PORT), *comp.args],
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "env": _env(system),
        "envFrom": [{"configMapRef": {"name": _config_name(system)}}],
        "readinessProbe": {
            "httpGet": http_get,
            "initialDelaySeconds": 1,
            "periodSeconds": 2,
            "timeoutSeconds": 1,
            "failureThreshold": 2,
        },
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "initialDelaySeconds": 5,
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "resources": _resources(),
        "volumeMounts": [{"name": "lab", "mountPath": LAB_DIR}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, namespace, _labels(system, comp.name)),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": _selector(system, comp.name)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": _labels(system, comp.name)},
                "spec": {
                    "terminationGracePeriodSeconds": 10,
                    "initContainers": [_build_container(image)],
                    "containers": [container],
                    "volumes": [{"name": "lab", "emptyDir": {}}],
                },
            },
        },
    }


def _service(system: str, comp: Component, *, namespace: str) -> dict[str, Any]:
    name = dns_name(system, comp.name)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, namespace, _labels(system, comp.name)),
        "spec": {
            "type": "ClusterIP",
            "selector": _selector(system, comp.name),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _config_map(system: str, *, namespace: str, model_version: str, variant: str) -> dict[str, Any]:
    data = {"MODEL_VERSION": model_version, "VARIANT": variant}
    for comp in COMPONENTS[system]:
        data[f"{comp.name.upper()}_URL"] = f"http://{dns_name(system, comp.name)}"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(_config_name(system), namespace, _labels(system)),
        "data": data,
    }


def _hpa(system: str, comp: Component, *, namespace: str, replicas: int, max_replicas: int) -> dict[str, Any]:
    name = dns_name(system, comp.name)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(name, namespace, _labels(system, comp.name)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": replicas,
            "maxReplicas": max(max_replicas, replicas),
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
        },
    }


def _batch_job(system: str, *, namespace: str, image: str, command: Sequence[str]) -> dict[str, Any]:
    name = dns_name(system, "pipeline")
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(name, namespace, _labels(system, "pipeline")),
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": _labels(system, "pipeline")},
                "spec": {
                    "restartPolicy": "Never",
                    "initContainers": [_build_container(image)],
                    "containers": [
                        {
                            "name": "pipeline",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": list(command),
                            "env": _env(system),
                            "envFrom": [{"configMapRef": {"name": _config_name(system)}}],
                            "resources": _resources(),
                            "volumeMounts": [{"name": "lab", "mountPath": LAB_DIR}],
                        }
                    ],
                    "volumes": [{"name": "lab", "emptyDir": {}}],
                },
            },
        },
    }


def render_lab(
    system: str,
    *,
    image: str = DEFAULT_IMAGE,
    namespace: str = DEFAULT_NAMESPACE,
    model_version: str = "current",
    variant: str = "naive",
    replicas: int | None = None,
    max_replicas: int = 6,
    batch_command: Sequence[str] = BATCH_COMMAND,
) -> list[dict[str, Any]]:
    """The manifests of one lab system: ConfigMap, then per component Deployment + Service (+ HPA);
    for ``batch`` the ConfigMap and the pipeline Job.

    ``replicas`` overrides every component's default replica count (serving: 3).
    """
    if system not in COMPONENTS:
        raise ValueError(f"unknown lab system {system!r} (known: {', '.join(SYSTEMS)})")
    out: list[dict[str, Any]] = [
        _config_map(system, namespace=namespace, model_version=model_version, variant=variant)
    ]
    for comp in COMPONENTS[system]:
        n = replicas if replicas is not None else comp.replicas
        out.append(_deployment(system, comp, namespace=namespace, image=image, replicas=n))
        out.append(_service(system, comp, namespace=namespace))
        if comp.autoscale:
            out.append(_hpa(system, comp, namespace=namespace, replicas=n, max_replicas=max_replicas))
    if system == "batch":
        out.append(_batch_job(system, namespace=namespace, image=image, command=batch_command))
    return out


def namespace_manifest(namespace: str = DEFAULT_NAMESPACE) -> dict[str, Any]:
    """The namespace the lab runs in (``kubectl apply`` it first)."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": namespace,
            "labels": {PART_OF_LABEL: "mlchaos-lab", MANAGED_BY_LABEL: MANAGED_BY},
        },
    }


def experiment_files() -> dict[str, str]:
    """The Kubernetes experiment files shipped with the package (practice project 1 on Minikube)."""
    from importlib import resources

    folder = resources.files("mlchaos.platforms.kubernetes") / "experiments"
    return {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".yaml")
    }
