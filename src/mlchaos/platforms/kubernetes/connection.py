"""How mlchaos reaches a cluster and what it may touch: the connection, the namespace allow-list, errors.

Split from :mod:`mlchaos.platforms.kubernetes.client` (the calls themselves) so that a fault, a
target or ``mlchaos k8s`` can describe a connection, check an allow-list and name an error without
the calls; the client module re-exports every name here, so ``...kubernetes.client`` imports keep
working.  ``kubernetes`` itself is still imported lazily (:func:`_load_kubernetes`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Iterable
from typing import Any

from mlchaos.platforms.kubernetes.selection import PodRef
from mlchaos.plugin import PluginError

ENV_ALLOWED = "MLCHAOS_K8S_ALLOWED_NAMESPACES"
DEFAULT_TIMEOUT = 10.0


class KubernetesError(PluginError):
    """The API refused or failed a call; the message names the call and the status.

    ``status`` is the HTTP status, or None when the server could not be reached.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NamespaceNotAllowed(PluginError):
    """A mutating call aimed at a namespace outside the allow-list; nothing was sent."""


class KubernetesUnavailable(PluginError):
    """The optional ``kubernetes`` package is not installed."""


@dataclasses.dataclass(frozen=True)
class Connection:
    """How to reach the API server.  JSON-able, so it can live in a lease's undo record.

    It never holds credentials: only the path of a kubeconfig, a context name
    or a plain server URL.
    """

    kubeconfig: str | None = None
    context: str | None = None
    server: str | None = None
    in_cluster: bool | None = None

    def configured(self) -> bool:
        """Whether any configuration exists to reach a cluster (without loading it)."""
        if self.server or self.in_cluster or self.kubeconfig:
            return True
        if "KUBERNETES_SERVICE_HOST" in os.environ:
            return True
        paths = [*os.environ.get("KUBECONFIG", "").split(os.pathsep), os.path.expanduser("~/.kube/config")]
        return any(p and os.path.isfile(p) for p in paths)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Connection:
        data = data or {}
        return cls(
            kubeconfig=data.get("kubeconfig"),
            context=data.get("context"),
            server=data.get("server"),
            in_cluster=data.get("in_cluster"),
        )


def env_allowed_namespaces() -> set[str] | None:
    """``$MLCHAOS_K8S_ALLOWED_NAMESPACES`` (comma separated) as a set, or None when unset."""
    raw = os.environ.get(ENV_ALLOWED)
    if raw is None:
        return None
    return {n.strip() for n in raw.split(",") if n.strip()}


def effective_allow_list(namespace: str, allowed: Iterable[str] | None) -> frozenset[str]:
    """The namespaces mutations may touch.

    Default is the target's own namespace only.  The machine-wide environment
    variable can only narrow it (intersection), never widen it.
    """
    result = set(allowed) if allowed is not None else {namespace}
    env = env_allowed_namespaces()
    if env is not None:
        result &= env
    return frozenset(result)


def _load_kubernetes() -> Any:
    try:
        import kubernetes
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise KubernetesUnavailable(
            "the 'kubernetes' package is not installed: pip install 'mlchaos[kubernetes]'"
        ) from exc
    return kubernetes


def _api_error(call: str, exc: Exception) -> KubernetesError:
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None) or str(exc)
    if not status:
        return KubernetesError(f"kubernetes API {call} failed: cannot reach the API server ({reason})")
    return KubernetesError(f"kubernetes API {call} failed: {status} {reason}", status=int(status))


def _ts(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def label_selector_string(selector: dict[str, Any] | None) -> str:
    """A ``LabelSelector`` (matchLabels/matchExpressions, snake or camel case) as a query string."""
    if not selector:
        return ""
    parts: list[str] = []
    labels = selector.get("matchLabels") or selector.get("match_labels") or {}
    parts.extend(f"{k}={v}" for k, v in sorted(labels.items()))
    for expr in selector.get("matchExpressions") or selector.get("match_expressions") or []:
        key, op = expr["key"], expr["operator"]
        values = ",".join(expr.get("values") or [])
        if op == "In":
            parts.append(f"{key} in ({values})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def _pod_ref(pod: Any) -> PodRef:
    meta, status = pod.metadata, pod.status
    conditions = (status.conditions if status else None) or []
    ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
    if meta.deletion_timestamp is not None:
        ready = False  # a terminating pod is leaving; never count it towards keep-N-ready
    return PodRef(
        namespace=meta.namespace,
        name=meta.name,
        ready=ready,
        phase=(status.phase if status else None) or "Unknown",
        ip=status.pod_ip if status else None,
        node=pod.spec.node_name if pod.spec else None,
    )
