"""Prometheus text exposition of the proxy's counters.

Written by hand rather than through ``prometheus_client`` registries: fault
series come and go with leases, and a global registry would keep (or need
manual unregistering of) every fault id ever seen.  The format is the stable
text format 0.0.4.
"""

from __future__ import annotations

from mlchaos.proxy.stats import Stats
from mlchaos.proxy.table import FaultTable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(table: FaultTable, stats: Stats) -> str:
    out: list[str] = []

    def metric(name: str, kind: str, help_: str, rows: list[tuple[str, float]]) -> None:
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(f"{name}{labels} {value}" for labels, value in rows)

    metric("mlchaos_proxy_connections_total", "counter", "Client connections accepted.",
           [("", stats.connections_total)])
    metric("mlchaos_proxy_connections_active", "gauge", "Client connections open now.",
           [("", stats.connections_active)])
    metric("mlchaos_proxy_requests_total", "counter", "Requests (HTTP) or connections (TCP) decided.",
           [("", stats.requests_total)])
    metric("mlchaos_proxy_requests_faulted_total", "counter", "Requests or connections hit by at least one fault.",
           [("", stats.requests_faulted)])
    metric("mlchaos_proxy_upstream_errors_total", "counter", "Failed upstream connects or unparsable responses.",
           [("", stats.upstream_errors)])
    metric("mlchaos_proxy_upstream_retries_total", "counter",
           "Requests sent again on a fresh connection after a reused one closed before answering.",
           [("", stats.upstream_retries)])
    metric("mlchaos_proxy_bad_requests_total", "counter", "Requests refused: malformed or over a header/body limit.",
           [("", stats.bad_requests)])
    metric("mlchaos_proxy_timeouts_total", "counter", "Client connections closed by the header, idle or body timeout.",
           [("", stats.timeouts)])
    metric("mlchaos_proxy_connections_refused_total", "counter", "Client connections refused over --max-connections.",
           [("", stats.connections_refused)])
    metric("mlchaos_proxy_faults_active", "gauge", "Faults with a live lease.", [("", len(table.rules))])
    rows_seen: list[tuple[str, float]] = []
    rows_hit: list[tuple[str, float]] = []
    for r in table.rules:
        labels = f'{{id="{_esc(r.id)}",kind="{_esc(r.kind)}",name="{_esc(r.name or "")}"}}'
        rows_seen.append((labels, r.seen))
        rows_hit.append((labels, r.affected))
    metric("mlchaos_proxy_fault_seen_total", "counter", "Requests inside a fault's matchers (before the coin).",
           rows_seen)
    metric("mlchaos_proxy_fault_affected_total", "counter", "Requests a fault was applied to.", rows_hit)
    return "\n".join(out) + "\n"
