"""Every Chaos Mesh object mlchaos can render validates against the Chaos Mesh CRD schemas.

The schemas are the CRDs shipped by Chaos Mesh (../shared/schemas/chaos-mesh, vendored in
data/), made strict (see schemas.py): an unknown or mistyped field fails.  No live cluster
or Chaos Mesh runs here or in CI; what is proven is that the objects are what the API
server's schema accepts, not that Chaos Mesh then injects the fault.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import jsonschema
import pytest

from mlchaos.platforms.kubernetes import chaosmesh as cm
from mlchaos.platforms.kubernetes.labels import MACHINE_LABEL, RUN_ID_LABEL
from mlchaos.platforms.kubernetes.render import render_chaos
from mlchaos.platforms.kubernetes.selection import PodRef
from tests.k8s.schemas import GO_DURATION, crd_path, make_strict, validate_chaos

PODS = [PodRef("mlchaos-lab", "serving-model-a", True), PodRef("mlchaos-lab", "serving-model-b", True)]
SCOPES = {
    "pinned": cm.PodScope.pinned(PODS),
    "one": cm.PodScope.by_labels("mlchaos-lab", {"app": "m"}),
    "count": cm.PodScope.by_labels("mlchaos-lab", {"app": "m"}, mode="count", count=2),
    "percent": cm.PodScope.by_labels("mlchaos-lab", {"app": "m"}, mode="percent", percent=0.34),
    "all": cm.PodScope.by_labels("mlchaos-lab", {}, mode="all"),
}
COMMON = {"name": "mlchaos-test", "namespace": "mlchaos-lab", "run_id": "run-1"}


def network_objects() -> list[dict[str, Any]]:
    out = []
    peer = cm.PodScope.by_labels("mlchaos-lab", {"app": "features"}, mode="all")
    for scope, direction in itertools.product(SCOPES.values(), ("to", "from", "both")):
        out.append(
            cm.network_chaos(
                **COMMON,
                scope=scope,
                action="delay",
                duration=30,
                latency=0.2,
                jitter=0.02,
                correlation=0.25,
                direction=direction,
                target=peer,
            )
        )
        out.append(
            cm.network_chaos(
                **COMMON,
                scope=scope,
                action="loss",
                duration=90,
                loss=0.1,
                direction=direction,
                external_targets=["10.96.0.10", "feature-store.example"],
            )
        )
        out.append(
            cm.network_chaos(
                **COMMON, scope=scope, action="partition", duration=1.5, direction=direction, target=peer
            )
        )
    return out


def http_objects() -> list[dict[str, Any]]:
    out = []
    for scope in SCOPES.values():
        out.append(cm.http_chaos(**COMMON, scope=scope, port=8000, path="/predict", abort=True, duration=10))
        out.append(
            cm.http_chaos(
                **COMMON, scope=scope, port=8000, path="/features/*", method="get", delay=0.5, duration=3600
            )
        )
        out.append(
            cm.http_chaos(
                **COMMON,
                scope=scope,
                port=8000,
                target="Response",
                patch_body={"score": 0, "fallback": False},
                patch_headers={"X-Chaos": "1"},
                duration=30,
            )
        )
        out.append(
            cm.http_chaos(**COMMON, scope=scope, port=8080, target="Response", replace_code=503, duration=30)
        )
    return out


def stress_objects() -> list[dict[str, Any]]:
    out = []
    for scope in SCOPES.values():
        out.append(cm.stress_chaos(**COMMON, scope=scope, cpu_workers=2, cpu_load=80, duration=60))
        out.append(
            cm.stress_chaos(
                **COMMON,
                scope=scope,
                memory_workers=1,
                memory_size="256MiB",
                duration=60,
                container_names=["model"],
            )
        )
        out.append(
            cm.stress_chaos(
                **COMMON, scope=scope, cpu_workers=1, memory_workers=1, memory_size="50%", duration=60
            )
        )
    return out


def all_objects() -> list[dict[str, Any]]:
    return network_objects() + http_objects() + stress_objects()


KINDS = [o["kind"] for o in all_objects()]  # rendered again inside the test, under the fixtures


@pytest.mark.parametrize("index", range(len(KINDS)), ids=[f"{k}-{i}" for i, k in enumerate(KINDS)])
def test_rendered_object_validates_strictly(index: int) -> None:
    obj = all_objects()[index]
    validate_chaos(obj)
    labels = obj["metadata"]["labels"]
    assert labels[RUN_ID_LABEL] == "run-1"
    assert labels[MACHINE_LABEL] == "test-machine"
    assert GO_DURATION.match(obj["spec"]["duration"])


def test_pinned_scope_selects_exactly_the_chosen_pods() -> None:
    obj = cm.network_chaos(**COMMON, scope=SCOPES["pinned"], action="delay", latency=0.2, duration=30)
    assert obj["spec"]["mode"] == "all"
    assert obj["spec"]["selector"] == {"pods": {"mlchaos-lab": ["serving-model-a", "serving-model-b"]}}


@pytest.mark.parametrize(
    ("mutate", "why"),
    [
        (lambda o: o["spec"]["delay"].update(latancy="1s"), "unknown field in delay"),
        (lambda o: o["spec"].update(durations="30s"), "unknown field in spec"),
        (lambda o: o["spec"].update(mode="some"), "mode outside the enum"),
        (lambda o: o["spec"]["delay"].update(latency="200 ms"), "latency fails the CRD pattern"),
        (lambda o: o["spec"].update(duration="thirty seconds"), "duration is not a Go duration"),
        (lambda o: o["metadata"].update(lables={"a": "b"}), "unknown metadata field"),
        (lambda o: o.update(apiVersion="chaos-mesh.org/v1"), "wrong apiVersion"),
        (lambda o: o["spec"].pop("selector"), "required selector missing"),
        (lambda o: o["spec"].update(mode="fixed"), "fixed mode without value"),
        (lambda o: o["spec"]["selector"].update(labelSelectors={"app": 3}), "label value not a string"),
    ],
)
def test_strict_validation_catches_wrong_objects(mutate: Any, why: str) -> None:
    obj = cm.network_chaos(**COMMON, scope=SCOPES["one"], action="delay", latency=0.2, duration=30)
    validate_chaos(obj)
    bad = copy.deepcopy(obj)
    mutate(bad)
    with pytest.raises(jsonschema.ValidationError):
        validate_chaos(bad)


def test_strict_http_and_stress_reject_unknown_fields() -> None:
    http = cm.http_chaos(**COMMON, scope=SCOPES["one"], port=8000, abort=True, duration=5)
    http["spec"]["patch"] = {"body": {"type": "JSON", "value": "{}", "extra": 1}}
    with pytest.raises(jsonschema.ValidationError):
        validate_chaos(http)
    stress = cm.stress_chaos(**COMMON, scope=SCOPES["one"], cpu_workers=1, duration=5)
    stress["spec"]["stressors"]["cpu"]["load"] = 101
    with pytest.raises(jsonschema.ValidationError):
        validate_chaos(stress)


def test_make_strict_keeps_open_maps_open() -> None:
    schema = make_strict(
        {
            "type": "object",
            "properties": {
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        }
    )
    assert schema["additionalProperties"] is False
    assert schema["properties"]["labels"]["additionalProperties"] == {"type": "string"}
    assert "additionalProperties" not in schema["properties"]["free"]


def test_crds_are_found() -> None:
    for kind in ("NetworkChaos", "HTTPChaos", "StressChaos", "PodChaos"):
        assert crd_path(kind).is_file()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (30, "30s"),
        (90, "1m30s"),
        (3600, "1h"),
        (3661, "1h1m1s"),
        (0.25, "250ms"),
        (1.5, "1500ms"),
        (0.0001, "100us"),
    ],
)
def test_go_duration(seconds: float, text: str) -> None:
    assert cm.go_duration(seconds) == text
    assert GO_DURATION.match(text)


def test_go_duration_refuses_non_positive() -> None:
    with pytest.raises(ValueError):
        cm.go_duration(0)


def test_render_chaos_of_an_experiment_validates() -> None:
    exp = {
        "title": "t",
        "target": {"platform": "kubernetes", "namespace": "shop"},
        "method": [
            {
                "fault": "k8s-network",
                "selector": "app=model",
                "action": "delay",
                "latency": "200ms",
                "duration": "30s",
                "percent": "50%",
            },
            {
                "fault": "k8s-http",
                "selector": {"app": "model"},
                "port": 8000,
                "path": "/predict",
                "abort": True,
                "duration": "10s",
                "count": 2,
            },
            {
                "fault": "k8s-stress",
                "deployment": "model",
                "memory_workers": 1,
                "memory_size": "128MiB",
                "duration": "1m",
            },
            {"fault": "pod-delete", "selector": "app=model"},
            {"fault": "process-pause", "count": 1},
        ],
    }
    objs = render_chaos(exp, run_id="r-42")
    assert [o["kind"] for o in objs] == ["NetworkChaos", "HTTPChaos", "StressChaos"]
    for o in objs:
        validate_chaos(o)
        assert o["metadata"]["namespace"] == "shop"
    assert objs[0]["spec"]["mode"] == "fixed-percent" and objs[0]["spec"]["value"] == "50"
    assert objs[1]["spec"]["mode"] == "fixed" and objs[1]["spec"]["value"] == "2"


def test_vendored_crds_match_shared_copies() -> None:
    """The copies in data/ are for CI clones without ../shared; they must not drift from it."""
    from tests.k8s.schemas import CRD_FILES, DATA, SHARED

    if not (SHARED / "chaos-mesh").is_dir():
        pytest.skip("../shared/schemas is not beside this checkout")
    for name in CRD_FILES.values():
        assert (DATA / "chaos-mesh" / name).read_bytes() == (SHARED / "chaos-mesh" / name).read_bytes()


def test_plugin_modules_do_not_import_the_kubernetes_client() -> None:
    """Validating an experiment must stay cheap: the client is imported only to talk to a cluster."""
    import subprocess
    import sys

    code = (
        "import sys, mlchaos.faults.kubernetes, mlchaos.faults.chaosmesh, mlchaos.probes.kubernetes, "
        "mlchaos.targets.kubernetes, mlchaos.platforms.kubernetes.manifests, mlchaos.platforms.kubernetes.render, "
        "mlchaos.cli.k8s; print('kubernetes' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"
