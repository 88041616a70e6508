"""Fixtures for delivery tests: a serving lab per test (build copied)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mlchaos.lab import Lab
from mlchaos.lab.build import ensure_built
from mlchaos.lab.paths import LabPaths


@pytest.fixture(scope="session")
def built_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("delivery-build")
    ensure_built(LabPaths(root))
    return root


@pytest.fixture
def lab_dir(tmp_path: Path, built_dir: Path) -> Path:
    d = tmp_path / "lab"
    d.mkdir()
    for name in ("data", "models"):
        shutil.copytree(built_dir / name, d / name)
    shutil.copy2(built_dir / "build.json", d / "build.json")
    return d


@pytest.fixture
def serving(lab_dir: Path) -> Iterator[Callable[[str], Lab]]:
    """``serving(variant)`` → the lab's serving system up in that variant; always brought down."""
    labs: list[Lab] = []

    def up(variant: str, **kwargs: Any) -> Lab:
        lab = Lab(lab_dir, load_delay=0.3)
        labs.append(lab)
        lab.up(["serving"], variant=variant, **kwargs)
        return lab

    yield up
    for lab in labs:
        lab.down()


class FakeCtx:
    """The little of the engine's Context a delivery fault uses outside a run."""

    run_id = "test"
    state_dir = None
    lease_ttl = 30.0
    def __init__(self) -> None:
        self.services: dict[str, Any] = {}
        self.events: list[tuple[str, dict[str, Any]]] = []

    def log(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))

    def target(self, name: str) -> Any:
        raise LookupError(name)

    @property
    def phase(self) -> str:
        return "fault"
