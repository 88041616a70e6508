"""A thin wrapper around the official ``kubernetes`` client, with the safety rules built in.

Why a wrapper and not the client directly in each fault:

* The namespace allow-list is checked **inside every mutating method**, before
  a request is built, so no fault, probe or future caller can forget it.
* It converts API objects into the few plain facts mlchaos needs
  (:class:`PodRef`, deployment counts), so faults and tests never depend on
  the client's model classes.
* ``kubernetes`` is imported lazily: importing a plugin module (for
  ``mlchaos validate``) must not import the client, and a machine without the
  optional extra can still validate and render.

Connection: ``server`` (a plain URL, e.g. ``kubectl proxy`` on
``http://127.0.0.1:8001`` or the contract tests' replay server), in-cluster
config (service account), or a kubeconfig file and context.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from typing import Any

from mlchaos.platforms.kubernetes.chaosmesh import GROUP, VERSION
from mlchaos.platforms.kubernetes.connection import (
    DEFAULT_TIMEOUT,
    ENV_ALLOWED,
    Connection,
    KubernetesError,
    KubernetesUnavailable,
    NamespaceNotAllowed,
    _api_error,
    _load_kubernetes,
    _pod_ref,
    _ts,
    effective_allow_list,
    env_allowed_namespaces,
    label_selector_string,
)
from mlchaos.platforms.kubernetes.selection import PodRef

__all__ = [
    "DEFAULT_TIMEOUT", "ENV_ALLOWED", "Connection", "KubeClient", "KubernetesError", "KubernetesUnavailable",
    "NamespaceNotAllowed", "effective_allow_list", "env_allowed_namespaces", "label_selector_string",
]


class KubeClient:
    """Read-only and mutating calls mlchaos makes, with the allow-list enforced on mutations.

    ``allowed_namespaces=None`` means unrestricted; it is used only by cleanup
    and revert, which delete objects mlchaos itself created and labelled.
    Every call has a timeout (seconds) so that ``mlchaos stop`` and removal
    never hang on an unreachable API server.
    """

    def __init__(
        self,
        connection: Connection | None = None,
        *,
        allowed_namespaces: Iterable[str] | None = None,
        api_client: Any = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.connection = connection or Connection()
        self.timeout = timeout
        self.allowed: frozenset[str] | None = (
            frozenset(allowed_namespaces) if allowed_namespaces is not None else None
        )
        self._api_client = api_client

    # -- connection -----------------------------------------------------------------------------

    @property
    def api_client(self) -> Any:
        if self._api_client is None:
            self._api_client = self._connect()
        return self._api_client

    def _connect(self) -> Any:
        k8s = _load_kubernetes()
        conn = self.connection
        try:
            if conn.server:
                cfg = k8s.client.Configuration()
                cfg.host = conn.server.rstrip("/")
                return k8s.client.ApiClient(cfg)
            in_cluster = conn.in_cluster
            if in_cluster is None:
                in_cluster = conn.kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ
            if in_cluster:
                cfg = k8s.client.Configuration()
                k8s.config.load_incluster_config(client_configuration=cfg)
                return k8s.client.ApiClient(cfg)
            return k8s.config.new_client_from_config(config_file=conn.kubeconfig, context=conn.context)
        except Exception as exc:
            raise KubernetesError(f"cannot load Kubernetes configuration: {exc}") from exc

    def close(self) -> None:
        if self._api_client is not None:
            close = getattr(self._api_client, "close", None)
            if close is not None:
                close()
            self._api_client = None

    def _core(self) -> Any:
        return _load_kubernetes().client.CoreV1Api(self.api_client)

    def _apps(self) -> Any:
        return _load_kubernetes().client.AppsV1Api(self.api_client)

    def _custom(self) -> Any:
        return _load_kubernetes().client.CustomObjectsApi(self.api_client)

    # -- safety -----------------------------------------------------------------------------------

    def check_namespace(self, namespace: str, action: str) -> None:
        """Raise :class:`NamespaceNotAllowed` unless ``namespace`` may be mutated."""
        if self.allowed is not None and namespace not in self.allowed:
            allowed = ", ".join(sorted(self.allowed)) or "(none)"
            raise NamespaceNotAllowed(
                f"refusing to {action} in namespace {namespace!r}: not in the allow-list [{allowed}]"
            )

    # -- read-only ------------------------------------------------------------------------------------

    def version(self) -> dict[str, Any]:
        """The server's version (a cheap reachability check for preflight)."""
        k8s = _load_kubernetes()
        try:
            info = k8s.client.VersionApi(self.api_client).get_code(_request_timeout=self.timeout)
        except Exception as exc:
            raise _api_error("get version", exc) from exc
        return {
            "git_version": getattr(info, "git_version", None),
            "platform": getattr(info, "platform", None),
        }

    def list_pods(self, namespace: str, selector: str = "") -> list[PodRef]:
        """Pods matching a label selector; finished pods (Succeeded/Failed) are left out."""
        try:
            resp = self._core().list_namespaced_pod(
                namespace, label_selector=selector or None, _request_timeout=self.timeout
            )
        except Exception as exc:
            raise _api_error(f"list pods in {namespace!r} ({selector or 'all'})", exc) from exc
        pods = [_pod_ref(p) for p in resp.items or []]
        return [p for p in pods if p.phase not in ("Succeeded", "Failed")]

    def read_deployment(self, namespace: str, name: str) -> dict[str, Any]:
        """Replica counts and pod selector of a deployment."""
        try:
            dep = self._apps().read_namespaced_deployment(name, namespace, _request_timeout=self.timeout)
        except Exception as exc:
            raise _api_error(f"read deployment {namespace}/{name}", exc) from exc
        status = dep.status
        sel = dep.spec.selector
        selector = {
            "matchLabels": dict(sel.match_labels or {}),
            "matchExpressions": [
                {"key": e.key, "operator": e.operator, "values": list(e.values or [])}
                for e in (sel.match_expressions or [])
            ],
        }
        return {
            "name": name,
            "namespace": namespace,
            "replicas": dep.spec.replicas if dep.spec.replicas is not None else 1,
            "ready": (status.ready_replicas if status else None) or 0,
            "available": (status.available_replicas if status else None) or 0,
            "updated": (status.updated_replicas if status else None) or 0,
            "selector": selector,
            "selector_string": label_selector_string(selector),
        }

    def read_scale(self, namespace: str, name: str) -> int:
        try:
            scale = self._apps().read_namespaced_deployment_scale(
                name, namespace, _request_timeout=self.timeout
            )
        except Exception as exc:
            raise _api_error(f"read scale of deployment {namespace}/{name}", exc) from exc
        return int(scale.spec.replicas or 0)

    def list_events(
        self,
        namespace: str,
        *,
        pod_names: Iterable[str] | None = None,
        since: dt.datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Events about pods in ``namespace`` (optionally only ``pod_names``, only after ``since``)."""
        try:
            resp = self._core().list_namespaced_event(
                namespace, field_selector="involvedObject.kind=Pod", _request_timeout=self.timeout
            )
        except Exception as exc:
            raise _api_error(f"list events in {namespace!r}", exc) from exc
        names = set(pod_names) if pod_names is not None else None
        out: list[dict[str, Any]] = []
        for ev in resp.items or []:
            obj = ev.involved_object
            if names is not None and obj.name not in names:
                continue
            when = _ts(ev.last_timestamp) or _ts(ev.event_time) or _ts(ev.first_timestamp)
            if since is not None and (when is None or when < since):
                continue
            out.append(
                {
                    "time": when.isoformat() if when else None,
                    "type": ev.type,
                    "reason": ev.reason,
                    "object": f"{obj.kind}/{obj.name}",
                    "message": ev.message,
                    "count": ev.count or 1,
                }
            )
        out.sort(key=lambda e: e["time"] or "")
        return out

    def list_chaos(
        self, plural: str, *, label_selector: str, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        """Chaos Mesh objects of one kind (a namespace, or all namespaces)."""
        try:
            if namespace is None:
                resp = self._custom().list_cluster_custom_object(
                    GROUP, VERSION, plural, label_selector=label_selector, _request_timeout=self.timeout
                )
            else:
                resp = self._custom().list_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    namespace,
                    plural,
                    label_selector=label_selector,
                    _request_timeout=self.timeout,
                )
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                return []  # Chaos Mesh (this kind) not installed: nothing of ours can exist
            raise _api_error(f"list {plural}", exc) from exc
        return list(resp.get("items") or [])

    # -- mutating (allow-list first) ----------------------------------------------------------------

    def delete_pod(self, namespace: str, name: str, *, grace_period: int | None = None) -> bool:
        """Delete one pod; False when it was already gone."""
        self.check_namespace(namespace, f"delete pod {name!r}")
        try:
            self._core().delete_namespaced_pod(
                name, namespace, grace_period_seconds=grace_period, _request_timeout=self.timeout
            )
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                return False
            raise _api_error(f"delete pod {namespace}/{name}", exc) from exc
        return True

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        """Set a deployment's replicas through the scale subresource (merge patch)."""
        self.check_namespace(namespace, f"scale deployment {name!r}")
        try:
            self._apps().patch_namespaced_deployment_scale(
                name,
                namespace,
                {"spec": {"replicas": replicas}},
                _content_type="application/merge-patch+json",
                _request_timeout=self.timeout,
            )
        except Exception as exc:
            raise _api_error(f"scale deployment {namespace}/{name} to {replicas}", exc) from exc

    def create_chaos(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create one Chaos Mesh object (its namespace must be allowed)."""
        from mlchaos.platforms.kubernetes.chaosmesh import plural_of

        meta = obj["metadata"]
        namespace = meta["namespace"]
        self.check_namespace(namespace, f"create {obj['kind']} {meta['name']!r}")
        for ns in obj.get("spec", {}).get("selector", {}).get("pods") or {}:
            self.check_namespace(ns, f"inject {obj['kind']} into pods")
        for ns in obj.get("spec", {}).get("selector", {}).get("namespaces") or []:
            self.check_namespace(ns, f"inject {obj['kind']} into pods")
        try:
            created = self._custom().create_namespaced_custom_object(
                GROUP, VERSION, namespace, plural_of(obj["kind"]), obj, _request_timeout=self.timeout
            )
        except Exception as exc:
            raise _api_error(f"create {obj['kind']} {namespace}/{meta['name']}", exc) from exc
        return dict(created) if isinstance(created, dict) else {}

    def delete_chaos(self, plural: str, namespace: str, name: str) -> bool:
        """Delete one Chaos Mesh object; False when it was already gone (idempotent removal)."""
        self.check_namespace(namespace, f"delete {plural} {name!r}")
        try:
            self._custom().delete_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name, _request_timeout=self.timeout
            )
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                return False
            raise _api_error(f"delete {plural} {namespace}/{name}", exc) from exc
        return True

    def delete_chaos_collection(self, plural: str, namespace: str, *, label_selector: str) -> None:
        """Delete every object of one kind in a namespace that matches ``label_selector``."""
        if not label_selector:
            raise KubernetesError("refusing a delete-collection without a label selector")
        self.check_namespace(namespace, f"delete {plural} collection")
        try:
            self._custom().delete_collection_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                plural,
                label_selector=label_selector,
                _request_timeout=self.timeout,
            )
        except Exception as exc:
            if getattr(exc, "status", None) == 404:
                return
            raise _api_error(f"delete {plural} in {namespace!r} ({label_selector})", exc) from exc
