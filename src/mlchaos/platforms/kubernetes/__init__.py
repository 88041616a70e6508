"""Kubernetes and Chaos Mesh: the engine mlchaos uses beyond one machine.

mlchaos drives the Kubernetes API (pod deletion, scaling, reads for probes)
and Chaos Mesh objects (network, HTTP, stress faults) instead of running its
own node agents.  This package is cheap to import: the ``kubernetes`` client
is imported inside the functions that talk to a cluster.

Public entry points:

* :func:`cleanup` - ``mlchaos stop``: delete every Chaos Mesh object this
  machine created (delete-collection by the machine label);
  :func:`cleanup_for_stop` runs it for the default cluster and for every
  cluster named in the lease records.
* :func:`mlchaos.platforms.kubernetes.manifests.render_lab` and
  :func:`mlchaos.platforms.kubernetes.render.render_chaos`.
* :class:`mlchaos.platforms.kubernetes.client.KubeClient`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mlchaos.platforms.kubernetes.chaosmesh import PLURALS
from mlchaos.platforms.kubernetes.client import Connection, KubeClient
from mlchaos.platforms.kubernetes.labels import machine_id, machine_selector
from mlchaos.plugin import PluginError

__all__ = ["Connection", "KubeClient", "cleanup", "cleanup_for_stop", "machine_id"]


def cleanup(
    connection: Connection | dict[str, Any] | None = None,
    *,
    namespaces: list[str] | None = None,
    machine: str | None = None,
    client: KubeClient | None = None,
) -> dict[str, Any]:
    """Delete every Chaos Mesh object labelled with this machine's label; for ``mlchaos stop``.

    For each kind mlchaos creates, the objects are found with one read-only
    list across all namespaces (or only ``namespaces`` when given, e.g. when
    the credentials cannot list cluster-wide), then removed with one
    delete-collection per namespace, selected by the machine label, so
    objects of other machines and other tools are never touched.

    ``connection`` is the one recorded in a lease's undo record (a dict is
    accepted as is), or None for the default kubeconfig / in-cluster config.
    Errors of one kind or namespace do not stop the sweep; they are returned.
    On a machine with no Kubernetes configuration at all (no kubeconfig, not
    in a cluster, no ``connection``) nothing is attempted and ``skipped`` says so.
    Returns ``{"selector", "deleted": {plural: {namespace: count}}, "errors": [...], "skipped"}``.
    """
    selector = machine_selector(machine)
    deleted: dict[str, dict[str, int]] = {}
    errors: list[str] = []
    if client is None:
        conn = connection if isinstance(connection, Connection) else Connection.from_dict(connection)
        if not conn.configured():
            return {
                "selector": selector,
                "deleted": deleted,
                "errors": errors,
                "skipped": "no Kubernetes configuration",
            }
        client = KubeClient(conn, allowed_namespaces=None)
    for plural in sorted(set(PLURALS.values())):
        try:
            if namespaces is None:
                items = client.list_chaos(plural, label_selector=selector)
                found: dict[str, int] = {}
                for item in items:
                    ns = item.get("metadata", {}).get("namespace")
                    if ns:
                        found[ns] = found.get(ns, 0) + 1
            else:
                found = {}
                for ns in namespaces:
                    n = len(client.list_chaos(plural, label_selector=selector, namespace=ns))
                    if n:
                        found[ns] = n
        except PluginError as exc:
            errors.append(str(exc))
            if getattr(exc, "status", None) is None:
                break  # unreachable or unconfigured: the other kinds would fail the same way
            continue
        for ns, n in sorted(found.items()):
            try:
                client.delete_chaos_collection(plural, ns, label_selector=selector)
                deleted.setdefault(plural, {})[ns] = n
            except PluginError as exc:
                errors.append(str(exc))
    return {"selector": selector, "deleted": deleted, "errors": errors, "skipped": None}


def cleanup_for_stop(lease_records: Iterable[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """``mlchaos stop``: sweep the default cluster and every cluster named in lease records.

    ``lease_records`` are the lease files' contents (``{"plugin", "undo": {"connection": ...}}``);
    collect them before reverting the leases.  Each distinct connection is swept once.  On a
    machine without Kubernetes configuration and without Kubernetes leases nothing is attempted.
    Returns one :func:`cleanup` result per connection, each with its ``connection``.
    """
    seen: list[dict[str, Any]] = [{}]
    for record in lease_records:
        undo = record.get("undo") or {}
        conn = undo.get("connection") if isinstance(undo, Mapping) else None
        if isinstance(conn, Mapping) and dict(conn) not in seen:
            seen.append(dict(conn))
    results = []
    for conn in seen:
        result = cleanup(conn)
        result["connection"] = conn
        results.append(result)
    return results
