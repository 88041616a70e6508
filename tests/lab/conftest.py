"""Fixtures for lab tests: a lab in a temporary directory, always brought down, checked for orphans."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from mlchaos.lab import Lab
from mlchaos.lab.build import ensure_built
from mlchaos.lab.paths import LabPaths, port_is_free


@pytest.fixture(scope="session")
def built_lab_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data and models built once per session; each lab copies them (training is seeded anyway)."""
    root = tmp_path_factory.mktemp("lab-build")
    ensure_built(LabPaths(root))
    return root


def _copy_build(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("data", "models"):
        shutil.copytree(src / name, dst / name, dirs_exist_ok=True)
    shutil.copy2(src / "build.json", dst / "build.json")


def assert_all_stopped(pids: list[int], ports: list[int], down_at: float | None = None) -> None:
    """No process of the lab left (zombies included) and every port free again.  A process created after
    ``down_at`` (when ``down`` began) only reuses a lab pid: pid_max is 32768 here and a parallel test run
    spawns thousands of processes."""
    alive = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            if down_at is not None and p.create_time() > down_at:
                continue
            alive.append((pid, p.status(), p.cmdline()))
        except psutil.NoSuchProcess:
            continue
    assert not alive, f"orphan processes after down: {alive}"
    busy = [p for p in ports if not port_is_free(p)]
    assert not busy, f"ports still bound after down: {busy}"


@pytest.fixture
def check_stopped() -> Callable[..., None]:
    """The orphan/port check, for tests that bring a lab down themselves."""
    return assert_all_stopped


@pytest.fixture
def make_lab(tmp_path_factory: pytest.TempPathFactory, built_lab_dir: Path) -> Iterator[Callable[..., Lab]]:
    """``make_lab()`` → a Lab in a fresh directory (build copied); brought down and checked afterwards."""
    labs: list[Lab] = []

    def factory(load_delay: float = 1.0, **kwargs: Any) -> Lab:
        d = tmp_path_factory.mktemp("lab")
        _copy_build(built_lab_dir, d)
        lab = Lab(d, load_delay=load_delay, **kwargs)
        labs.append(lab)
        return lab

    yield factory
    lost = []
    for lab in labs:
        if not lab.is_up():
            why = supervisor_lost(lab)
            if why:  # its supervisor runs, yet the lab says it is down: bring it down anyway, then say so
                lost.append(why)
                lab.down()
            continue
        pids = list(lab.pids().values())
        sup = lab.pids().get("supervisor")
        if sup:
            with contextlib.suppress(psutil.NoSuchProcess):
                pids += [c.pid for c in psutil.Process(sup).children(recursive=True)]
        ports = [s.port for s in lab.status() if s.port]
        down_at = time.time()
        lab.down()
        assert_all_stopped(pids, ports, down_at)
    assert not lost, lost


def supervisor_lost(lab: Lab) -> str:
    """Why ``is_up()`` is False while the supervisor that state.json names still runs ("" when it does not).

    Seen once in a parallel CI run (2026-12-05, two labs at ~02:40, not reproduced alone): the readings
    that tell a reused pid, a torn state file or a start-time mismatch apart.
    """
    import json

    from mlchaos.lab import lifetime

    if not lab.paths.state.exists():  # never brought up
        return ""
    try:
        st = json.loads(lab.paths.state.read_text())
    except (OSError, ValueError) as exc:  # what Lab._state() swallows: say it
        return f"lab {lab.paths.root}: state.json unreadable: {exc!r} (this process has {psutil.Process().num_fds()} fds)"
    sup = st.get("supervisor") or {}
    pid = sup.get("pid")
    if not isinstance(pid, int):
        return ""
    try:
        p = psutil.Process(pid)
        info = {"status": p.status(), "create_time": p.create_time(), "cmdline": " ".join(p.cmdline())[:200],
                "boot_time": psutil.boot_time()}
    except psutil.Error:
        return ""
    if info["status"] == psutil.STATUS_ZOMBIE or "mlchaos.lab.supervisor" not in info["cmdline"]:
        return ""
    return (f"lab {lab.paths.root}: is_up() False while its supervisor runs: recorded {sup}, process {info}, "
            f"supervisor_runs={lifetime.supervisor_runs(sup)}")
