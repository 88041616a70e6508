"""Kubernetes faults: pod delete and deployment scale through the API; network, HTTP
and stress through Chaos Mesh objects.

Order of every ``inject``, and why:

1. resolve the target and check the namespace allow-list (no request yet);
2. read the pods / deployment (read-only calls);
3. apply blast radius and keep-N-ready to *current* readiness, refusing
   before any mutating request if they cannot hold;
4. mutate, and return what was actually hit.

``preflight`` runs steps 1-3 only.  Every ``undo`` record holds the API
connection (never credentials) and what to delete or restore, so
``revert(undo)`` works with no runner state (watchdog, ``mlchaos stop``).

Chaos Mesh faults need a ``duration``: it becomes the object's own
``spec.duration``, the lease that ends the fault even if mlchaos dies.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from mlchaos.platforms.kubernetes.specs import (
    BlastRadiusFields,
    PodSelectorFields,
    parse_selector,
    selector_string,
)
from mlchaos.plugin import Applied, Context, Fault, FaultError, FaultSpec, PluginError, StrictModel
from mlchaos.spec.types import Duration, Percent

if TYPE_CHECKING:
    from mlchaos.contract.lease import Lease
    from mlchaos.platforms.kubernetes.client import KubeClient
    from mlchaos.platforms.kubernetes.selection import PodRef, Selection
    from mlchaos.targets.kubernetes import KubernetesTarget


class PodFaultSpec(FaultSpec, PodSelectorFields, BlastRadiusFields):
    """Fields of every fault that hits pods: which pods, how many, how many to spare."""


def _kube_target(ctx: Context, name: str) -> KubernetesTarget:
    from mlchaos.targets.kubernetes import KubernetesTarget

    target = ctx.target(name)
    if not isinstance(target, KubernetesTarget):
        raise FaultError(f"target {name!r} is not a kubernetes target")
    return target


async def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking client call off the event loop; plugin errors become fault errors."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except PluginError as exc:
        if isinstance(exc, FaultError):
            raise
        raise FaultError(str(exc)) from exc


class _PodFault(Fault):
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
        await _call(self.client.check_namespace, ns, f"run fault {self.spec.fault!r}")
        if self.spec.deployment:
            dep = await _call(self.client.read_deployment, ns, self.spec.deployment)
            selector = dep["selector_string"]
        else:
            selector = selector_string(self.spec.selector)
        pods: list[PodRef] = await _call(self.client.list_pods, ns, selector)
        try:
            return choose_pods(
                pods,
                mode=self.spec.blast_mode(),
                count=self.spec.count,
                percent=self.spec.percent,
                keep_ready=self.spec.keep_ready,
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


class PodDelete(_PodFault):
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
            ok = await _call(self.client.delete_pod, pod.namespace, pod.name, grace_period=grace)
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
        keep_ready: int = Field(0, ge=0, description="Never scale below this many replicas.")
        on_shortfall: Literal["refuse", "shrink"] = Field(
            "refuse", description="When 'replicas' < keep_ready: refuse, or scale to keep_ready instead."
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
        await _call(target.client.check_namespace, ns, f"scale deployment {self.sspec.deployment!r}")
        dep = await _call(target.client.read_deployment, ns, self.sspec.deployment)
        try:
            replicas = scale_target(
                dep["ready"],
                self.sspec.replicas,
                keep_ready=self.sspec.keep_ready,
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
            "keep_ready": self.sspec.keep_ready,
        }

    async def _scale_plan(self) -> tuple[KubernetesTarget, str, dict[str, Any], int, dict[str, Any]]:
        target, ns, dep, replicas = await self._plan()
        name = self.sspec.deployment
        original = await _call(target.client.read_scale, ns, name)
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
        await _call(target.client.scale_deployment, ns, name, replicas)
        self.ctx.log("k8s.deployment-scaled", deployment=f"{ns}/{name}", replicas=replicas, original=original)
        return Applied(
            targets=[f"{ns}/deployment/{name}"],
            planned={"replicas": self.sspec.replicas, "keep_ready": self.sspec.keep_ready},
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


def _revert_objects(undo: dict[str, Any]) -> None:
    from mlchaos.platforms.kubernetes.client import Connection, KubeClient

    client = KubeClient(Connection.from_dict(undo.get("connection")), allowed_namespaces=None)
    try:
        errors: list[str] = []
        for ref in undo.get("objects", []):
            try:
                client.delete_chaos(ref["plural"], ref["namespace"], ref["name"])
            except PluginError as exc:
                errors.append(str(exc))
        if errors:
            raise FaultError("; ".join(errors))
    finally:
        client.close()


class ChaosFaultSpec(PodFaultSpec):
    """Chaos Mesh faults: ``duration`` is required, it is the object's own expiry."""

    @field_validator("duration")
    @classmethod
    def _needs_duration(cls, v: float | None) -> float | None:
        if v is None:
            raise ValueError(
                "Chaos Mesh faults need a 'duration': it is the object's own expiry if mlchaos dies"
            )
        return v


