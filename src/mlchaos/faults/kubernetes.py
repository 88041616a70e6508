"""Kubernetes faults through the API itself: delete pods, scale a deployment.

Order of every ``inject``, and why:

1. resolve the target and check the namespace allow-list (no request yet);
2. read the pods / deployment (read-only calls);
3. apply the blast radius and the ready pods to keep to the *current*
   readiness, refusing before any mutating request if they cannot hold;
4. mutate, and return what was actually hit.

``preflight`` runs steps 1-3 only.  Every ``undo`` record holds the API
connection (never credentials) and what to restore, so ``revert(undo)``
works with no runner state (watchdog, ``mlchaos stop``).

The pod selection and blast radius here (:class:`PodFault`) are shared with
the Chaos Mesh faults in :mod:`mlchaos.faults.chaosmesh`, which create
objects instead of calling the API directly.  Both are registered by name in
:data:`mlchaos.registry.BUILTIN`, the one table of plugin names.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from mlchaos.platforms.kubernetes.specs import BlastRadiusFields, PodSelectorFields, selector_string
from mlchaos.plugin import Applied, Context, Fault, FaultError, FaultSpec, PluginError
from mlchaos.spec.types import Duration

if TYPE_CHECKING:
    from mlchaos.contract.lease import Lease
    from mlchaos.platforms.kubernetes.client import KubeClient
    from mlchaos.platforms.kubernetes.selection import PodRef, Selection
    from mlchaos.targets.kubernetes import KubernetesTarget

__all__ = ["DeploymentScale", "PodDelete", "PodFault", "PodFaultSpec", "kube_call"]


class PodFaultSpec(FaultSpec, PodSelectorFields, BlastRadiusFields):
    """Fields of every fault that hits pods: which pods, how many, how many to spare."""


def _kube_target(ctx: Context, name: str) -> KubernetesTarget:
    from mlchaos.targets.kubernetes import KubernetesTarget

    target = ctx.target(name)
    if not isinstance(target, KubernetesTarget):
        raise FaultError(f"target {name!r} is not a kubernetes target")
    return target


async def kube_call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking client call off the event loop; plugin errors become fault errors."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except PluginError as exc:
        if isinstance(exc, FaultError):
            raise
        raise FaultError(str(exc)) from exc


class PodFault(Fault):
    """Shared resolution: allow-list, then read-only listing, then blast radius."""

    spec: PodFaultSpec

    def __init__(self, spec: FaultSpec, ctx: Context) -> None:
        super().__init__(spec, ctx)
        self._target: KubernetesTarget | None = None

    @property
    def target(self) -> KubernetesTarget:
        if self._target is None:
            self._target = _kube_target(self.ctx, self.spec.target)
        return self._target

    @property
    def client(self) -> KubeClient:
        return self.target.client

    @property
    def namespace(self) -> str:
        return self.spec.namespace or self.target.namespace

    @property
    def fault_name(self) -> str:
        return self.spec.name or self.spec.fault

    async def _select(self) -> Selection:
        from mlchaos.contract.blast import BlastRadiusError
        from mlchaos.platforms.kubernetes.selection import choose_pods

        ns = self.namespace
        await kube_call(self.client.check_namespace, ns, f"run fault {self.spec.fault!r}")
        if self.spec.deployment:
            dep = await kube_call(self.client.read_deployment, ns, self.spec.deployment)
            selector = dep["selector_string"]
        else:
            selector = selector_string(self.spec.selector)
        pods: list[PodRef] = await kube_call(self.client.list_pods, ns, selector)
        try:
            return choose_pods(
                pods,
                mode=self.spec.blast_mode(),
                count=self.spec.count,
                percent=self.spec.percent,
                keep_healthy=self.spec.keep_healthy,
                on_shortfall=self.spec.on_shortfall,
                seed=self.spec.seed,
            )
        except BlastRadiusError as exc:
            raise FaultError(f"{self.fault_name}: {exc} (namespace {ns!r}, selector {selector!r})") from None

    async def preflight(self) -> dict[str, Any]:
        selection = await self._select()
        return {"namespace": self.namespace, **selection.plan()}

    def _undo_base(self) -> dict[str, Any]:
        return {"fault": self.spec.fault, "connection": self.target.connection.to_dict()}


class PodDelete(PodFault):
    """Delete the chosen pods (their controller recreates them): a replica dies."""

    class Spec(PodFaultSpec):
        fault: Literal["pod-delete"] = "pod-delete"
        grace_period: Duration | None = Field(
            None, description="Termination grace period ('0s' kills at once); default: the pod's own."
        )

    async def intent(self, lease: Lease) -> dict[str, Any]:
        """Nothing to plan for undo: a deleted pod is not brought back by mlchaos (its controller does)."""
        return {}

    async def inject(self, lease: Lease) -> Applied:
        selection = await self._select()
        assert isinstance(self.spec, PodDelete.Spec)
        grace = None if self.spec.grace_period is None else round(self.spec.grace_period)
        deleted: list[str] = []
        gone: list[str] = []
        for pod in selection.chosen:
            ok = await kube_call(self.client.delete_pod, pod.namespace, pod.name, grace_period=grace)
            (deleted if ok else gone).append(pod.key)
            self.ctx.log("k8s.pod-deleted", pod=pod.key, grace_period=grace, existed=ok)
        return Applied(
            targets=deleted,
            planned=selection.plan(),
            actual={"deleted": deleted, "already_gone": gone, "grace_period": grace},
            undo={**self._undo_base(), "pods": deleted},
        )

    async def remove(self) -> None:
        """Nothing to undo: the pods' controller recreates them; recovery is what the probes watch."""

    @classmethod
    def revert(cls, undo: dict[str, Any]) -> None:
        """A deleted pod cannot be restored; its controller does that.  Nothing to do."""


