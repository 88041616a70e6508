"""Preflight changes nothing: every built-in fault's preflight, run against read-only files, leaves them as they were.

A preflight proves a fault *can* be injected and touches nothing (``mlchaos.plugin.Fault.preflight``);
the feature-store faults once broke that rule by creating a table in, and switching to WAL, a SQLite
database they did not own (issue 19).  This test runs the preflight of every fault in
``registry.BUILTIN["fault"]`` with a minimal valid spec (:func:`specs`, one row per fault) against a
tree of real inputs: a lab directory (its last ``state.json``, its WAL-mode SQLite feature store,
its models directory), a parquet table, model files, a Feast repository with its SQLite online store,
a user pipeline's directory, the state directory; plus a real fault proxy and a real process.
Everything under the tree is made read-only (``chmod a-w``) and snapshotted (every path, its type,
mode, size, mtime and SHA-256) before and after each preflight; the snapshots must be equal.

The tests run as root, for whom ``chmod a-w`` stops nothing: the snapshot comparison is the real
check, not the permissions (which only make a non-root run stricter).  A fault that cannot preflight
here is listed in :data:`CANNOT` with the reason, and the test checks that list and the table cover
the registry exactly, so a new fault needs a row here.  The built-in targets' preflights (a GET, a pid
check, the lab's state) get the same check (:func:`target_rows`, :data:`TARGETS_CANNOT`); probes have
no preflight (they only measure, from the baseline phase on).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import stat
import subprocess
import sys
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from mlchaos import registry
from mlchaos.plugin import Context, FaultError, Target

pytestmark = pytest.mark.slow

CANNOT: dict[str, str] = {
    "pod-delete": "reads pods from a Kubernetes API server (no cluster here)",
    "deployment-scale": "reads the deployment from a Kubernetes API server (no cluster here)",
    "k8s-network": "reads pods from a Kubernetes API server (no cluster here)",
    "k8s-http": "reads pods from a Kubernetes API server (no cluster here)",
    "k8s-stress": "reads pods from a Kubernetes API server (no cluster here)",
    "llm-engine-hang": "asks a running lab LLM engine (GET /info); tests/lab/test_llm_engine.py runs one",
}
"""Faults whose preflight cannot run on this machine, and why."""

PLAUSIBLE: list[Any] = ["10ms", 1000, ["conv_rate"], "a", 1, 0.5]
"""Tried in order for each required parameter of a proxy fault kind (the first its model accepts)."""


def proxy_params(kind: str) -> dict[str, Any]:
    """A proxy kind's required parameters with a value its own model accepts (found, not hand-written,
    so a new kind needs no row of its own)."""
    from mlchaos.proxy.faults import KINDS

    model = KINDS[kind].params_model

    def valid(params: dict[str, Any]) -> bool:
        try:
            model.model_validate(params)
        except Exception:
            return False
        return True

    def candidates(field: Any) -> list[Any]:
        """The field's own choices first (a Literal), then the plausible values."""
        ann = field.annotation
        options = [ann] if typing.get_origin(ann) is typing.Literal else list(typing.get_args(ann))
        choices = [c for a in options if typing.get_origin(a) is typing.Literal for c in typing.get_args(a)]
        return [*choices, *PLAUSIBLE]

    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if field.is_required():
            out.update(next(({name: v} for v in candidates(field) if valid({**out, name: v})), {}))
    if valid(out):
        return out
    # no required field, but a cross-field rule wants one of several set (e.g. a delay or a rate)
    for name, field in model.model_fields.items():
        for v in candidates(field):
            if valid({**out, name: v}):
                return {**out, name: v}
    raise AssertionError(f"no minimal valid parameters found for proxy kind {kind!r}: add them to specs()")


