"""Feature-store faults on the lab's online store (SQLite and Redis): exact blast radius, exact restore.

Store-level tests run each fault on a copy of the lab's built store (and on a
real redis-server loaded from it); lab tests check what the feature service
answers over HTTP, and one engine run shows a probe seeing stale features.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlchaos import registry
from mlchaos.contract.lease import Lease
from mlchaos.engine.runner import run_experiment
from mlchaos.faults.featurestore import INLINE_ROWS, MissingEntities, OutOfOrderWrites, StaleFeatures
from mlchaos.lab import Lab
from mlchaos.lab import featurestore as fs
from mlchaos.lab.paths import LabPaths
from mlchaos.plugin import FaultError
from mlchaos.spec.loader import load_dict
from tests.data.standalone import Ctx, run
from tests.lab.conftest import built_lab_dir, make_lab  # noqa: F401 - fixtures shared with the lab tests
from tests.lab.test_redis_store import start_redis, stop_redis


def dump(location: str) -> list[Any]:
    """The store's content at the byte level: SQLite's SQL dump, or every Redis hash as raw bytes."""
    if location.startswith("redis://"):
        store = fs.open_store(location)
        assert isinstance(store, fs.RedisStore)
        try:
            return [(i, sorted(store.raw(i).items())) for i in store.ids()]
        finally:
            store.close()
    conn = sqlite3.connect(location)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def rows(location: str) -> dict[int, fs.Row | None]:
    store = fs.open_store(location)
    try:
        return store.read_rows(range(2000))
    finally:
        store.close()


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, built_lab_dir: Path, tmp_path: Path) -> Iterator[str]:  # noqa: F811
    """A copy of the lab's built online store: a SQLite path, or a redis:// URL loaded from it."""
    db = tmp_path / "features.sqlite"
    shutil.copy2(LabPaths(built_lab_dir).feature_db, db)
    if request.param == "sqlite":
        yield str(db)
        return
    proc, url = start_redis(tmp_path / "redis")
    try:
        fs.load_redis(url, db)
        yield url
    finally:
        stop_redis(proc)


FAULTS: list[tuple[type[Any], dict[str, Any]]] = [
    (StaleFeatures, {"fault": "stale-features", "age": "2h"}),
    (MissingEntities, {"fault": "missing-entities"}),
    (OutOfOrderWrites, {"fault": "out-of-order-writes", "age": "1h"}),
]


def check_effect(kind: type[Any], before: dict[int, fs.Row | None], after: dict[int, fs.Row | None],
                 chosen: set[int]) -> None:
    changed = {i for i in before if before[i] != after[i]}
    assert changed == chosen
    for i in chosen:
        old, new = before[i], after[i]
        assert old is not None
        if kind is MissingEntities:
            assert new is None
            continue
        assert new is not None
        if kind is StaleFeatures:
            assert new["event_ts"] == old["event_ts"] - 7200.0
            assert {k: v for k, v in new.items() if k != "event_ts"} == {
                k: v for k, v in old.items() if k != "event_ts"}
        else:
            assert new["event_ts"] == old["event_ts"] - 3600.0  # the latest event time went backwards


@pytest.mark.parametrize(("kind", "base"), FAULTS, ids=[f[1]["fault"] for f in FAULTS])
def test_inject_remove_and_revert_restore_exactly(kind: type[Any], base: dict[str, Any], store: str) -> None:
    original = dump(store)
    before = rows(store)
    spec = kind.Spec(**base, store=store, count=25, seed=3)
    fault = kind(spec, Ctx())
    plan = run(fault.preflight())
    assert plan["entities"] == 25 and plan["of"] == 2000
    assert dump(store) == original  # preflight touches nothing
    applied = run(fault.inject(Lease.new("l1", 5.0)))
    chosen = {int(t.split(":")[1]) for t in applied.targets}
    assert len(chosen) == 25 and applied.undo["entities"] == sorted(chosen)
    assert "rows" in applied.undo  # small blast radius: originals inline in the undo record
    check_effect(kind, before, rows(store), chosen)
    run(fault.remove())
    assert dump(store) == original
    run(fault.remove())  # idempotent
    assert dump(store) == original

    # the same seed hits the same entities; revert() alone (a dead runner) restores them
    again = kind(kind.Spec(**base, store=store, count=25, seed=3), Ctx())
    applied2 = run(again.inject(Lease.new("l2", 5.0)))
    assert {int(t.split(":")[1]) for t in applied2.targets} == chosen
    assert dump(store) != original
    kind.revert(applied2.undo)
    assert dump(store) == original
    kind.revert(applied2.undo)
    assert dump(store) == original


