"""What the supervisor reports about each lab process (``state.json`` and ``GET /status``).

Its own module so that readers of a lab's state (the CLI, the lab target, tests) need not import the
:class:`mlchaos.lab.lab.Lab` handle, which re-exports it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ServiceStatus:
    """One process of the lab as the supervisor sees it (``batch`` has no process: pid and port are None)."""

    name: str
    system: str
    role: str
    pid: int | None
    port: int | None
    url: str | None
    ready: bool
    variant: str | None
    model_version: str | None
    restarts: int = 0
    group: str | None = None
    model_alias: str | None = None
    control_url: str | None = None
    """A fault proxy's control API (role ``proxy``): what network faults drive."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ServiceStatus:
        return cls(
            d["name"],
            d["system"],
            d["role"],
            d.get("pid"),
            d.get("port"),
            d.get("url"),
            bool(d.get("ready")),
            d.get("variant"),
            d.get("model_version"),
            int(d.get("restarts") or 0),
            d.get("group"),
            d.get("model_alias"),
            d.get("control_url"),
        )


def why_not_ready(s: ServiceStatus, log: Path, port_free: Callable[[int], bool]) -> str:
    """One line on a service that did not get ready: is it running, how often it restarted, whether its
    port is held by someone else, and the last line of its log.

    "not ready after 60s: embedding-proxy" sends a user to read ten log files; the usual causes (a port
    taken, an import error, a crash loop) are on this line instead.
    """
    parts = [f"pid {s.pid}" if s.pid else "not running"]
    if s.restarts:
        parts.append(f"restarted {s.restarts} time{'s' * (s.restarts != 1)}")
    if not s.pid and s.port and not port_free(s.port):
        parts.append(f"port {s.port} is held by another process")
    last = _last_line(log)
    if last:
        parts.append(f"{log.name}: {last}")
    return f"{s.name} ({'; '.join(parts)})"


def _last_line(path: Path, keep: int = 300) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 8192))
            lines = [x.strip() for x in f.read().decode("utf-8", "replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return lines[-1][:keep] if lines else ""
