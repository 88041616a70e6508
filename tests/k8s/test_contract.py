"""Contract tests: the real ``kubernetes`` client against a local replay of the Kubernetes API.

No live cluster runs here or in CI.  A local HTTP server on 127.0.0.1 (replay.py) answers
with recorded API responses (data/recorded, validated against the strict Kubernetes
schemas below) and records every request, so these tests check the calls mlchaos makes -
list pods, delete pod, read and patch scale, create and delete Chaos Mesh objects,
delete-collection by label - and, above all, that the namespace allow-list and
keep-N-ready refusals happen before any mutating request reaches the server.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from mlchaos.contract.lease import Lease
from mlchaos.faults.chaosmesh import K8sHttp, K8sNetwork, K8sStress
from mlchaos.faults.kubernetes import DeploymentScale, PodDelete
from mlchaos.platforms.kubernetes import cleanup
from mlchaos.platforms.kubernetes.client import Connection, KubeClient, NamespaceNotAllowed
from mlchaos.platforms.kubernetes.labels import MACHINE_LABEL, RUN_ID_LABEL
from mlchaos.plugin import FaultError, ProbeError, TargetError
from mlchaos.probes.kubernetes import DeploymentAvailable, PodEvents, ReadyPods
from mlchaos.targets.kubernetes import KubernetesTarget
from tests.k8s.conftest import FakeContext
from tests.k8s.replay import ReplayServer, Request, echo_created, recorded
from tests.k8s.schemas import validate_chaos, validate_k8s

NS = "mlchaos-lab"
PODS = f"/api/v1/namespaces/{NS}/pods"
POD = PODS + "/(?P<name>[^/]+)"
DEPLOY = f"/apis/apps/v1/namespaces/{NS}/deployments/serving-model"
CM = "/apis/chaos-mesh.org/v1alpha1"
READY = {"serving-model-5d8f7c9b6d-2xk8q", "serving-model-5d8f7c9b6d-7hj4m", "serving-model-5d8f7c9b6d-9tq2w"}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def lease() -> Lease:
    return Lease.new("lease-1", 5.0)


def make_ctx(api: ReplayServer, **target: Any) -> FakeContext:
    spec = KubernetesTarget.Spec.model_validate(
        {"platform": "kubernetes", "namespace": NS, "server": api.url, **target}
    )
    ctx = FakeContext()
    ctx.targets["default"] = KubernetesTarget(spec, ctx)
    return ctx


def fault(cls: Any, ctx: FakeContext, **spec: Any) -> Any:
    return cls(cls.Spec.model_validate(spec), ctx)


def serve_cluster(api: ReplayServer) -> None:
    """The recorded state of a small cluster: 4 serving pods (3 ready), a deployment, its scale."""
    api.route("GET", "/version/?", "version.json")
    api.route("GET", PODS, "list-pods-serving.json")
    api.route("DELETE", POD, "delete-pod.json")
    api.route("GET", DEPLOY, "read-deployment-serving.json")
    api.route("GET", DEPLOY + "/scale", "read-scale-serving.json")
    api.route("PATCH", DEPLOY + "/scale", "patch-scale-serving.json")
    api.route("GET", f"/api/v1/namespaces/{NS}/events", "list-events.json")
    api.route("POST", CM + f"/namespaces/{NS}/(networkchaos|httpchaos|stresschaos)", echo_created)
    api.route(
        "DELETE",
        CM + f"/namespaces/{NS}/(networkchaos|httpchaos|stresschaos)/[^/]+",
        (200, recorded("status-success.json")),
    )


# -- the recorded responses themselves -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("list-pods-serving.json", "PodList"),
        ("read-deployment-serving.json", "Deployment"),
        ("read-scale-serving.json", "Scale"),
        ("patch-scale-serving.json", "Scale"),
        ("list-events.json", "EventList"),
        ("status-not-found.json", "Status"),
        ("status-success.json", "Status"),
        ("version.json", "Info"),
    ],
)
def test_recorded_responses_have_the_api_shape(name: str, kind: str) -> None:
    validate_k8s(recorded(name), kind)


def test_recorded_chaos_objects_validate() -> None:
    for item in recorded("list-networkchaos-machine.json")["items"]:
        validate_chaos(item)


# -- reads ---------------------------------------------------------------------------------------------


def test_list_pods_sends_label_selector_and_reads_readiness(api: ReplayServer) -> None:
    serve_cluster(api)
    client = KubeClient(Connection(server=api.url))
    pods = client.list_pods(NS, "app.kubernetes.io/name=serving-model")
    assert api.calls() == [("GET", PODS)]
    assert api.requests[0].query["labelSelector"] == ["app.kubernetes.io/name=serving-model"]
    assert {p.name for p in pods if p.ready} == READY
    assert len(pods) == 4
    assert next(p for p in pods if p.name.endswith("2xk8q")).ip == "10.244.0.11"


def test_target_preflight_is_read_only(api: ReplayServer) -> None:
    serve_cluster(api)
    facts = run(make_ctx(api).targets["default"].preflight())
    assert facts["pods"] == 4 and facts["allowed_namespaces"] == [NS]
    assert facts["server"]["git_version"] == "v1.37.0"
    assert not api.mutations()


def test_target_preflight_reports_unreachable() -> None:
    ctx = FakeContext()
    spec = KubernetesTarget.Spec.model_validate({"namespace": NS, "server": "http://127.0.0.1:9"})
    with pytest.raises(TargetError, match="version"):
        run(KubernetesTarget(spec, ctx).preflight())


# -- pod-delete ---------------------------------------------------------------------------------------


def test_pod_delete_deletes_one_ready_pod_with_grace_period(api: ReplayServer) -> None:
    serve_cluster(api)
    ctx = make_ctx(api)
    f = fault(
        PodDelete,
        ctx,
        fault="pod-delete",
        selector={"app.kubernetes.io/name": "serving-model"},
        count=1,
        keep_healthy=2,
        grace_period="0s",
        seed=7,
    )
    plan = run(f.preflight())
    assert plan["selected"] == 1 and plan["ready"] == 3 and not api.mutations()
    applied = run(f.inject(lease()))
    deletes = api.mutations()
    assert len(deletes) == 1
    assert deletes[0].method == "DELETE" and re.fullmatch(POD, deletes[0].path)
    name = deletes[0].path.rsplit("/", 1)[1]
    assert name in READY  # never a pod that is already not ready
    assert deletes[0].query["gracePeriodSeconds"] == ["0"]
    assert applied.targets == [f"{NS}/{name}"]
    assert applied.undo["connection"] == {"server": api.url}
    PodDelete.revert(json.loads(json.dumps(applied.undo)))  # nothing to undo, and no request
    assert len(api.mutations()) == 1


def test_pod_delete_by_deployment_uses_its_selector(api: ReplayServer) -> None:
    serve_cluster(api)
    f = fault(PodDelete, make_ctx(api), fault="pod-delete", deployment="serving-model", percent="50%")
    applied = run(f.inject(lease()))
    assert api.calls()[0] == ("GET", DEPLOY)
    assert api.requests[1].query["labelSelector"] == [
        "app.kubernetes.io/name=serving-model,mlchaos.io/system=serving"
    ]
    assert len(applied.targets) == 2  # ceil(50% of 4)


def test_keep_healthy_refusal_happens_before_any_mutation(api: ReplayServer) -> None:
    serve_cluster(api)
    f = fault(
        PodDelete,
        make_ctx(api),
        fault="pod-delete",
        selector="app.kubernetes.io/name=serving-model",
        count=2,
        keep_healthy=2,
    )
    with pytest.raises(FaultError, match="fewer than 2"):
        run(f.preflight())
    with pytest.raises(FaultError, match="fewer than 2"):
        run(f.inject(lease()))
    assert api.requests and not api.mutations()


def test_keep_healthy_shrink_hits_fewer_pods(api: ReplayServer) -> None:
    serve_cluster(api)
    f = fault(
        PodDelete,
        make_ctx(api),
        fault="pod-delete",
        selector="app=x",
        count=3,
        keep_healthy=2,
        on_shortfall="shrink",
    )
    applied = run(f.inject(lease()))
    assert len(applied.targets) == 1 and applied.planned["shrunk"] is True
    assert len(api.mutations()) == 1


def test_allow_list_refusal_happens_before_any_request(api: ReplayServer) -> None:
    serve_cluster(api)
    f = fault(
        PodDelete, make_ctx(api), fault="pod-delete", namespace="kube-system", selector="k8s-app=kube-dns"
    )
    with pytest.raises(FaultError, match="allow-list"):
        run(f.preflight())
    with pytest.raises(FaultError, match="allow-list"):
        run(f.inject(lease()))
    assert api.requests == []


def test_environment_allow_list_only_narrows(api: ReplayServer, monkeypatch: pytest.MonkeyPatch) -> None:
    serve_cluster(api)
    monkeypatch.setenv("MLCHAOS_K8S_ALLOWED_NAMESPACES", "staging")
    ctx = make_ctx(api, allowed_namespaces=[NS, "staging"])
    assert ctx.targets["default"].allowed_namespaces == frozenset({"staging"})  # type: ignore[attr-defined]
    f = fault(PodDelete, ctx, fault="pod-delete", selector="app=x")
    with pytest.raises(FaultError, match="allow-list"):
        run(f.inject(lease()))
    assert not api.mutations()


def test_client_refuses_mutations_outside_allow_list(api: ReplayServer) -> None:
    client = KubeClient(Connection(server=api.url), allowed_namespaces=["a"])
    with pytest.raises(NamespaceNotAllowed):
        client.delete_pod("b", "p")
    with pytest.raises(NamespaceNotAllowed):
        client.scale_deployment("b", "d", 0)
    with pytest.raises(NamespaceNotAllowed):
        client.delete_chaos_collection("networkchaos", "b", label_selector="x=y")
    obj = {
        "kind": "NetworkChaos",
        "metadata": {"name": "n", "namespace": "a"},
        "spec": {"selector": {"pods": {"b": ["p"]}}},
    }
    with pytest.raises(NamespaceNotAllowed):
        client.create_chaos(obj)  # object allowed, but it would inject into pods of 'b'
    assert api.requests == []


def test_pod_already_gone_is_reported(api: ReplayServer) -> None:
    serve_cluster(api)
    api.routes.insert(0, ("DELETE", re.compile(POD), lambda r, m: (404, recorded("status-not-found.json"))))
    f = fault(PodDelete, make_ctx(api), fault="pod-delete", selector="app=x", count=1)
    applied = run(f.inject(lease()))
    assert applied.targets == [] and len(applied.actual["already_gone"]) == 1


def test_api_error_becomes_fault_error(api: ReplayServer) -> None:
    serve_cluster(api)
    forbidden = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": "Forbidden",
        "message": "pods is forbidden",
        "code": 403,
    }
    api.routes.insert(0, ("DELETE", re.compile(POD), lambda r, m: (403, forbidden)))
    f = fault(PodDelete, make_ctx(api), fault="pod-delete", selector="app=x", count=1)
    with pytest.raises(FaultError, match="403"):
        run(f.inject(lease()))


# -- deployment-scale ---------------------------------------------------------------------------------


def test_deployment_scale_patches_scale_and_restores(api: ReplayServer) -> None:
    serve_cluster(api)
    f = fault(
        DeploymentScale,
        make_ctx(api),
        fault="deployment-scale",
        deployment="serving-model",
        replicas=1,
        keep_healthy=1,
    )
    plan = run(f.preflight())
    assert plan["replicas_during_fault"] == 1 and not api.mutations()
    applied = run(f.inject(lease()))
    (patch,) = api.mutations()
    assert (patch.method, patch.path) == ("PATCH", DEPLOY + "/scale")
    assert patch.body == {"spec": {"replicas": 1}}
    assert patch.content_type == "application/merge-patch+json"
    assert applied.actual["original"] == 4
    run(f.remove())
    assert api.mutations()[-1].body == {"spec": {"replicas": 4}}
    DeploymentScale.revert(json.loads(json.dumps(applied.undo)))  # from the lease record alone
    assert [m.body for m in api.mutations()] == [{"spec": {"replicas": r}} for r in (1, 4, 4)]


def test_deployment_scale_keep_healthy_refusal_before_mutation(api: ReplayServer) -> None:
    serve_cluster(api)
    f = fault(
        DeploymentScale,
        make_ctx(api),
        fault="deployment-scale",
        deployment="serving-model",
        replicas=0,
        keep_healthy=1,
    )
    with pytest.raises(FaultError, match="fewer than 1"):
        run(f.inject(lease()))
    assert not api.mutations()
    shrink = fault(
        DeploymentScale,
        make_ctx(api),
        fault="deployment-scale",
        deployment="serving-model",
        replicas=0,
        keep_healthy=2,
        on_shortfall="shrink",
    )
    applied = run(shrink.inject(lease()))
    assert applied.actual["replicas"] == 2
    assert api.mutations()[-1].body == {"spec": {"replicas": 2}}


# -- Chaos Mesh faults ----------------------------------------------------------------------------------

CHAOS_CASES = [
    (
        K8sNetwork,
        "networkchaos",
        {
            "fault": "k8s-network",
            "action": "delay",
            "latency": "200ms",
            "jitter": "10ms",
            "peer": {"selector": {"app.kubernetes.io/name": "features"}},
        },
    ),
    (K8sNetwork, "networkchaos", {"fault": "k8s-network", "action": "loss", "loss": "15%"}),
    (
        K8sNetwork,
        "networkchaos",
        {
            "fault": "k8s-network",
            "action": "partition",
            "direction": "both",
            "peer": {"selector": "app=features"},
        },
    ),
    (K8sHttp, "httpchaos", {"fault": "k8s-http", "port": 8000, "path": "/predict", "abort": True}),
    (
        K8sHttp,
        "httpchaos",
        {"fault": "k8s-http", "port": 8000, "path": "/predict", "on": "response", "patch_body": {"score": 0}},
    ),
    (
        K8sStress,
        "stresschaos",
        {
            "fault": "k8s-stress",
            "cpu_workers": 2,
            "cpu_load": 50,
            "memory_workers": 1,
            "memory_size": "128MiB",
        },
    ),
]


@pytest.mark.parametrize(("cls", "plural", "extra"), CHAOS_CASES)
def test_chaos_fault_creates_labelled_object_and_deletes_it(
    api: ReplayServer, cls: Any, plural: str, extra: dict[str, Any]
) -> None:
    serve_cluster(api)
    ctx = make_ctx(api)
    f = fault(
        cls,
        ctx,
        selector="app.kubernetes.io/name=serving-model",
        count=2,
        keep_healthy=1,
        duration="30s",
        name="slow model",
        **extra,
    )
    applied = run(f.inject(lease()))
    (create,) = api.mutations()
    assert (create.method, create.path) == ("POST", f"{CM}/namespaces/{NS}/{plural}")
    obj = create.body
    validate_chaos(obj)
    assert obj["spec"]["duration"] == "30s"
    assert obj["spec"]["mode"] == "all"
    pinned = obj["spec"]["selector"]["pods"][NS]
    assert len(pinned) == 2 and set(pinned) <= READY
    assert obj["metadata"]["labels"][RUN_ID_LABEL] == ctx.run_id
    assert obj["metadata"]["labels"][MACHINE_LABEL] == "test-machine"
    assert sorted(applied.targets) == sorted(f"{NS}/{p}" for p in pinned)
    run(f.remove())
    delete = api.mutations()[-1]
    assert (delete.method, delete.path) == (
        "DELETE",
        f"{CM}/namespaces/{NS}/{plural}/{obj['metadata']['name']}",
    )
    # the watchdog / `mlchaos stop` path: a fresh process with the JSON lease record only
    api.routes.insert(
        0, ("DELETE", re.compile(f"{CM}/.*"), lambda r, m: (404, recorded("status-not-found.json")))
    )
    cls.revert(json.loads(json.dumps(applied.undo)))  # already gone: fine (idempotent)


def test_chaos_fault_keep_healthy_refusal_before_create(api: ReplayServer) -> None:
    serve_cluster(api)
    f = fault(
        K8sStress,
        make_ctx(api),
        fault="k8s-stress",
        selector="app=x",
        mode="all",
        keep_healthy=1,
        cpu_workers=1,
        duration="10s",
    )
    with pytest.raises(FaultError, match="fewer than 1"):
        run(f.inject(lease()))
    assert not api.mutations()


def test_network_peer_namespace_must_be_allowed_for_both_directions(api: ReplayServer) -> None:
    serve_cluster(api)
    f = fault(
        K8sNetwork,
        make_ctx(api),
        fault="k8s-network",
        selector="app=x",
        action="partition",
        direction="both",
        peer={"namespace": "payments", "selector": "app=db"},
        duration="10s",
    )
    with pytest.raises(FaultError, match="allow-list"):
        run(f.preflight())
    with pytest.raises(FaultError, match="allow-list"):
        run(f.inject(lease()))
    assert not api.mutations()


def test_create_refused_by_api_is_a_fault_error(api: ReplayServer) -> None:
    serve_cluster(api)
    missing = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": "NotFound",
        "message": "the server could not find the requested resource",
        "code": 404,
    }
    api.routes.insert(0, ("POST", re.compile(f"{CM}/.*"), lambda r, m: (404, missing)))
    f = fault(K8sHttp, make_ctx(api), fault="k8s-http", selector="app=x", port=80, abort=True, duration="5s")
    with pytest.raises(FaultError, match="create HTTPChaos"):
        run(f.inject(lease()))


# -- cleanup for `mlchaos stop` -----------------------------------------------------------------------------


def test_cleanup_deletes_this_machines_objects_by_label(api: ReplayServer) -> None:
    api.route("GET", f"{CM}/networkchaos", "list-networkchaos-machine.json")
    api.route("GET", f"{CM}/(httpchaos|stresschaos|podchaos)", "list-chaos-empty.json")
    api.route(
        "DELETE", f"{CM}/namespaces/[^/]+/networkchaos", (200, recorded("list-networkchaos-machine.json"))
    )
    result = cleanup({"server": api.url})
    assert result["errors"] == []
    assert result["deleted"] == {"networkchaos": {NS: 1, "team-b": 1}}
    selector = "mlchaos.io/machine=test-machine,app.kubernetes.io/managed-by=mlchaos"
    lists = [r for r in api.requests if r.method == "GET"]
    assert {r.path for r in lists} == {
        f"{CM}/{p}" for p in ("networkchaos", "httpchaos", "stresschaos", "podchaos")
    }
    assert all(r.query["labelSelector"] == [selector] for r in lists)
    deletes = api.mutations()
    assert sorted(r.path for r in deletes) == [
        f"{CM}/namespaces/{NS}/networkchaos",
        f"{CM}/namespaces/team-b/networkchaos",
    ]
    assert all(r.method == "DELETE" and r.query["labelSelector"] == [selector] for r in deletes)


def test_cleanup_in_given_namespaces_and_missing_crds(api: ReplayServer) -> None:
    def listing(req: Request, m: re.Match[str]) -> tuple[int, Any]:
        if m.group("plural") == "podchaos":  # this kind's CRD is not installed
            return 404, recorded("status-not-found.json")
        return 200, recorded(
            "list-networkchaos-machine.json"
            if m.group("plural") == "networkchaos"
            else "list-chaos-empty.json"
        )

    api.route("GET", f"{CM}/namespaces/{NS}/(?P<plural>[a-z]+)", listing)
    api.route("DELETE", f"{CM}/namespaces/{NS}/networkchaos", (200, recorded("list-chaos-empty.json")))
    result = cleanup({"server": api.url}, namespaces=[NS])
    assert result["errors"] == []
    assert list(result["deleted"]) == ["networkchaos"]
    assert [(r.method, r.path) for r in api.mutations()] == [("DELETE", f"{CM}/namespaces/{NS}/networkchaos")]


def test_cleanup_reports_errors_and_goes_on(api: ReplayServer) -> None:
    api.route("GET", f"{CM}/networkchaos", "list-networkchaos-machine.json")
    api.route("GET", f"{CM}/(httpchaos|stresschaos|podchaos)", "list-chaos-empty.json")
    api.route(
        "DELETE",
        f"{CM}/namespaces/team-b/networkchaos",
        (403, {"kind": "Status", "code": 403, "message": "forbidden"}),
    )
    api.route("DELETE", f"{CM}/namespaces/{NS}/networkchaos", (200, recorded("list-chaos-empty.json")))
    result = cleanup({"server": api.url})
    assert result["deleted"] == {"networkchaos": {NS: 1}}
    assert len(result["errors"]) == 1 and "403" in result["errors"][0]


# -- probes -------------------------------------------------------------------------------------------------------


def test_ready_pods_probe(api: ReplayServer) -> None:
    serve_cluster(api)
    ctx = make_ctx(api)
    p = ReadyPods(
        ReadyPods.Spec.model_validate({"probe": "k8s-ready-pods", "deployment": "serving-model"}), ctx
    )
    m = run(p.measure())
    assert m.value == 3 and m.detail["matched"] == 4
    assert not api.mutations()


def test_deployment_available_probe(api: ReplayServer) -> None:
    serve_cluster(api)
    spec = DeploymentAvailable.Spec.model_validate(
        {"probe": "k8s-deployment-available", "deployment": "serving-model"}
    )
    m = run(DeploymentAvailable(spec, make_ctx(api)).measure())
    assert m.value == 3 and m.detail["replicas"] == 4


def test_events_probe_filters_pods_and_journals(api: ReplayServer) -> None:
    serve_cluster(api)
    ctx = make_ctx(api)
    spec = PodEvents.Spec.model_validate({"probe": "k8s-events", "deployment": "serving-model"})
    p = PodEvents(spec, ctx)
    m = run(p.measure())
    reasons = [e["reason"] for e in m.detail["events"]]
    # the batch pod's BackOff is not one of the selected pods; the new replica (kq7zd) matches by prefix
    assert reasons == ["Pulled", "Killing", "Scheduled", "Unhealthy"]
    assert m.value == 4
    events_call = next(r for r in api.requests if r.path.endswith("/events"))
    assert events_call.query["fieldSelector"] == ["involvedObject.kind=Pod"]
    assert ctx.events[-1][0] == "k8s.events"
    warn = PodEvents(
        PodEvents.Spec.model_validate({"probe": "k8s-events", "selector": "app=x", "types": ["Warning"]}), ctx
    )
    assert run(warn.measure()).value == 0  # Unhealthy is on kq7zd, not among the listed pods
    windowed = PodEvents(
        PodEvents.Spec.model_validate(
            {"probe": "k8s-events", "deployment": "serving-model", "window": "10s"}
        ),
        ctx,
    )
    assert run(windowed.measure()).value == 0  # the recorded events are older than 10 s


def test_probe_api_failure_is_probe_error() -> None:
    ctx = FakeContext()
    ctx.targets["default"] = KubernetesTarget(
        KubernetesTarget.Spec.model_validate({"namespace": NS, "server": "http://127.0.0.1:9"}), ctx
    )
    p = ReadyPods(ReadyPods.Spec.model_validate({"probe": "k8s-ready-pods", "selector": "app=x"}), ctx)
    with pytest.raises(ProbeError):
        run(p.measure())


def test_cleanup_skips_a_machine_without_kubernetes(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    result = cleanup()
    assert result["skipped"] and result["deleted"] == {} and result["errors"] == []


def test_cleanup_unreachable_server_reports_one_error() -> None:
    result = cleanup({"server": "http://127.0.0.1:9"})
    assert len(result["errors"]) == 1 and result["deleted"] == {}


def test_failed_removal_is_a_fault_error(api: ReplayServer) -> None:
    serve_cluster(api)
    f = fault(
        DeploymentScale, make_ctx(api), fault="deployment-scale", deployment="serving-model", replicas=2
    )
    run(f.inject(lease()))
    api.routes.insert(0, ("PATCH", re.compile(".*"), lambda r, m: (500, {"kind": "Status", "code": 500})))
    with pytest.raises(FaultError, match="could not restore"):
        run(f.remove())


def test_cleanup_for_stop_sweeps_each_leased_cluster_once(
    api: ReplayServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from mlchaos.platforms.kubernetes import cleanup_for_stop

    monkeypatch.setenv("HOME", str(tmp_path))  # no default kubeconfig: the default sweep is skipped
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    api.route("GET", f"{CM}/[a-z]+", "list-chaos-empty.json")
    leased = {"plugin": "k8s-http", "undo": {"connection": {"server": api.url}, "objects": []}}
    records = [leased, leased, {"plugin": "process-pause", "undo": {"pids": [1]}}]
    results = cleanup_for_stop(records)
    assert [r["connection"] for r in results] == [{}, {"server": api.url}]
    assert results[0]["skipped"] and results[1]["errors"] == [] and results[1]["deleted"] == {}
    assert len([r for r in api.requests if r.method == "GET"]) == 4 and not api.mutations()
