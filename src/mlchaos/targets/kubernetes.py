"""The ``kubernetes`` target: a namespace of a cluster, reached through the Kubernetes API.

Why the allow-list lives on the target: faults and probes refer to a target
by name, so the namespaces an experiment may mutate are declared once, next
to the cluster they belong to.  The default allows only the target's own
namespace; ``$MLCHAOS_K8S_ALLOWED_NAMESPACES`` (machine-wide) can only narrow
it.  Every mutating call checks it inside the client, before a request is
built.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from mlchaos.plugin import Context, Target, TargetError, TargetSpec

if TYPE_CHECKING:
    from mlchaos.platforms.kubernetes.client import Connection, KubeClient


class KubernetesTargetSpec(TargetSpec):
    """Where the cluster is and which namespaces an experiment may touch."""

    platform: str = Field("kubernetes", description="Always 'kubernetes'.")
    namespace: str = Field("default", description="Default namespace of faults and probes.")
    allowed_namespaces: list[str] | None = Field(
        None,
        description="Namespaces that faults may mutate; default: only 'namespace'. Others are refused "
        "before any call is made.",
    )
    kubeconfig: str | None = Field(
        None, description="Path of a kubeconfig file; default: $KUBECONFIG or ~/.kube/config."
    )
    context: str | None = Field(None, description="Kubeconfig context; default: the current context.")
    server: str | None = Field(
        None,
        description="Plain API URL without auth, e.g. 'http://127.0.0.1:8001' for 'kubectl proxy'; "
        "overrides kubeconfig.",
    )
    in_cluster: bool | None = Field(
        None, description="Use the pod's service account; default: when running inside a cluster."
    )
    url: str | None = Field(
        None,
        description="Base URL of the system under test for HTTP probes and load (ingress, port-forward).",
    )


class KubernetesTarget(Target):
    """A namespace of a Kubernetes cluster (see :class:`KubernetesTargetSpec`)."""

    Spec: ClassVar[type[TargetSpec]] = KubernetesTargetSpec

    def __init__(self, spec: TargetSpec, ctx: Context) -> None:
        super().__init__(spec, ctx)
        self._client: KubeClient | None = None

    @property
    def kspec(self) -> KubernetesTargetSpec:
        assert isinstance(self.spec, KubernetesTargetSpec)
        return self.spec

    @property
    def namespace(self) -> str:
        return self.kspec.namespace

    @property
    def connection(self) -> Connection:
        from mlchaos.platforms.kubernetes.client import Connection

        s = self.kspec
        return Connection(
            kubeconfig=s.kubeconfig, context=s.context, server=s.server, in_cluster=s.in_cluster
        )

    @property
    def allowed_namespaces(self) -> frozenset[str]:
        from mlchaos.platforms.kubernetes.client import effective_allow_list

        return effective_allow_list(self.kspec.namespace, self.kspec.allowed_namespaces)

    @property
    def client(self) -> KubeClient:
        """The client every fault and probe of this target shares (allow-list applied)."""
        if self._client is None:
            from mlchaos.platforms.kubernetes.client import KubeClient

            self._client = KubeClient(self.connection, allowed_namespaces=self.allowed_namespaces)
        return self._client

    async def preflight(self) -> dict[str, Any]:
        """Reach the API server and list pods in the namespace (read-only)."""
        from mlchaos.platforms.kubernetes.client import KubernetesError

        client = self.client
        try:
            version = await asyncio.to_thread(client.version)
            pods = await asyncio.to_thread(client.list_pods, self.namespace, "")
        except KubernetesError as exc:
            raise TargetError(str(exc)) from exc
        return {
            "server": version,
            "namespace": self.namespace,
            "pods": len(pods),
            "allowed_namespaces": sorted(self.allowed_namespaces),
        }

    async def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def url(self, path: str = "") -> str:
        if not self.kspec.url:
            raise TargetError("kubernetes target has no 'url' (set it to an ingress or port-forward URL)")
        return self.kspec.url.rstrip("/") + "/" + path.lstrip("/") if path else self.kspec.url
