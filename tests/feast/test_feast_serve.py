"""Feast, for real: a ``feast serve`` over a repository built here, probed, faulted through the proxy and the SDK.

One server for the module (it takes seconds to start).  Every fault test runs a whole
experiment with :func:`mlchaos.run` and checks three things: the fault was seen by the
``features`` probe (the run ``failed``, the probe breached while the fault was in place),
the steady state held before and again in recovery, and for the SDK faults nothing was left
behind: the online rows read through Feast's SDK are the same bytes and timestamps as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

import mlchaos
from mlchaos.faults.feast import FeastStaleRows
from mlchaos.plugin import Measurement, ProbeError
from mlchaos.probes.features import FeaturesProbe, FeaturesSpec

from .conftest import AGE_S, DRIVERS, VIEW, FeastRepo, build_repo, feast_serve

pytestmark = pytest.mark.slow

FEATURES = [f"{VIEW}:conv_rate", f"{VIEW}:trips"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> FeastRepo:
    return build_repo(tmp_path_factory.mktemp("feast") / "repo")


@pytest.fixture(scope="module")
def server(repo: FeastRepo) -> Iterator[str]:
    with feast_serve(repo.path) as url:
        yield url


class Ctx:
    """The little of the engine's context a probe needs when measured directly."""

    run_id = "t"
    lease_ttl = 5.0
    phase = "baseline"
    services: ClassVar[dict[str, Any]] = {}

    def target(self, name: str) -> Any:
        raise LookupError(name)

    def log(self, event: str, **fields: Any) -> None:
        pass


def measure(url: str, **spec: Any) -> Measurement:
    probe = FeaturesProbe(FeaturesSpec.model_validate({"probe": "features", "url": url + "/get-online-features",
                                                       "features": FEATURES, **spec}), Ctx())

    async def go() -> Any:
        try:
            return await probe.measure()
        finally:
            await probe.stop()

    return asyncio.run(go())


def online_rows(repo: FeastRepo, drivers: list[int]) -> list[tuple[Any, dict[str, bytes] | None]]:
    """The rows as Feast's SDK reads them: (event timestamp, {feature: serialised protobuf})."""
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from feast import FeatureStore

    store = FeatureStore(repo_path=str(repo.path))
    keys = [EntityKey(join_keys=["driver_id"], entity_values=[Value(int64_val=d)]) for d in drivers]
    got = store._get_provider().online_read(config=store.config, table=store.get_feature_view(VIEW),
                                            entity_keys=keys)
    return [(ts, {k: v.SerializeToString() for k, v in vals.items()} if vals else None) for ts, vals in got]


def test_probe_reads_a_real_answer_by_feature_name(repo: FeastRepo, server: str) -> None:
    # the server answers in its own column order (entity key first, then the view's features): read it raw once
    raw = httpx.post(server + "/get-online-features",
                     json={"features": FEATURES, "entities": {"driver_id": [1001, 9999]}}).json()
    assert raw["metadata"]["feature_names"][0] == "driver_id"
    assert set(raw["metadata"]["feature_names"]) == {"driver_id", "conv_rate", "trips"}
    ents = {"driver_id": [1001, 1002, 1003, 9999]}
    nf = measure(server, entities=ents, stat="not-found")
    assert nf.fraction == Measurement.share(2, 8).fraction  # 9999: both features NOT_FOUND
    assert measure(server, entities=ents, stat="null").value == 0.0
    age = measure(server, entities=ents, stat="age", percentile="max")
    assert AGE_S <= age.value < AGE_S + 600 and age.samples == 6  # 3 drivers x 2 features; 9999 has no time
    mean = measure(server, entities=ents, stat="value", feature=f"{VIEW}:conv_rate")
    assert mean.value == pytest.approx(sum(repo.conv_rate[d] for d in (1001, 1002, 1003)) / 3)
    full = measure(server, entities=ents, stat="value", feature="conv_rate", full_feature_names=True)
    assert full.value == mean.value  # 'driver_hourly_stats__conv_rate' found by the bare name too
    short = measure(server, entities={"driver_id": [9999]}, stat="age")
    assert short.value is None and short.insufficient and short.samples == 0  # 9999 has no event time
    with pytest.raises(ProbeError, match="not in the answer"):
        measure(server, entities=ents, stat="not-found", feature="no_such_feature")


def experiment(url: str, method: list[dict[str, Any]], *, proxy: bool, probes: list[dict[str, Any]],
               **over: Any) -> dict[str, Any]:
    exp: dict[str, Any] = {
        "title": "feast",
        "target": {"platform": "http", "url": url, "health": "/health", "proxy": proxy},
        "steady_state": probes,
        "method": method,
        "phases": {"baseline": "1s", "recovery": "1s"},
        "interval": "250ms",
        "lease_ttl": "5s",
        "max_duration": "60s",
    }
    exp.update(over)
    return exp


def seen_then_recovered(res: Any, probe: str) -> None:
    """The probe held before the fault, breached while it was in place, and held again after removal."""
    assert res.status.value == "failed", res.reason
    p = next(p for p in res.summary["probes"] if p["name"] == probe)
    assert p["before"]["ok"] and p["during"]["breaches"] > 0 and p["after"]["ok"], p