def specs(tree: Path, control: str, pid: int) -> dict[str, dict[str, Any]]:
    """One minimal valid step per fault that can preflight here (the proxy kinds are added by the caller)."""
    lab = str(tree / "lab")
    feast = str(tree / "feast")
    return {
        "process-pause": {"pids": [pid]},
        "process-kill": {"pids": [pid]},
        "stale-model": {"lab_dir": lab},
        "stale-features": {"lab_dir": lab, "count": 2},
        "missing-entities": {"lab_dir": lab, "count": 2},
        "out-of-order-writes": {"lab_dir": lab, "count": 2},
        "feast-stale-rows": {"repo_path": feast, "feature_view": "driver_hourly_stats",
                             "entities": [{"driver_id": 1001}], "values": {"conv_rate": 0.0}},
        "feast-delete-entities": {"repo_path": feast, "feature_view": "driver_hourly_stats",
                                  "entities": [{"driver_id": 1001}]},
        "proxy": {"control": control, "kind": "latency", "params": {"delay": "10ms"}},
        "validation-crash": {"lab_dir": lab},
        "validation-hang": {"lab_dir": lab},
        "validation-nan": {"lab_dir": lab},
        "registry-outage": {"lab_dir": lab},
        "artifact-corrupt": {"lab_dir": lab, "mode": "bitflip"},
        "training-poison": {"lab_dir": lab},
        "delivery-run": {"pipeline": {"steps": [{"name": "train", "argv": ["true"]}], "cwd": str(tree / "pipeline"),
                                      "runs_dir": str(tree / "state" / "delivery-runs")}},
        "failpoint": {"point": "batch.after_extract", "kind": "nulls", "columns": ["amount"]},
        "file-corrupt": {"path": str(tree / "data" / "table.parquet"), "kind": "nulls", "columns": ["amount"]},
        "model-swap": {"path": str(tree / "models" / "model.pkl"), "replacement": str(tree / "models" / "old.pkl")},
        "model-truncate": {"path": str(tree / "models" / "model.pkl")},
    }


def build_tree(tree: Path) -> None:
    """Real inputs for every fault, as the systems they belong to leave them."""
    import pandas as pd

    from mlchaos.lab.featurestore import ROW_FIELDS, OnlineStore

    (tree / "state").mkdir(parents=True)
    (tree / "pipeline").mkdir()
    (tree / "data").mkdir()
    pd.DataFrame({"amount": [1.0, 2.0, 3.0], "city": ["a", "b", "c"]}).to_parquet(tree / "data" / "table.parquet")
    (tree / "models").mkdir()
    (tree / "models" / "model.pkl").write_bytes(b"model-v2" * 64)
    (tree / "models" / "old.pkl").write_bytes(b"model-v1" * 64)
    lab = tree / "lab"
    for d in ("models", "data", "logs", "batch"):
        (lab / d).mkdir(parents=True)
    store = OnlineStore(lab / "data" / "features.sqlite")  # the lab's own store: WAL mode, like a built lab
    store.write_rows({i: {f: float(i) for f in ROW_FIELDS} for i in range(1, 11)})
    store.close()
    services = [{"name": f"serving-{i}", "system": "serving", "role": "replica", "pid": None, "ready": True}
                for i in (1, 2)]
    (lab / "state.json").write_text(json.dumps({"services": services, "supervisor": {}}))  # a stopped lab's state
    from tests.feast.conftest import build_repo

    build_repo(tree / "feast")


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every path under ``root``: type, permission bits, size, mtime (ns) and, for files, the SHA-256."""
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            p = Path(dirpath) / name
            st = p.lstat()
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else None
            out[str(p.relative_to(root))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_size,
                                             st.st_mtime_ns, digest)
    return out


@contextlib.contextmanager
def read_only(root: Path) -> Iterator[None]:
    """``chmod a-w`` on every path under ``root`` (and ``root``); the modes come back afterwards."""
    modes: dict[Path, int] = {}
    paths = [root, *(Path(d) / n for d, ds, fs in os.walk(root) for n in [*ds, *fs])]
    for p in paths:
        if not p.is_symlink():
            modes[p] = stat.S_IMODE(p.stat().st_mode)
    try:
        for p, mode in modes.items():
            p.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        yield
    finally:
        for p, mode in modes.items():
            with contextlib.suppress(OSError):
                p.chmod(mode)


class Ctx(Context):
    """A run's context with no target: every fault here is pointed at its inputs by its own spec."""

    def __init__(self) -> None:
        self.run_id = "preflight"
        self.state_dir = None
        self.lease_ttl = 5.0

    def target(self, name: str) -> Target:
        raise LookupError(f"no target {name!r} in this test")

    def log(self, event: str, **fields: Any) -> None:
        pass

    @property
    def services(self) -> Mapping[str, Any]:
        return {}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("readonly") / "tree"
    build_tree(root)
    yield root


