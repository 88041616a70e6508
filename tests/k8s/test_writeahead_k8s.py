"""Write-ahead intents of the Kubernetes faults (issue #16): planned with no mutation, revertible before inject."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from mlchaos.faults.kubernetes import DeploymentScale, PodDelete
from tests.k8s.replay import ReplayServer, recorded
from tests.k8s.test_contract import CHAOS_CASES, CM, NS, fault, lease, make_ctx, run, serve_cluster


@pytest.mark.parametrize(("cls", "plural", "extra"), CHAOS_CASES)
def test_chaos_fault_intent_names_the_object_it_then_creates(
    api: ReplayServer, cls: Any, plural: str, extra: dict[str, Any]
) -> None:
    serve_cluster(api)
    f = fault(cls, make_ctx(api), selector="app.kubernetes.io/name=serving-model", count=2, duration="30s",
              name="slow model", **extra)
    undo = run(f.intent(lease()))
    assert not api.mutations()  # planning touches nothing
    (ref,) = undo["objects"]
    # killed before the create: revert deletes a name the cluster never had (404 counts as done)
    api.routes.insert(0, ("DELETE", re.compile(f"{CM}/.*"), lambda r, m: (404, recorded("status-not-found.json"))))
    cls.revert(json.loads(json.dumps(undo)))
    api.routes.pop(0)
    run(f.inject(lease()))
    create = next(m for m in api.mutations() if m.method == "POST")
    assert create.body["metadata"]["name"] == ref["name"] and create.path.endswith(f"/namespaces/{NS}/{plural}")


def test_deployment_scale_intent_records_the_count_before_scaling(api: ReplayServer) -> None:
    serve_cluster(api)
    f = fault(DeploymentScale, make_ctx(api), fault="deployment-scale", deployment="serving-model", replicas=1)
    undo = run(f.intent(lease()))
    assert not api.mutations() and undo["replicas"] == 4
    DeploymentScale.revert(json.loads(json.dumps(undo)))  # killed before the scale: restoring 4 is harmless
    applied = run(f.inject(lease()))
    assert [m.body for m in api.mutations()] == [{"spec": {"replicas": 4}}, {"spec": {"replicas": 1}}]
    assert applied.undo == undo


def test_pod_delete_plans_nothing_to_undo(api: ReplayServer) -> None:
    serve_cluster(api)
    f = fault(PodDelete, make_ctx(api), fault="pod-delete", selector="app=x", count=1)
    assert run(f.intent(lease())) == {}
    PodDelete.revert({})
    assert not api.mutations()
