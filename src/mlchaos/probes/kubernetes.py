"""Kubernetes probes: ready pods for a selector, deployment available replicas, pod events.

They only read (list/get), so they are safe in baseline, during the fault and
in recovery.  An API failure is a failed observation (``ProbeError``), never
a pass.  The events probe records the events themselves in the measurement
detail and in the journal, because "why did the replica come back slowly"
(``FailedScheduling``, ``Unhealthy``, ``BackOff``) is read there.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from mlchaos.platforms.kubernetes.specs import PodSelectorFields, selector_string
from mlchaos.plugin import Context, Measurement, PluginError, Probe, ProbeError, ProbeSpec

if TYPE_CHECKING:
    from mlchaos.targets.kubernetes import KubernetesTarget


def _kube_target(ctx: Context, name: str) -> KubernetesTarget:
    from mlchaos.targets.kubernetes import KubernetesTarget

    target = ctx.target(name)
    if not isinstance(target, KubernetesTarget):
        raise ProbeError(f"target {name!r} is not a kubernetes target")
    return target


async def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except PluginError as exc:
        raise ProbeError(str(exc)) from exc


class _PodProbe(Probe):
    """Resolves namespace + selector (or a deployment's selector) against the target."""

    def _ns(self) -> str:
        ns = getattr(self.spec, "namespace", None)
        return ns or _kube_target(self.ctx, self.spec.target).namespace

    async def _selector(self) -> str:
        dep = getattr(self.spec, "deployment", None)
        if dep:
            client = _kube_target(self.ctx, self.spec.target).client
            info = await _call(client.read_deployment, self._ns(), dep)
            return str(info["selector_string"])
        return selector_string(getattr(self.spec, "selector", None))


class ReadyPods(_PodProbe):
    """Number of ready pods matching the selector (terminating pods do not count)."""

    unit: ClassVar[str] = "pods"

    class Spec(ProbeSpec, PodSelectorFields):
        probe: Literal["k8s-ready-pods"] = "k8s-ready-pods"

    async def measure(self) -> Measurement:
        client = _kube_target(self.ctx, self.spec.target).client
        ns, selector = self._ns(), await self._selector()
        pods = await _call(client.list_pods, ns, selector)
        ready = [p.name for p in pods if p.ready]
        return Measurement(
            value=len(ready),
            detail={"namespace": ns, "selector": selector, "matched": len(pods), "ready": sorted(ready)},
            samples=1,
        )


class DeploymentAvailable(Probe):
    """``status.availableReplicas`` of a deployment (0 when the field is absent)."""

    unit: ClassVar[str] = "replicas"

    class Spec(ProbeSpec):
        probe: Literal["k8s-deployment-available"] = "k8s-deployment-available"
        deployment: str = Field(description="Name of the deployment.")
        namespace: str | None = Field(None, description="Its namespace; default: the target's.")

    async def measure(self) -> Measurement:
        assert isinstance(self.spec, DeploymentAvailable.Spec)
        target = _kube_target(self.ctx, self.spec.target)
        ns = self.spec.namespace or target.namespace
        info = await _call(target.client.read_deployment, ns, self.spec.deployment)
        return Measurement(
            value=info["available"],
            detail={k: info[k] for k in ("name", "namespace", "replicas", "ready", "available", "updated")},
            samples=1,
        )


class PodEvents(_PodProbe):
    """Kubernetes events of the selected pods in a window; the value is their count.

    Window: ``window`` back from now when set, else since the probe started
    (the engine starts it at the beginning of the phase it watches), else all
    events the API still keeps (about one hour by default).  Pods deleted by a
    fault no longer match a list, so every pod name seen since start (and,
    with ``deployment``, any pod named ``<deployment>-...``) is matched.
    """

    unit: ClassVar[str] = "events"

    class Spec(ProbeSpec, PodSelectorFields):
        probe: Literal["k8s-events"] = "k8s-events"
        types: list[Literal["Normal", "Warning"]] | None = Field(
            None, description="Only these event types, e.g. [Warning]; default: all."
        )
        reasons: list[str] | None = Field(None, description="Only these reasons, e.g. [Killing, Unhealthy].")

    def __init__(self, spec: ProbeSpec, ctx: Context) -> None:
        super().__init__(spec, ctx)
        self._since: dt.datetime | None = None
        self._seen: set[str] = set()

    async def start(self) -> None:
        self._since = dt.datetime.now(dt.UTC)
        await self._remember_pods()

    async def _remember_pods(self) -> None:
        client = _kube_target(self.ctx, self.spec.target).client
        pods = await _call(client.list_pods, self._ns(), await self._selector())
        self._seen.update(p.name for p in pods)

    async def measure(self) -> Measurement:
        assert isinstance(self.spec, PodEvents.Spec)
        client = _kube_target(self.ctx, self.spec.target).client
        await self._remember_pods()
        since = self._since
        if self.spec.window is not None:
            since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=self.spec.window)
        events = await _call(client.list_events, self._ns(), since=since)
        prefix = f"{self.spec.deployment}-" if self.spec.deployment else None
        kept = []
        for ev in events:
            pod = ev["object"].split("/", 1)[-1]
            if pod not in self._seen and not (prefix and pod.startswith(prefix)):
                continue
            if self.spec.types and ev["type"] not in self.spec.types:
                continue
            if self.spec.reasons and ev["reason"] not in self.spec.reasons:
                continue
            kept.append(ev)
        self.ctx.log(
            "k8s.events", namespace=self._ns(), since=since.isoformat() if since else None, events=kept
        )
        return Measurement(
            value=len(kept),
            detail={"since": since.isoformat() if since else None, "events": kept},
            samples=1,
        )
