"""The topology table: consistent as data, and every entry of it starts, becomes ready and is torn down.

The table (``mlchaos.lab.topology.TABLE``) is the only place that says what the
lab runs, so these tests are what keeps "add a service = one module + one
entry" true: a new entry with a typo in a dependency, a port name that clashes,
a module without ``main`` or a placeholder the supervisor does not fill fails
here, not in a scenario run.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Callable

import psutil

from mlchaos.lab import Lab
from mlchaos.lab.models import RECS_VERSION
from mlchaos.lab.paths import free_port
from mlchaos.lab.topology import (
    BY_NAME,
    ENTRYPOINTS,
    PLACEHOLDERS,
    ROLES,
    SYSTEMS,
    TABLE,
    Entry,
    callers,
    expand,
    placeholders,
)

from .conftest import assert_all_stopped


def _process_names(e: Entry, replicas: int) -> list[str]:
    return [f"{e.name}-{i}" for i in range(replicas)] if e.replicated else [e.name]


def test_table_is_consistent() -> None:
    names = [e.name for e in TABLE]
    assert len(names) == len(set(names)), f"duplicate entry names: {names}"
    assert {e.system for e in TABLE} == set(SYSTEMS), "every system has an entry, every entry a known system"
    seen: set[str] = set()
    for e in TABLE:
        where = f"entry {e.name!r}"
        assert e.role in ROLES, f"{where}: role {e.role!r} not in {ROLES}"
        # every dependency names an entry listed before it (the table is in start order)
        for dep in (*e.depends_on, e.upstream, e.calls):
            if dep is not None:
                assert dep in BY_NAME, f"{where}: depends on {dep!r}, which is no entry"
                assert dep in seen, f"{where}: depends on {dep!r}, listed after it"
        if e.upstream:
            assert e.upstream in e.depends_on, f"{where}: its upstream is a dependency"
        if e.calls:
            assert e.calls in e.depends_on, f"{where}: what it calls is a dependency"
        seen.add(e.name)
        # its arguments use only placeholders the supervisor fills
        unknown = placeholders(e.args) - set(PLACEHOLDERS)
        assert not unknown, f"{where}: unknown placeholders {unknown}"
        if "backends" in placeholders(e.args):
            assert e.group and any(r.group == e.group and r.replicated for r in TABLE), where
        if "upstream" in placeholders(e.args):
            assert e.upstream, where
        if "dependency" in placeholders(e.args):
            assert e.calls, where
        # its module is importable and has a main(argv)
        mod = importlib.import_module(e.module)
        assert callable(getattr(mod, "main", None)), f"{where}: {e.module} has no main()"
    # ports: every port key (process ports, proxies' control ports, replica names) is unique
    keys = [k for e in TABLE for n in _process_names(e, max(e.replicas, 3)) for k in ((n, f"{n}-control")
            if e.control_port else (n,)) if e.role != "job"]
    assert len(keys) == len(set(keys)), f"port names clash: {keys}"
    assert set(ENTRYPOINTS.values()) <= set(names), "every entrypoint names an entry"
    assert set(callers()) <= set(names)
    assert {e.model_version for e in TABLE if e.system == "recommender" and e.model_version} == {RECS_VERSION}


def test_expand_fills_and_splices() -> None:
    assert expand(("--a", "{x}", "{many}", "{none}", "--b"), {"x": "1", "many": ["--c", "2"], "none": []}) == [
        "--a", "1", "--c", "2", "--b"]


def test_every_entry_starts_is_ready_and_is_torn_down(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab()
    # pin every entry's ports by the table's port names: the supervisor must honour each of them
    pinned = {k: free_port() for e in TABLE for k in e.port_names}
    # every system, the opt-in llm one included
    status = {s.name: s for s in lab.up(list(SYSTEMS), variant="mitigated", ports=pinned, timeout=180)}
    replicas = {"serving": 3, "features": 1}  # the table's count; features: the autoscaler's minimum
    for e in TABLE:
        if e.role == "job":  # no process: it runs on demand, once its input is built
            assert status[e.name].ready and status[e.name].pid is None, status[e.name]
            continue
        for n in _process_names(e, replicas.get(e.name, 1)):
            s = status.get(n)
            assert s is not None, f"entry {e.name!r}: no process {n!r} in {sorted(status)}"
            assert s.ready and s.pid, f"{n} not ready: {s}"
            assert (s.system, s.role, s.group) == (e.system, e.role, e.group), s
            if n in pinned:
                assert s.port == pinned[n], f"{n}: port {s.port}, pinned {pinned[n]}"
            if e.control_port:
                assert s.control_url == f"http://127.0.0.1:{pinned[n + '-control']}", s
    ports = [s.port for s in status.values() if s.port]
    ports += [int(s.control_url.rsplit(":", 1)[1]) for s in status.values() if s.control_url]
    assert len(ports) == len(set(ports)), f"two processes on one port: {sorted(ports)}"
    # the job entry runs
    batch = lab.run_batch()
    assert batch["status"] == "ok" and batch["exit_code"] == 0, batch
    # torn down: no process left, every port free again
    pids = list(lab.pids().values())
    sup = lab.pids()["supervisor"]
    with contextlib.suppress(psutil.NoSuchProcess):
        pids += [c.pid for c in psutil.Process(sup).children(recursive=True)]
    down_at = time.time()
    lab.down()
    assert not lab.is_up()
    assert_all_stopped(pids, ports, down_at)