class DeploymentScale(Fault):
    """Scale a deployment (e.g. to fewer replicas) and restore the original count on removal."""

    class Spec(FaultSpec):
        fault: Literal["deployment-scale"] = "deployment-scale"
        deployment: str = Field(description="Name of the deployment.")
        namespace: str | None = Field(None, description="Its namespace; default: the target's.")
        replicas: int = Field(ge=0, description="Replica count during the fault.")
        keep_healthy: int = Field(0, ge=0, description="Never scale below this many replicas.")
        on_shortfall: Literal["refuse", "shrink"] = Field(
            "refuse", description="When 'replicas' < keep_healthy: refuse, or scale to keep_healthy instead."
        )

    def __init__(self, spec: FaultSpec, ctx: Context) -> None:
        super().__init__(spec, ctx)
        self._undo: dict[str, Any] | None = None

    @property
    def sspec(self) -> DeploymentScale.Spec:
        assert isinstance(self.spec, DeploymentScale.Spec)
        return self.spec

    async def _plan(self) -> tuple[KubernetesTarget, str, dict[str, Any], int]:
        from mlchaos.contract.blast import BlastRadiusError
        from mlchaos.platforms.kubernetes.selection import scale_target

        target = _kube_target(self.ctx, self.spec.target)
        ns = self.sspec.namespace or target.namespace
        await kube_call(target.client.check_namespace, ns, f"scale deployment {self.sspec.deployment!r}")
        dep = await kube_call(target.client.read_deployment, ns, self.sspec.deployment)
        try:
            replicas = scale_target(
                dep["ready"],
                self.sspec.replicas,
                keep_healthy=self.sspec.keep_healthy,
                on_shortfall=self.sspec.on_shortfall,
            )
        except BlastRadiusError as exc:
            raise FaultError(f"deployment {ns}/{self.sspec.deployment}: {exc}") from None
        return target, ns, dep, replicas

    async def preflight(self) -> dict[str, Any]:
        _, ns, dep, replicas = await self._plan()
        return {
            "deployment": f"{ns}/{self.sspec.deployment}",
            "replicas_now": dep["replicas"],
            "ready_now": dep["ready"],
            "replicas_during_fault": replicas,
            "keep_healthy": self.sspec.keep_healthy,
        }

    async def _scale_plan(self) -> tuple[KubernetesTarget, str, dict[str, Any], int, dict[str, Any]]:
        target, ns, dep, replicas = await self._plan()
        name = self.sspec.deployment
        original = await kube_call(target.client.read_scale, ns, name)
        undo = {
            "fault": self.spec.fault,
            "connection": target.connection.to_dict(),
            "namespace": ns,
            "deployment": name,
            "replicas": original,
        }
        return target, ns, dep, replicas, undo

    async def intent(self, lease: Lease) -> dict[str, Any]:
        """The replica count now, read before scaling: restoring it is a no-op if the scale never happened."""
        self._planned = await self._scale_plan()
        return self._planned[4]

    async def inject(self, lease: Lease) -> Applied:
        target, ns, dep, replicas, undo = getattr(self, "_planned", None) or await self._scale_plan()
        name = self.sspec.deployment
        original = undo["replicas"]
        self._undo = undo
        await kube_call(target.client.scale_deployment, ns, name, replicas)
        self.ctx.log("k8s.deployment-scaled", deployment=f"{ns}/{name}", replicas=replicas, original=original)
        return Applied(
            targets=[f"{ns}/deployment/{name}"],
            planned={"replicas": self.sspec.replicas, "keep_healthy": self.sspec.keep_healthy},
            actual={"replicas": replicas, "original": original, "ready_before": dep["ready"]},
            undo=self._undo,
        )

    async def remove(self) -> None:
        if self._undo is not None:
            await asyncio.to_thread(type(self).revert, self._undo)

    @classmethod
    def revert(cls, undo: dict[str, Any]) -> None:
        """Restore the recorded replica count (idempotent).  An HPA may later change it again."""
        from mlchaos.platforms.kubernetes.client import Connection, KubeClient

        client = KubeClient(Connection.from_dict(undo.get("connection")), allowed_namespaces=None)
        try:
            client.scale_deployment(undo["namespace"], undo["deployment"], int(undo["replicas"]))
        except PluginError as exc:
            raise FaultError(f"could not restore {undo['namespace']}/{undo['deployment']}: {exc}") from exc
        finally:
            client.close()
