"""Fixtures for the Kubernetes tests: the replay server and a minimal engine context.

No live cluster runs here or in CI.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from mlchaos.plugin import Context, Target
from tests.k8s.replay import ReplayServer


class FakeContext(Context):
    """What the engine lends a plugin, reduced to what the Kubernetes plugins use."""

    def __init__(self, targets: dict[str, Target] | None = None, run_id: str = "run-20261126-k8s") -> None:
        self.run_id = run_id
        self.state_dir = None
        self.lease_ttl = 5.0
        self.targets = targets or {}
        self.events: list[tuple[str, dict[str, Any]]] = []

    def target(self, name: str) -> Target:
        return self.targets[name]

    def log(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))

    @property
    def services(self) -> Mapping[str, Any]:
        return {}


@pytest.fixture
def api() -> Iterator[ReplayServer]:
    server = ReplayServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def machine(monkeypatch: pytest.MonkeyPatch) -> str:
    """A fixed machine label, and no machine-wide allow-list from the environment."""
    monkeypatch.setenv("MLCHAOS_MACHINE_ID", "test-machine")
    monkeypatch.delenv("MLCHAOS_K8S_ALLOWED_NAMESPACES", raising=False)
    return "test-machine"


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]
