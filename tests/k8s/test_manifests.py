"""Lab manifests validate against the strict Kubernetes v1.37 schemas of their kinds.

The schemas are vendored in data/k8s-1.37-strict.json (from the kubernetes-validate
package, see data/SOURCE.txt).  No live cluster runs here or in CI: these tests prove the
manifests are well-formed for the API server, not that the pods start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from mlchaos.platforms.kubernetes.manifests import (
    SYSTEMS,
    experiment_files,
    namespace_manifest,
    render_lab,
)
from tests.k8s.schemas import validate_chaos, validate_k8s


@pytest.mark.parametrize("system", SYSTEMS)
def test_lab_manifests_validate(system: str) -> None:
    docs = render_lab(system, image="registry.local/mlchaos:0.1", namespace="lab")
    kinds = [d["kind"] for d in docs]
    assert kinds[0] == "ConfigMap"
    if system == "batch":
        assert kinds == ["ConfigMap", "Job"]
    else:
        assert "Deployment" in kinds and "Service" in kinds
    for doc in docs:
        validate_k8s(doc)
        assert doc["metadata"]["namespace"] == "lab"
    validate_k8s(namespace_manifest("lab"))


@pytest.mark.parametrize("system", SYSTEMS)
def test_deployments_have_probes_and_configurable_image(system: str) -> None:
    for dep in (d for d in render_lab(system, image="img:9") if d["kind"] == "Deployment"):
        pod = dep["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["image"] == "img:9"
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/health"
        assert pod["initContainers"][0]["image"] == "img:9"
        assert (
            dep["spec"]["selector"]["matchLabels"].items()
            <= dep["spec"]["template"]["metadata"]["labels"].items()
        )


def test_serving_has_hpa_and_model_version_config() -> None:
    docs = render_lab("serving", model_version="v7", replicas=4)
    by_kind = {d["kind"]: d for d in docs}
    assert by_kind["ConfigMap"]["data"]["MODEL_VERSION"] == "v7"
    assert by_kind["Deployment"]["spec"]["replicas"] == 4
    hpa = by_kind["HorizontalPodAutoscaler"]
    assert (
        hpa["spec"]["scaleTargetRef"]["name"] == by_kind["Deployment"]["metadata"]["name"] == "serving-model"
    )
    assert hpa["spec"]["minReplicas"] == 4
    container = by_kind["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert "$(MODEL_VERSION)" in container["args"]
    assert container["envFrom"][0]["configMapRef"]["name"] == by_kind["ConfigMap"]["metadata"]["name"]


def test_service_urls_in_config_point_at_services() -> None:
    docs = render_lab("realtime")
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    assert config["data"]["FEATURES_URL"] == "http://realtime-features"
    assert {u.removeprefix("http://") for k, u in config["data"].items() if k.endswith("_URL")} == services


def test_batch_job_runs_the_pipeline_with_config() -> None:
    job = render_lab("batch", variant="mitigated")[-1]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"][:3] == ["python", "-m", "mlchaos.lab.batch"]
    assert "$(VARIANT)" in container["command"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_unknown_system_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown lab system"):
        render_lab("nope")


def test_strict_k8s_schema_catches_a_typo() -> None:
    dep = next(d for d in render_lab("serving") if d["kind"] == "Deployment")
    dep["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(jsonschema.ValidationError):
        validate_k8s(dep)


def test_experiment_files_are_the_examples_catalog() -> None:
    """One source: `mlchaos examples copy` hands out exactly the experiments the manifests render."""
    from mlchaos.examples import catalog

    shipped = experiment_files()
    assert shipped, "no experiment files in the package"
    examples = {rel.split("/", 1)[1]: p.read_text() for rel, p in catalog().items() if rel.startswith("k8s/")}
    assert examples == shipped


def test_experiment_files_validate_and_render(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlchaos import registry
    from mlchaos.platforms.kubernetes.render import render_plan
    from mlchaos.probes.kubernetes import DeploymentAvailable, PodEvents, ReadyPods
    from mlchaos.spec.loader import load_text
    from mlchaos.targets.kubernetes import KubernetesTarget

    # the faults are built in (registry.BUILTIN); the probes and the target registered here by class
    registry.register("probe", "k8s-ready-pods", ReadyPods)
    registry.register("probe", "k8s-deployment-available", DeploymentAvailable)
    registry.register("probe", "k8s-events", PodEvents)
    registry.register("target", "kubernetes", KubernetesTarget)
    added = _register_load_probes(registry)
    try:
        for name, text in experiment_files().items():
            load_text(text, name)  # raises SpecErrors with file:line:col on any wrong field
            for step in render_plan(yaml.safe_load(text)):
                if step.object is not None:
                    validate_chaos(step.object)
    finally:
        for name in ("k8s-ready-pods", "k8s-deployment-available", "k8s-events"):
            registry.unregister("probe", name)
        registry.unregister("target", "kubernetes")
        for name in added:
            registry.unregister("probe", name)


def _register_load_probes(registry: Any) -> list[str]:
    """The experiments use the load-derived probes (latency, error-rate), owned by another module."""
    import inspect

    from mlchaos.plugin import Probe

    load = pytest.importorskip("mlchaos.probes.load")
    added = []
    for _, cls in inspect.getmembers(load, inspect.isclass):
        if issubclass(cls, Probe) and cls is not Probe and "probe" in cls.Spec.model_fields:
            name = cls.Spec.model_fields["probe"].default
            if isinstance(name, str) and name not in registry.names("probe"):
                registry.register("probe", name, cls)
                added.append(name)
    return added


def test_manifests_cli_writes_files(tmp_path: Path) -> None:
    import typer

    from mlchaos.cli.lab_manifests import manifests

    app = typer.Typer()
    app.command()(manifests)
    result = CliRunner().invoke(app, ["serving", "--out", str(tmp_path), "--image", "me/mlchaos:1"])
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all((tmp_path / "serving.yaml").read_text()))
    for doc in docs:
        validate_k8s(doc)
    assert any(d["kind"] == "HorizontalPodAutoscaler" for d in docs)
    assert (tmp_path / "namespace.yaml").is_file()
    assert (tmp_path / "experiments" / "p1-pod-delete.yaml").is_file()
    bad = CliRunner().invoke(app, ["nope", "--out", str(tmp_path)])
    assert bad.exit_code == 2
