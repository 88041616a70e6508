"""Shared fixtures: an isolated mlchaos state directory per test, free ports, an orphan check, and
the host share between xdist workers (``heavy`` tests two weights at a time, ``exclusive`` ones alone)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

HEAVY: dict[str, int] = {
    # weight 2, alone among the heavy ones: whole experiments whose verdicts need the CPU (the README's
    # demo, the LLM scenarios, the installed wheel's demo, `mlchaos init`'s first run)
    "tests/scenarios/test_demo.py": 2, "tests/scenarios/test_llm_scenarios.py": 2, "tests/packaging/": 2,
    "tests/engine/test_init.py": 2, "tests/cli/test_init_dependency.py": 2,
    # weight 1, two at a time: labs, the delivery pipeline, real MLflow / Feast / LiteLLM servers, venvs
    "tests/scenarios/": 1, "tests/lab/": 1, "tests/delivery/": 1, "tests/llm/": 1, "tests/stacks/": 1,
    "tests/feast/": 1, "tests/report/test_llm_report.py": 1, "tests/data/test_drift.py::test_equals_evidently": 1,
}
"""Tests that run a lab or an experiment whose verdict depends on the host's CPU, or that build venvs, by
path (the first match counts), with their weight: at most two weights run at once, light tests beside
them.  Two heavy queues side by side made verdicts inconclusive on a 2-core host (CI, 2026-12-04: the
host's CPU saturated, the load generator late), so the weight-2 ones run alone among the heavy ones.
One place: a new heavy file is one line here."""

FIRST = ("tests/scenarios/test_demo_loaded_host.py", "tests/scenarios/test_demo.py")
"""Handed out first, in this order: the CPU-hog test (exclusive) while no other file's servers are up yet
(idle MLflow/LiteLLM/Feast servers left by module fixtures add to its hogs), then the longest file
(~4-5 min), so the run does not end waiting for it alone."""


def _file(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


def pytest_itemcollected(item: pytest.Item) -> None:
    weight = next((w for prefix, w in HEAVY.items() if item.nodeid.startswith(prefix)), 0)
    if weight:
        item.add_marker(pytest.mark.heavy(weight))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files in the order xdist hands them out (addopts: --no-loadscope-reorder): FIRST, then the files
    with the most tests (xdist's own default order), each file's tests in their order."""
    count = Counter(_file(i) for i in items)
    first = {f: n for n, f in enumerate(FIRST)}
    items.sort(key=lambda i: (first.get(_file(i), len(FIRST)), -count[_file(i)], _file(i)))


@contextlib.contextmanager
def _flock(path: Path, mode: int) -> Iterator[None]:
    with open(path, "a+b") as fh:
        fcntl.flock(fh, mode)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _one_slot(base: Path, held: contextlib.ExitStack) -> None:
    """Either of the two heavy slots, whichever frees first."""
    files = [held.enter_context(open(base / f"heavy-{i}", "a+b")) for i in (0, 1)]  # noqa: SIM115
    while True:
        for fh in files:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            held.callback(fcntl.flock, fh, fcntl.LOCK_UN)
            return
        time.sleep(0.1)


@contextlib.contextmanager
def _host_share(run_id: str, exclusive: bool, weight: int) -> Iterator[None]:
    """How xdist workers share the host: a light test runs beside anything but an ``exclusive`` one;
    ``heavy`` ones hold one of two slots (weight 2: both); an ``exclusive`` one runs alone.  The host
    lock is a readers-writer flock behind a gate that a waiting writer holds, so that a stream of short
    tests on the other workers cannot starve it (Linux flock has no writer preference)."""
    base = Path(tempfile.gettempdir()) / f"mlchaos-tests-{run_id}"
    base.mkdir(exist_ok=True)
    with contextlib.ExitStack() as held:
        if exclusive:
            held.enter_context(_flock(base / "gate", fcntl.LOCK_EX))
            held.enter_context(_flock(base / "host", fcntl.LOCK_EX))
        else:
            # the slots first, holding nothing else, so that waiting for them delays no exclusive test
            if weight >= 2:
                held.enter_context(_flock(base / "heavy-0", fcntl.LOCK_EX))
                held.enter_context(_flock(base / "heavy-1", fcntl.LOCK_EX))
            elif weight == 1:
                _one_slot(base, held)
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
    heavy = item.get_closest_marker("heavy")
    weight = int(heavy.args[0]) if heavy is not None and heavy.args else int(heavy is not None)
    with _host_share(str(run_id), item.get_closest_marker("exclusive") is not None, weight):
        yield


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own state dir, so leases and the stop flag never leak between tests."""
    d = tmp_path / "state"
    monkeypatch.setenv("MLCHAOS_STATE_DIR", str(d))
    return d


def reserve_port() -> int:
    """A loopback port for a server a test starts, held in TIME_WAIT until that server binds it (it must set
    SO_REUSEADDR, as every server here does): a port only asked for and closed again can be handed to
    another process's outgoing connection first (CI, 2026-12-05: a lab waited 180 s on a taken port)."""
    from mlchaos.lab.paths import free_port as held

    return held()


@pytest.fixture
def free_port() -> int:
    return reserve_port()


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
    named = []
    for p in left:  # named before the kill: a killed child is a zombie, whose cmdline psutil refuses
        try:
            named.append((p.pid, " ".join(p.cmdline())[:300]))
        except psutil.Error:
            named.append((p.pid, "?"))
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    assert not left, f"test left processes behind: {named}"
