"""Kubernetes faults as Chaos Mesh objects: network, HTTP and stress chaos on chosen pods.

Each fault chooses its pods like the API faults (:class:`mlchaos.faults.kubernetes.PodFault`:
allow-list, read-only listing, blast radius against current readiness), then
renders one Chaos Mesh object pinned to exactly those pods, creates it, and
deletes it on removal.  ``render`` uses only the spec and its arguments, so
``mlchaos k8s render`` (:mod:`mlchaos.platforms.kubernetes.render`) shows the
very object a run would create.

Chaos Mesh faults need a ``duration``: it becomes the object's own
``spec.duration``, the lease that ends the fault even if mlchaos dies.  The
``undo`` record names the object ahead of its creation (write-ahead), and
``revert`` deletes it; a 404 counts as done.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from mlchaos.faults.kubernetes import PodFault, PodFaultSpec, kube_call
from mlchaos.platforms.kubernetes.specs import parse_selector
from mlchaos.plugin import Applied, Context, FaultError, FaultSpec, PluginError, StrictModel
from mlchaos.spec.types import Duration, Percent

if TYPE_CHECKING:
    from mlchaos.contract.lease import Lease
    from mlchaos.platforms.kubernetes.selection import Selection

__all__ = ["ChaosFault", "ChaosFaultSpec", "K8sHttp", "K8sNetwork", "K8sStress", "PeerFields"]


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


class ChaosFault(PodFault):
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
        await kube_call(self.client.create_chaos, obj)
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


class K8sNetwork(ChaosFault):
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
            await kube_call(
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


class K8sHttp(ChaosFault):
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


class K8sStress(ChaosFault):
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