class _ChaosFault(_PodFault):
    """Render one Chaos Mesh object over the chosen pods, create it, delete it on removal."""

    spec: ChaosFaultSpec
    kind: ClassVar[str] = ""

    def __init__(self, spec: FaultSpec, ctx: Context) -> None:
        super().__init__(spec, ctx)
        self._undo: dict[str, Any] | None = None

    def object_name(self) -> str:
        from mlchaos.platforms.kubernetes.labels import dns_name

        return dns_name(
            "mlchaos", self.kind.lower(), self.ctx.run_id[:16], self.fault_name[:16], secrets.token_hex(3)
        )

    def render(self, scope: Any, *, name: str, run_id: str, namespace: str) -> dict[str, Any]:
        """The object for ``scope``; uses only the spec and the arguments (dry runs call it too)."""
        raise NotImplementedError

    async def _extra_checks(self) -> None:
        """Faults that also act on other pods (a network target) check those namespaces too."""

    async def preflight(self) -> dict[str, Any]:
        plan = await super().preflight()
        await self._extra_checks()
        return {**plan, "kind": self.kind, "duration": self.spec.duration}

    async def _render_plan(self) -> tuple[Selection, dict[str, Any], dict[str, Any]]:
        from mlchaos.platforms.kubernetes.chaosmesh import PodScope, object_ref

        await self._extra_checks()
        selection = await self._select()
        obj = self.render(
            PodScope.pinned(selection.chosen),
            name=self.object_name(),
            run_id=self.ctx.run_id,
            namespace=self.namespace,
        )
        return selection, obj, {**self._undo_base(), "objects": [object_ref(obj)]}

    async def intent(self, lease: Lease) -> dict[str, Any]:
        """The object, named ahead: ``revert`` deletes it, and a 404 (never created) counts as done."""
        self._planned = await self._render_plan()
        return self._planned[2]

    async def inject(self, lease: Lease) -> Applied:
        selection, obj, undo = getattr(self, "_planned", None) or await self._render_plan()
        ref = undo["objects"][0]
        self._undo = undo
        await _call(self.client.create_chaos, obj)
        self.ctx.log("k8s.chaos-created", object=ref, pods=[p.key for p in selection.chosen])
        return Applied(
            targets=[p.key for p in selection.chosen],
            planned=selection.plan(),
            actual={"object": ref, "spec": obj["spec"], "expires_in": self.spec.duration},
            undo=self._undo,
        )

    async def remove(self) -> None:
        if self._undo is not None:
            await asyncio.to_thread(type(self).revert, self._undo)

    @classmethod
    def revert(cls, undo: dict[str, Any]) -> None:
        """Delete the recorded Chaos Mesh objects; already-deleted ones are fine."""
        _revert_objects(undo)


