"""Rendering Chaos Mesh objects (``chaos-mesh.org/v1alpha1``): pure functions, no cluster.

Why Chaos Mesh: it already runs a privileged agent on every node (tc/iptables
for network faults, an HTTP proxy for HTTP faults, stress-ng for stress), so
mlchaos drives it instead of shipping its own node agent.

Every object rendered here has:

* ``spec.duration``: the object's own expiry, the fault's lease.  If mlchaos
  dies, Chaos Mesh still recovers the fault when the duration ends.
* the owner labels of :mod:`.labels` (run id, machine, managed-by), so
  ``mlchaos stop`` finds and deletes all of this machine's objects.
* a pod scope: either explicit pods pinned by name (``mode: all`` over
  ``selector.pods``, what a run uses after mlchaos applied blast radius and
  keep-N-ready itself), or, for a dry run that has no cluster to ask, the
  label selector with Chaos Mesh's own ``mode``/``value``.

Objects are validated in the tests against the CRD OpenAPI schemas shipped by
Chaos Mesh, made strict (unknown fields are errors).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from mlchaos.platforms.kubernetes.labels import RUN_ID_ANNOTATION, owner_labels
from mlchaos.platforms.kubernetes.selection import PodRef

GROUP = "chaos-mesh.org"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
PLURALS: dict[str, str] = {
    "NetworkChaos": "networkchaos",
    "HTTPChaos": "httpchaos",
    "StressChaos": "stresschaos",
    "PodChaos": "podchaos",
}
"""Every kind mlchaos may create; ``mlchaos stop`` sweeps all of them."""

Mode = Literal["one", "all", "fixed", "fixed-percent", "random-max-percent"]


def plural_of(kind: str) -> str:
    try:
        return PLURALS[kind]
    except KeyError:
        raise ValueError(f"mlchaos does not create Chaos Mesh kind {kind!r}") from None


def go_duration(seconds: float) -> str:
    """Seconds as a Go duration string Chaos Mesh parses (``90`` → ``1m30s``, ``0.25`` → ``250ms``)."""
    if seconds <= 0 or not math.isfinite(seconds):
        raise ValueError(f"a Chaos Mesh duration must be positive, got {seconds!r}")
    ms = round(seconds * 1000)
    if ms == 0:
        return f"{max(1, round(seconds * 1_000_000))}us"
    if ms % 1000:
        return f"{ms}ms"
    s = ms // 1000
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    out = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s else "")
    return out or "0s"


def percent_string(fraction: float) -> str:
    """A fraction in [0, 1] as the decimal percent string Chaos Mesh wants (``0.05`` → ``"5"``)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"expected a fraction in [0, 1], got {fraction!r}")
    return f"{fraction * 100:.6g}"


@dataclasses.dataclass(frozen=True)
class PodScope:
    """Which pods a Chaos Mesh object acts on: ``selector`` + ``mode`` (+ ``value``)."""

    selector: dict[str, Any]
    mode: Mode = "all"
    value: str | None = None

    @classmethod
    def pinned(cls, pods: Sequence[PodRef]) -> PodScope:
        """Exactly these pods (mlchaos already applied blast radius and keep-N-ready)."""
        if not pods:
            raise ValueError("a Chaos Mesh object needs at least one pod")
        by_ns: dict[str, list[str]] = {}
        for p in pods:
            by_ns.setdefault(p.namespace, []).append(p.name)
        return cls(selector={"pods": {ns: sorted(names) for ns, names in sorted(by_ns.items())}}, mode="all")

    @classmethod
    def by_labels(
        cls,
        namespace: str,
        labels: Mapping[str, str],
        *,
        mode: Literal["one", "count", "percent", "all"] = "one",
        count: int | None = None,
        percent: float | None = None,
    ) -> PodScope:
        """Chaos Mesh selects at injection time (dry runs, and the ``target`` side of a partition).

        ``count`` maps to ``fixed`` and ``percent`` to ``fixed-percent``, whose
        rounding Chaos Mesh does as ``ceil`` like mlchaos; keep-N-ready cannot
        be expressed, which is why a run pins pods instead.
        """
        selector: dict[str, Any] = {"namespaces": [namespace]}
        if labels:
            selector["labelSelectors"] = dict(labels)
        if mode == "count" and count is not None:
            return cls(selector, "fixed", str(count))
        if mode == "percent" and percent is not None:
            return cls(selector, "fixed-percent", percent_string(percent))
        if mode == "all":
            return cls(selector, "all")
        return cls(selector, "one")

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"selector": self.selector, "mode": self.mode}
        if self.value is not None:
            out["value"] = self.value
        return out


def _metadata(
    name: str, namespace: str, run_id: str, fault: str | None, machine: str | None
) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "labels": owner_labels(run_id, fault=fault, machine=machine),
        "annotations": {RUN_ID_ANNOTATION: run_id},
    }


