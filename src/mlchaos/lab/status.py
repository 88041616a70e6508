"""What the supervisor reports about each lab process (``state.json`` and ``GET /status``).

Its own module so that readers of a lab's state (the CLI, the lab target, tests) need not import the
:class:`mlchaos.lab.lab.Lab` handle, which re-exports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