class PeerFields(StrictModel):
    """The other side of a network fault: pods in a namespace, and/or hosts outside the cluster."""

    namespace: str | None = Field(None, description="Namespace of the peer pods; default: the fault's.")
    selector: dict[str, str] | str = Field(description="Label selector of the peer pods (equality only).")

    @field_validator("selector")
    @classmethod
    def _equality(cls, v: dict[str, str] | str) -> dict[str, str] | str:
        if parse_selector(v) is None:
            raise ValueError("a peer selector must be equality-only (Chaos Mesh labelSelectors)")
        return v


class K8sNetwork(_ChaosFault):
    """NetworkChaos: delay, loss or partition between the chosen pods and a peer."""

    kind: ClassVar[str] = "NetworkChaos"

    class Spec(ChaosFaultSpec):
        fault: Literal["k8s-network"] = "k8s-network"
        action: Literal["delay", "loss", "partition"] = Field(description="What to do to the traffic.")
        latency: Duration | None = Field(None, description="Added delay (action 'delay'), e.g. '200ms'.")
        jitter: Duration | None = Field(None, description="Delay jitter, e.g. '20ms'.")
        loss: Percent | None = Field(
            None, description="Share of packets dropped (action 'loss'), e.g. '10%'."
        )
        correlation: Percent | None = Field(None, description="Correlation with the previous packet.")
        direction: Literal["to", "from", "both"] = Field(
            "to", description="Traffic direction relative to the peer (Chaos Mesh 'direction')."
        )
        peer: PeerFields | None = Field(None, description="Pods on the other side (all pods matching).")
        external_targets: list[str] = Field(
            default_factory=list, description="IPs or host names on the other side (outside the cluster)."
        )

        @model_validator(mode="after")
        def _action_fields(self) -> K8sNetwork.Spec:
            if self.action == "delay" and self.latency is None:
                raise ValueError("action 'delay' needs 'latency'")
            if self.action == "loss" and self.loss is None:
                raise ValueError("action 'loss' needs 'loss'")
            if self.action == "partition" and self.peer is None and not self.external_targets:
                raise ValueError("action 'partition' needs 'peer' or 'external_targets'")
            return self

    @property
    def nspec(self) -> K8sNetwork.Spec:
        assert isinstance(self.spec, K8sNetwork.Spec)
        return self.spec

    def _peer_scope(self, namespace: str) -> Any:
        from mlchaos.platforms.kubernetes.chaosmesh import PodScope

        peer = self.nspec.peer
        if peer is None:
            return None
        return PodScope.by_labels(
            peer.namespace or namespace, parse_selector(peer.selector) or {}, mode="all"
        )

    async def _extra_checks(self) -> None:
        peer = self.nspec.peer
        if peer is not None and self.nspec.direction != "to":
            # with 'from'/'both' Chaos Mesh also injects into the peer pods: they must be allowed too
            await _call(
                self.client.check_namespace, peer.namespace or self.namespace, "inject into peer pods"
            )

    def render(self, scope: Any, *, name: str, run_id: str, namespace: str) -> dict[str, Any]:
        from mlchaos.platforms.kubernetes.chaosmesh import network_chaos

        s = self.nspec
        assert s.duration is not None
        return network_chaos(
            name=name,
            namespace=namespace,
            run_id=run_id,
            scope=scope,
            action=s.action,
            duration=s.duration,
            latency=s.latency,
            jitter=s.jitter,
            correlation=s.correlation,
            loss=s.loss,
            direction=s.direction,
            target=self._peer_scope(namespace),
            external_targets=s.external_targets,
            fault=self.fault_name,
        )