def test_large_blast_radius_uses_a_backup_file(store: str, tmp_path: Path) -> None:
    original = dump(store)
    before = rows(store)
    fault = MissingEntities(MissingEntities.Spec(fault="missing-entities", store=store, fraction="50%", seed=1),
                            Ctx())
    applied = run(fault.inject(Lease.new("big", 5.0)))
    assert len(applied.targets) == 1000 > INLINE_ROWS
    backup = Path(applied.undo["backup"])
    assert "rows" not in applied.undo and backup.exists()
    after = rows(store)
    assert sum(v is None for v in after.values()) == 1000
    check_effect(MissingEntities, before, after, {int(t.split(":")[1]) for t in applied.targets})
    MissingEntities.revert(applied.undo)
    assert dump(store) == original and not backup.exists()
    MissingEntities.revert(applied.undo)  # the backup is gone: nothing left to do
    assert dump(store) == original


def test_preflight_refuses_without_touching(store: str) -> None:
    original = dump(store)
    with pytest.raises(FaultError, match="not in the feature store"):
        run(StaleFeatures(StaleFeatures.Spec(fault="stale-features", store=store, entities=[1, 5000]),
                          Ctx()).preflight())
    with pytest.raises(FaultError, match="exceeds"):
        run(MissingEntities(MissingEntities.Spec(fault="missing-entities", store=store, count=5000),
                            Ctx()).preflight())
    assert dump(store) == original


def test_unreachable_store_fails_preflight(tmp_path: Path) -> None:
    with socket_port() as port:
        url = f"redis://127.0.0.1:{port}/0"
    with pytest.raises(FaultError, match="unreachable"):
        run(StaleFeatures(StaleFeatures.Spec(fault="stale-features", store=url), Ctx()).preflight())
    with pytest.raises(FaultError, match="does not exist"):
        run(StaleFeatures(StaleFeatures.Spec(fault="stale-features", store=str(tmp_path / "none.sqlite")),
                          Ctx()).preflight())