@pytest.fixture(scope="module")
def proxy() -> Iterator[str]:
    from mlchaos.proxy import spawn

    handle = spawn(listen="127.0.0.1:0", upstream="127.0.0.1:9", mode="http")
    try:
        yield handle.control_url
    finally:
        handle.stop()


@pytest.fixture(scope="module")
def sleeper() -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait(5)


def all_specs(tree: Path, control: str, pid: int) -> dict[str, dict[str, Any]]:
    from mlchaos.faults import network

    out = specs(tree, control, pid)
    for name, where in registry.BUILTIN["fault"].items():
        module, _, attr = where.partition(":")
        kind = getattr(getattr(network, attr, None), "kind", "") if module == "mlchaos.faults.network" else ""
        if kind:
            out[name] = {"control": control, **proxy_params(kind)}
    return out


def test_every_builtin_fault_has_a_row_or_a_reason(tree: Path, proxy: str, sleeper: int) -> None:
    rows = set(all_specs(tree, proxy, sleeper))
    assert not rows & set(CANNOT), "a fault is both in the table and in CANNOT"
    assert rows | set(CANNOT) == set(registry.BUILTIN["fault"]), (
        f"missing: {sorted(set(registry.BUILTIN['fault']) - rows - set(CANNOT))}; "
        f"not registered: {sorted((rows | set(CANNOT)) - set(registry.BUILTIN['fault']))}")


@pytest.mark.parametrize("name", sorted(set(registry.BUILTIN["fault"]) - set(CANNOT)))
def test_preflight_changes_nothing(name: str, tree: Path, proxy: str, sleeper: int,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    step = all_specs(tree, proxy, sleeper).get(name)
    assert step is not None, f"no row for fault {name!r} in specs(): add one (or a reason to CANNOT)"
    monkeypatch.setenv("MLCHAOS_STATE_DIR", str(tree / "state"))  # failpoints and runs default under it
    monkeypatch.setenv("MLCHAOS_LAB_DIR", str(tree / "lab"))
    monkeypatch.delenv("MLCHAOS_FAILPOINT_DIR", raising=False)
    cls = registry.get("fault", name)
    fault = cls(cls.Spec.model_validate({"fault": name, **step}), Ctx())
    before = snapshot(tree)
    with read_only(tree):
        try:
            planned = asyncio.run(fault.preflight())
        except FaultError as exc:
            if os.geteuid() == 0:  # as root nothing is refused for permissions: a refusal is a bad row
                raise
            assert "permission" in str(exc).lower(), exc
            planned = {}
    after = snapshot(tree)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"{name} preflight changed {changed}"
    assert isinstance(planned, dict)


# -- targets: their preflight is a read too (a GET, a pid check, the lab's state) -------------------------------
TARGETS_CANNOT: dict[str, str] = {
    "kubernetes": "needs a cluster's API server (none here); its preflight is a version call and a pod list",
}


def target_rows(tree: Path, control: str, pid: int) -> dict[str, dict[str, Any]]:
    return {
        "process": {"platform": "process", "pids": [pid]},
        "http": {"platform": "http", "url": control, "health": "/faults"},  # a real HTTP server: the proxy's API
        # the tree's lab is not running: preflight says so (TargetError) and must still change nothing
        "lab": {"platform": "lab", "lab_dir": str(tree / "lab"), "system": "serving"},
    }


def test_every_builtin_target_has_a_row_or_a_reason(tree: Path, proxy: str, sleeper: int) -> None:
    rows = set(target_rows(tree, proxy, sleeper))
    assert rows | set(TARGETS_CANNOT) == set(registry.BUILTIN["target"]) and not rows & set(TARGETS_CANNOT)


@pytest.mark.parametrize("name", sorted(set(registry.BUILTIN["target"]) - set(TARGETS_CANNOT)))
def test_target_preflight_changes_nothing(name: str, tree: Path, proxy: str, sleeper: int,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from mlchaos.plugin import TargetError

    monkeypatch.setenv("MLCHAOS_STATE_DIR", str(tree / "state"))
    cls = registry.get("target", name)
    target = cls(cls.Spec.model_validate(target_rows(tree, proxy, sleeper)[name]), Ctx())
    before = snapshot(tree)
    with read_only(tree):
        try:
            asyncio.run(target.preflight())
        except TargetError as exc:
            assert name == "lab" and "no lab running" in str(exc), exc
    after = snapshot(tree)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"target {name} preflight changed {changed}"