class K8sHttp(_ChaosFault):
    """HTTPChaos on a port and path: abort, delay, or patch (JSON merge patch of the body)."""

    kind: ClassVar[str] = "HTTPChaos"

    class Spec(ChaosFaultSpec):
        fault: Literal["k8s-http"] = "k8s-http"
        port: int = Field(ge=1, le=65535, description="Container port of the HTTP server in the pods.")
        path: str | None = Field(None, description="URI path to match, e.g. '/features/*'; default: all.")
        method: str | None = Field(None, description="HTTP method to match; default: all.")
        on: Literal["request", "response"] = Field("request", description="Act on requests or responses.")
        abort: bool = Field(False, description="Abort the matched HTTP exchanges.")
        delay: Duration | None = Field(None, description="Delay the matched exchanges, e.g. '500ms'.")
        patch_body: dict[str, Any] | None = Field(
            None, description="JSON merge patch (RFC 7396) applied to the body, e.g. {score: 0}."
        )
        patch_headers: dict[str, str] | None = Field(None, description="Headers appended to the message.")
        status_code: int | None = Field(None, ge=100, le=599, description="Replace the response status code.")

        @model_validator(mode="after")
        def _something(self) -> K8sHttp.Spec:
            if not (self.abort or self.delay or self.patch_body or self.patch_headers or self.status_code):
                raise ValueError("give at least one of abort, delay, patch_body, patch_headers, status_code")
            if self.status_code is not None and self.on != "response":
                raise ValueError("status_code needs on: response")
            return self

    def render(self, scope: Any, *, name: str, run_id: str, namespace: str) -> dict[str, Any]:
        from mlchaos.platforms.kubernetes.chaosmesh import http_chaos

        s = self.spec
        assert isinstance(s, K8sHttp.Spec) and s.duration is not None
        return http_chaos(
            name=name,
            namespace=namespace,
            run_id=run_id,
            scope=scope,
            port=s.port,
            duration=s.duration,
            target="Response" if s.on == "response" else "Request",
            path=s.path,
            method=s.method,
            abort=s.abort,
            delay=s.delay,
            patch_body=s.patch_body,
            patch_headers=s.patch_headers,
            replace_code=s.status_code,
            fault=self.fault_name,
        )


class K8sStress(_ChaosFault):
    """StressChaos: CPU and/or memory pressure inside the chosen pods."""

    kind: ClassVar[str] = "StressChaos"

    class Spec(ChaosFaultSpec):
        fault: Literal["k8s-stress"] = "k8s-stress"
        cpu_workers: int | None = Field(None, ge=1, le=8192, description="stress-ng CPU workers.")
        cpu_load: int | None = Field(None, ge=0, le=100, description="Percent load per CPU worker.")
        memory_workers: int | None = Field(None, ge=1, le=8192, description="stress-ng memory workers.")
        memory_size: str | None = Field(
            None,
            pattern=r"^[0-9]+(\.[0-9]+)?(%|B|KB|KiB|MB|MiB|GB|GiB|TB|TiB)?$",
            description="Memory per worker: '256MiB' or '50%' of available memory.",
        )
        containers: list[str] = Field(default_factory=list, description="Containers to stress; default: all.")

        @model_validator(mode="after")
        def _something(self) -> K8sStress.Spec:
            if not (self.cpu_workers or self.memory_workers):
                raise ValueError("give cpu_workers and/or memory_workers")
            return self

    def render(self, scope: Any, *, name: str, run_id: str, namespace: str) -> dict[str, Any]:
        from mlchaos.platforms.kubernetes.chaosmesh import stress_chaos

        s = self.spec
        assert isinstance(s, K8sStress.Spec) and s.duration is not None
        return stress_chaos(
            name=name,
            namespace=namespace,
            run_id=run_id,
            scope=scope,
            duration=s.duration,
            cpu_workers=s.cpu_workers,
            cpu_load=s.cpu_load,
            memory_workers=s.memory_workers,
            memory_size=s.memory_size,
            container_names=s.containers,
            fault=self.fault_name,
        )


FAULTS: dict[str, type[Fault]] = {
    "pod-delete": PodDelete,
    "deployment-scale": DeploymentScale,
    "k8s-network": K8sNetwork,
    "k8s-http": K8sHttp,
    "k8s-stress": K8sStress,
}
"""Registered names (the entry points in pyproject.toml point at these classes)."""