class socket_port:
    """A port that nothing listens on."""

    def __enter__(self) -> int:
        import socket

        self.s = socket.socket()
        self.s.bind(("127.0.0.1", 0))
        return int(self.s.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.s.close()


def test_out_of_order_writes_use_an_older_version(built_lab_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    lab_dir = tmp_path / "lab"
    shutil.copytree(built_lab_dir / "data", lab_dir / "data")
    db = str(LabPaths(lab_dir).feature_db)
    before = rows(db)
    fault = OutOfOrderWrites(OutOfOrderWrites.Spec(fault="out-of-order-writes", lab_dir=str(lab_dir), count=50,
                                                   seed=2), Ctx())
    applied = run(fault.inject(Lease.new("ooo", 5.0)))
    assert applied.undo["location"] == db  # found through the lab directory
    # most accounts have an older, different row in the offline store (the last 7 days); the rest keep values
    assert applied.actual["older_values"] >= 30
    after = rows(db)
    values_changed = sum(
        1 for t in applied.targets
        if {k: v for k, v in (after[int(t.split(':')[1])] or {}).items() if k != "event_ts"}
        != {k: v for k, v in (before[int(t.split(':')[1])] or {}).items() if k != "event_ts"})
    assert values_changed == applied.actual["older_values"]
    assert all((after[int(t.split(":")[1])] or {})["event_ts"] == (before[int(t.split(":")[1])] or {})["event_ts"]
               - 3600.0 for t in applied.targets)
    run(fault.remove())
    assert rows(db) == before


# --- on a running lab --------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_feature_service_shows_the_fault_on_exactly_the_chosen_entities(
    backend: str, make_lab: Callable[..., Lab], tmp_path: Path  # noqa: F811
) -> None:
    proc = None
    url = None
    if backend == "redis":
        proc, url = start_redis(tmp_path / "redis")
    try:
        lab = make_lab(feature_store=url or "sqlite")
        lab.up(["realtime"], variant="naive")
        location = url or str(lab.paths.feature_db)
        assert lab.state()["feature_store"]["url"] == location
        original = dump(location)
        feat = lab.endpoints()["features"]
        probe_ids = list(range(0, 2000, 20))
        with httpx.Client(timeout=5) as c:
            def answers() -> dict[int, Any]:
                out: dict[int, Any] = {}
                for i in probe_ids:
                    r = c.get(f"{feat}/features/{i}")
                    out[i] = r.json() if r.status_code == 200 else r.status_code
                return out

            def content(got: dict[int, Any]) -> dict[int, Any]:
                """What the store holds as the service answers it (age and replica change by themselves)."""
                return {i: (v["features"], v["event_ts"]) if isinstance(v, dict) else v for i, v in got.items()}

            base = answers()
            assert all(isinstance(v, dict) for v in base.values())
            # missing entities: 404 for the chosen ones only
            miss = MissingEntities(MissingEntities.Spec(fault="missing-entities", lab_dir=str(lab.paths.root),
                                                        entities=probe_ids[:5]), Ctx())
            run(miss.preflight())
            applied = run(miss.inject(Lease.new("m", 5.0)))
            assert applied.actual["store"] == backend
            now = answers()
            assert {i for i, v in now.items() if v == 404} == set(probe_ids[:5])
            assert all(content(now)[i] == content(base)[i] for i in probe_ids[5:])
            run(miss.remove())
            assert content(answers()) == content(base)
            # stale features: the chosen accounts are 2 h older, the rest unchanged
            stale = StaleFeatures(StaleFeatures.Spec(fault="stale-features", lab_dir=str(lab.paths.root),
                                                     fraction="10%", seed=4), Ctx())
            applied = run(stale.inject(Lease.new("s", 5.0)))
            chosen = {int(t.split(":")[1]) for t in applied.targets}
            now = answers()
            for i in probe_ids:
                if i in chosen:
                    assert now[i]["event_ts"] == base[i]["event_ts"] - 7200.0
                    assert now[i]["feature_age_seconds"] >= 7200.0
                else:
                    assert now[i]["event_ts"] == base[i]["event_ts"]
            StaleFeatures.revert(applied.undo)  # as the watchdog would
            assert dump(location) == original
            assert content(answers()) == content(base)
        lab.down()
    finally:
        if proc is not None:
            stop_redis(proc)


@pytest.fixture
def plugins() -> Iterator[None]:
    names = {"stale-features": StaleFeatures, "missing-entities": MissingEntities,
             "out-of-order-writes": OutOfOrderWrites}
    for name, cls in names.items():
        registry.register("fault", name, cls)
    yield
    for name in names:
        registry.unregister("fault", name)


def test_engine_run_sees_stale_features(make_lab: Callable[..., Lab], plugins: None,  # noqa: F811
                                        tmp_path: Path) -> None:
    lab = make_lab()
    lab.up(["realtime"], variant="naive")
    db = str(lab.paths.feature_db)
    original = dump(db)
    exp = {
        "title": "stale features are visible as feature age",
        "target": {"platform": "lab", "system": "realtime", "lab_dir": str(lab.paths.root)},
        "load": {"rate": "60/s", "sample": 1.0,
                 "request": {"path": "/predict", "method": "POST",
                             "body": {"account_id": 42, "amount": 80.0, "merchant_category": "grocery",
                                      "hour": 14}}},
        "steady_state": [
            {"name": "feature age", "probe": "predictions", "field": "feature_age_seconds", "stat": "mean",
             "window": "1s", "min_samples": 20, "max": 3600},
        ],
        "method": [{"fault": "stale-features", "fraction": "100%", "age": "2h", "seed": 0,
                    "at": "0s", "duration": "2s"}],
        "phases": {"baseline": "1500ms", "fault": "2s", "recovery": "1500ms"},
        "interval": "250ms",
        "lease_ttl": "5s",
        "max_duration": "60s",
    }
    res = run_experiment(load_dict(exp), journal_path=tmp_path / "j.jsonl")
    assert res.status.value == "failed", res.reason
    assert "feature age" in str(res.reason)
    probe = {p["name"]: p for p in res.summary["probes"]}["feature age"]
    assert probe["before"]["value"] < 3600
    fault = res.summary["faults"][0]
    assert fault["plugin"] == "stale-features" and len(fault["targets"]) == 2000 and fault["removed_at"]
    assert fault["actual"]["entities"] == 2000 and not fault["error"]
    assert probe["during"]["breaches"] >= 1 and probe["during"]["max"] >= 3600
    assert dump(db) == original  # removed at the end of the fault phase, byte for byte
    assert not list((lab.paths.root / "data").glob("feature-store-backup-*"))