def _object(kind: str, meta: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": meta, "spec": spec}


def network_chaos(
    *,
    name: str,
    namespace: str,
    run_id: str,
    scope: PodScope,
    action: Literal["delay", "loss", "partition"],
    duration: float,
    latency: float | None = None,
    jitter: float | None = None,
    correlation: float | None = None,
    loss: float | None = None,
    direction: Literal["to", "from", "both"] = "to",
    target: PodScope | None = None,
    external_targets: Sequence[str] = (),
    fault: str | None = None,
    machine: str | None = None,
) -> dict[str, Any]:
    """A NetworkChaos between the scoped pods and a target (pods and/or external hosts).

    ``latency``/``jitter`` are seconds, ``loss``/``correlation`` fractions.
    Without a target the fault applies to all traffic of the scoped pods.
    """
    spec: dict[str, Any] = {"action": action, **scope.spec(), "duration": go_duration(duration)}
    if action == "delay":
        if latency is None:
            raise ValueError("a network delay needs 'latency'")
        delay: dict[str, Any] = {"latency": go_duration(latency)}
        if jitter:
            delay["jitter"] = go_duration(jitter)
        if correlation is not None:
            delay["correlation"] = percent_string(correlation)
        spec["delay"] = delay
    elif action == "loss":
        if loss is None:
            raise ValueError("a network loss needs 'loss'")
        lossd: dict[str, Any] = {"loss": percent_string(loss)}
        if correlation is not None:
            lossd["correlation"] = percent_string(correlation)
        spec["loss"] = lossd
    elif action != "partition":
        raise ValueError(f"unsupported network action {action!r}")
    spec["direction"] = direction
    if target is not None:
        spec["target"] = target.spec()
    if external_targets:
        spec["externalTargets"] = list(external_targets)
    if action == "partition" and target is None and not external_targets:
        raise ValueError("a partition needs a target (pods or external hosts) to cut off")
    return _object("NetworkChaos", _metadata(name, namespace, run_id, fault, machine), spec)


def http_chaos(
    *,
    name: str,
    namespace: str,
    run_id: str,
    scope: PodScope,
    port: int,
    duration: float,
    target: Literal["Request", "Response"] = "Request",
    path: str | None = None,
    method: str | None = None,
    abort: bool = False,
    delay: float | None = None,
    patch_body: Mapping[str, Any] | None = None,
    patch_headers: Mapping[str, str] | None = None,
    replace_code: int | None = None,
    fault: str | None = None,
    machine: str | None = None,
) -> dict[str, Any]:
    """An HTTPChaos on ``port`` (+ ``path``): abort, delay, and/or patch (JSON merge patch of the body)."""
    if not (abort or delay or patch_body or patch_headers or replace_code):
        raise ValueError("an HTTP fault needs abort, delay, patch_body, patch_headers or replace_code")
    spec: dict[str, Any] = {
        **scope.spec(),
        "target": target,
        "port": int(port),
        "duration": go_duration(duration),
    }
    if path:
        spec["path"] = path
    if method:
        spec["method"] = method.upper()
    if abort:
        spec["abort"] = True
    if delay:
        spec["delay"] = go_duration(delay)
    if patch_body or patch_headers:
        patch: dict[str, Any] = {}
        if patch_body:
            patch["body"] = {"type": "JSON", "value": json.dumps(dict(patch_body), separators=(",", ":"))}
        if patch_headers:
            patch["headers"] = [[k, v] for k, v in patch_headers.items()]
        spec["patch"] = patch
    if replace_code is not None:
        spec["replace"] = {"code": int(replace_code)}
    return _object("HTTPChaos", _metadata(name, namespace, run_id, fault, machine), spec)


def stress_chaos(
    *,
    name: str,
    namespace: str,
    run_id: str,
    scope: PodScope,
    duration: float,
    cpu_workers: int | None = None,
    cpu_load: int | None = None,
    memory_workers: int | None = None,
    memory_size: str | None = None,
    container_names: Sequence[str] = (),
    fault: str | None = None,
    machine: str | None = None,
) -> dict[str, Any]:
    """A StressChaos (stress-ng inside the pods' cgroups): CPU workers/load and/or memory."""
    stressors: dict[str, Any] = {}
    if cpu_workers:
        cpu: dict[str, Any] = {"workers": int(cpu_workers)}
        if cpu_load is not None:
            cpu["load"] = int(cpu_load)
        stressors["cpu"] = cpu
    if memory_workers:
        mem: dict[str, Any] = {"workers": int(memory_workers)}
        if memory_size:
            mem["size"] = memory_size
        stressors["memory"] = mem
    if not stressors:
        raise ValueError("a stress fault needs cpu_workers and/or memory_workers")
    spec: dict[str, Any] = {**scope.spec(), "stressors": stressors, "duration": go_duration(duration)}
    if container_names:
        spec["containerNames"] = list(container_names)
    return _object("StressChaos", _metadata(name, namespace, run_id, fault, machine), spec)


def object_ref(obj: Mapping[str, Any]) -> dict[str, str]:
    """The JSON-able reference a lease keeps to delete an object later."""
    return {
        "kind": obj["kind"],
        "plural": plural_of(obj["kind"]),
        "namespace": obj["metadata"]["namespace"],
        "name": obj["metadata"]["name"],
    }
