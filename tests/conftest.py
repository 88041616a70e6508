"""Shared fixtures: an isolated mlchaos state directory per test, free ports, an orphan check, and
the host share between xdist workers (``heavy`` tests in two queues, ``exclusive`` ones alone)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

HEAVY: dict[str, str] = {
    # a: whole experiments in a lab (the demo, the LLM scenarios), the installed wheel, venv builds
    "tests/scenarios/": "a", "tests/packaging/": "a", "tests/engine/test_init.py": "a",
    "tests/cli/test_init_dependency.py": "a", "tests/data/test_drift.py::test_equals_evidently": "a",
    # b: labs, the delivery pipeline, real MLflow / Feast / LiteLLM servers
    "tests/delivery/": "b", "tests/lab/": "b", "tests/llm/": "b", "tests/stacks/": "b", "tests/feast/": "b",
    "tests/report/test_llm_report.py": "b",
}
"""Tests that run a lab or an experiment whose verdict depends on the host's CPU, or that build venvs,
by path, in two queues of about equal time.  Each queue is one unit of work for xdist: one worker runs
it in order, so at most two heavy tests run at once, while the other workers take the light files
(each file one unit, so a module's fixtures start once).  One place: a new heavy file is one line here."""


def _unit(nodeid: str) -> str:
    queue = next((q for prefix, q in HEAVY.items() if nodeid.startswith(prefix)), None)
    return f"heavy-{queue}" if queue else nodeid.split("::", 1)[0]


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's file scheduling with the two heavy queues as units of their own.  A scheduler of our own,
    not ``--dist loadgroup``: that mode marks groups by rewriting node ids, which pytest 9.2 no longer
    honours (pytest-xdist issue #1386: the groups are then silently ignored).  Units are queued largest
    first (xdist's default), so the two heavy queues start at once."""
    from xdist.scheduler import LoadScopeScheduling

    class Queues(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit(nodeid)

    return Queues(config, log)


def pytest_itemcollected(item: pytest.Item) -> None:
    if _unit(item.nodeid).startswith("heavy-"):
        item.add_marker(pytest.mark.heavy)


@contextlib.contextmanager
def _flock(path: Path, mode: int) -> Iterator[None]:
    with open(path, "a+b") as fh:
        fcntl.flock(fh, mode)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def _host_share(run_id: str, exclusive: bool) -> Iterator[None]:
    """A readers-writer lock over the host between xdist workers: every test holds it shared, an
    ``exclusive`` one alone.  A writer first takes the gate, which new readers pass through, so a
    stream of short tests on the other workers cannot starve it (Linux flock has no writer preference)."""
    base = Path(tempfile.gettempdir()) / f"mlchaos-tests-{run_id}"
    base.mkdir(exist_ok=True)
    with contextlib.ExitStack() as held:
        if exclusive:
            held.enter_context(_flock(base / "gate", fcntl.LOCK_EX))
            held.enter_context(_flock(base / "host", fcntl.LOCK_EX))
        else:
            with _flock(base / "gate", fcntl.LOCK_SH):
                pass
            held.enter_context(_flock(base / "host", fcntl.LOCK_SH))
        yield


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Outermost, so that pytest-timeout's clock starts after the wait for the host, not before."""
    run_id = getattr(item.config, "workerinput", {}).get("testrunuid")
    if run_id is None:  # one process: nothing runs beside this test
        yield
        return
    with _host_share(str(run_id), item.get_closest_marker("exclusive") is not None):
        yield


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own state dir, so leases and the stop flag never leak between tests."""
    d = tmp_path / "state"
    monkeypatch.setenv("MLCHAOS_STATE_DIR", str(d))
    return d


@pytest.fixture
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(cond, timeout: float = 10.0, interval: float = 0.02) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(interval)
    return bool(cond())


@pytest.fixture
def tiny_service(free_port: int) -> Iterator[tuple[psutil.Popen, str]]:
    """A real prediction service process on a free loopback port, stopped afterwards."""
    import httpx

    proc = psutil.Popen([sys.executable, "-m", "mlchaos.examples.tiny_service", "--port", str(free_port)])
    url = f"http://127.0.0.1:{free_port}"

    def up() -> bool:
        try:
            return httpx.get(url + "/health", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    assert wait_until(up, 15), "tiny service did not start"
    yield proc, url
    try:
        proc.resume()
        proc.kill()
        proc.wait(5)
    except psutil.NoSuchProcess:
        pass


@pytest.fixture(autouse=True)
def no_orphans() -> Iterator[None]:
    """Fail a test that leaves a live child process behind (zombies awaiting reaping are fine)."""
    me = psutil.Process(os.getpid())
    before = {p.pid for p in me.children(recursive=True)}
    yield
    def live_new() -> list[psutil.Process]:
        out = []
        for p in me.children(recursive=True):
            try:
                if p.pid not in before and p.status() != psutil.STATUS_ZOMBIE:
                    out.append(p)
            except psutil.NoSuchProcess:
                pass
        return out
    # watchdogs exit on their own within a poll or two after the run ends
    wait_until(lambda: not live_new(), timeout=5)
    left = live_new()
    for p in left:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    assert not left, f"test left processes behind: {[(p.pid, p.cmdline()) for p in left]}"