AGE_PROBE = {"name": "feature age", "probe": "features", "features": [f"{VIEW}:conv_rate"],
             "entities": {"driver_id": DRIVERS[:4]}, "stat": "age", "percentile": "max", "max": "10m"}
FOUND_PROBE = {"name": "features found", "probe": "features", "features": FEATURES,
               "entities": {"driver_id": DRIVERS[:4]}, "stat": "not-found", "max": 0}


def test_proxy_faults_by_feature_name_are_seen_by_age_and_status(server: str, tmp_path: Path) -> None:
    old = {"name": "old", "fault": "feast-response", "action": "old-timestamp", "age": "2h",
           "features": [f"{VIEW}:conv_rate"], "at": "0s", "duration": "1500ms"}
    res = mlchaos.run(experiment(server, [old], proxy=True, probes=[AGE_PROBE, FOUND_PROBE]),
                      journal=tmp_path / "old.jsonl")
    seen_then_recovered(res, "feature age")
    assert next(p for p in res.summary["probes"] if p["name"] == "features found")["during"]["breaches"] == 0
    missing = {"name": "missing", "fault": "feast-response", "action": "missing-entity", "entity_share": 1.0,
               "at": "0s", "duration": "1500ms"}
    res = mlchaos.run(experiment(server, [missing], proxy=True, probes=[FOUND_PROBE]),
                      journal=tmp_path / "missing.jsonl")
    seen_then_recovered(res, "features found")


def test_sdk_stale_rows_seen_by_the_probe_then_undone_exactly(repo: FeastRepo, server: str, tmp_path: Path) -> None:
    hit = DRIVERS[:4]
    before = online_rows(repo, hit)
    stale = {"name": "stale", "fault": "feast-stale-rows", "repo_path": str(repo.path), "feature_view": VIEW,
             "entities": [{"driver_id": d} for d in hit], "age": "2h", "values": {"conv_rate": 0.0},
             "at": "0s", "duration": "1500ms"}
    res = mlchaos.run(experiment(server, [stale], proxy=False, probes=[AGE_PROBE]), journal=tmp_path / "s.jsonl")
    seen_then_recovered(res, "feature age")
    assert online_rows(repo, hit) == before  # same protobuf bytes, same event timestamps


def test_sdk_deleted_entities_seen_by_the_probe_then_undone_exactly(repo: FeastRepo, server: str,
                                                                     tmp_path: Path) -> None:
    hit = DRIVERS[4:6]
    before = online_rows(repo, hit)
    assert all(vals is not None for _, vals in before)
    gone = {"name": "gone", "fault": "feast-delete-entities", "repo_path": str(repo.path), "feature_view": VIEW,
            "entities": [{"driver_id": d} for d in hit], "at": "0s", "duration": "1500ms"}
    probe = {**FOUND_PROBE, "entities": {"driver_id": DRIVERS[2:6]}}
    res = mlchaos.run(experiment(server, [gone], proxy=False, probes=[probe]), journal=tmp_path / "d.jsonl")
    seen_then_recovered(res, "features found")
    assert online_rows(repo, hit) == before


def test_sdk_fault_reverted_from_the_undo_record_alone(repo: FeastRepo, tmp_path: Path) -> None:
    """What the watchdog does after a runner died mid-fault: revert with the record and nothing else."""
    from mlchaos.contract.lease import Lease

    hit = DRIVERS[6:]
    before = online_rows(repo, hit)
    spec = FeastStaleRows.Spec.model_validate({"fault": "feast-stale-rows", "repo_path": str(repo.path),
                                               "feature_view": VIEW, "entities": [{"driver_id": d} for d in hit],
                                               "age": "24h"})
    fault = FeastStaleRows(spec, Ctx())  # type: ignore[arg-type]

    async def inject() -> dict[str, Any]:
        await fault.preflight()
        await fault.intent(Lease.new("l", 5.0))
        return (await fault.inject(Lease.new("l", 5.0))).undo

    undo = asyncio.run(inject())
    during = online_rows(repo, hit)
    assert [ts for ts, _ in during] != [ts for ts, _ in before]
    FeastStaleRows.revert(undo)
    FeastStaleRows.revert(undo)  # idempotent
    assert online_rows(repo, hit) == before


def test_probe_reads_the_sampled_load_answers(server: str, tmp_path: Path) -> None:
    """``source: load``: the probe reads what the load generator's requests got back, through the proxy."""
    body = {"features": FEATURES, "entities": {"driver_id": DRIVERS[:4]}}
    nulls = {"name": "nulls", "fault": "feast-response", "action": "null", "features": [f"{VIEW}:trips"],
             "entity_share": 0.5, "seed": 3, "at": "0s", "duration": "1500ms"}
    probe = {"name": "null share", "probe": "features", "source": "load", "features": FEATURES, "stat": "null",
             "window": "750ms", "max": 0, "min_cells": 8}
    exp = experiment(server, [nulls], proxy=True, probes=[probe],
                     load={"rate": "20/s", "request": {"path": "/get-online-features", "body": body},
                           "sample": 1.0})
    res = mlchaos.run(exp, journal=tmp_path / "load.jsonl")
    seen_then_recovered(res, "null share")
    p = res.summary["probes"][0]
    assert 0 < p["during"]["max"] <= 0.5  # at most trips' half of the cells: a share of entities, one feature
