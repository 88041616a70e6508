"""The feast-response rewrite and the features probe's reading, on an answer recorded from a real ``feast serve``.

``ANSWER`` is a byte-for-byte answer of Feast 0.67's ``feast serve`` to
``{"features": ["driver_hourly_stats:conv_rate", "driver_hourly_stats:trips"],
"entities": {"driver_id": [1001, 1002, 9999]}}`` (9999 is not in the store): note the server's
column order (``trips`` before ``conv_rate``), not the request's.  The end-to-end behaviour
through the proxy and a live server is in ``test_feast_serve.py``; these are the edge cases,
fast.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from mlchaos.faults.network import FeastResponse as FeastStep
from mlchaos.probes.features import FeaturesSpec, cells, percentile
from mlchaos.proxy.faults.feast_response import (
    EPOCH,
    FeastResponse,
    FeastResponseParams,
    format_timestamp,
    matches,
    parse_timestamp,
)
from mlchaos.proxy.rules import RuleError, parse_rule

ANSWER = (
    b'{"results":[{"values":[1001,1002,9999],"statuses":["PRESENT","PRESENT","PRESENT"],"event_timestamps":'
    b'["1970-01-01T00:00:00Z","1970-01-01T00:00:00Z","1970-01-01T00:00:00Z"]},{"values":[1001,1002,null],'
    b'"statuses":["PRESENT","PRESENT","NOT_FOUND"],"event_timestamps":["2026-12-04T18:11:08Z",'
    b'"2026-12-04T18:10:08Z","1970-01-01T00:00:00Z"]},{"values":[0.5005000233650208,0.5009999871253967,null],'
    b'"statuses":["PRESENT","PRESENT","NOT_FOUND"],"event_timestamps":["2026-12-04T18:11:08Z",'
    b'"2026-12-04T18:10:08Z","1970-01-01T00:00:00Z"]}],"metadata":{"feature_names":["driver_id","trips",'
    b'"conv_rate"]}}'
)


def rewrite(body: bytes = ANSWER, seed: int = 0, fault: FeastResponse | None = None, **params: Any) -> Any:
    """The answer after one hit of the fault (parsed), or None when it passed untouched."""
    f = fault or FeastResponse(FeastResponseParams.model_validate(params), "response")
    from mlchaos.proxy.faults.base import Plan

    plan = Plan()
    f.apply(plan, random.Random(seed))
    out = plan.corrupt[0].corrupt(body)
    return None if out is None else orjson.loads(out)


def column(doc: Any, name: str) -> dict[str, Any]:
    return doc["results"][doc["metadata"]["feature_names"].index(name)]  # type: ignore[no-any-return]


def test_feature_names_as_users_write_them() -> None:
    assert matches("conv_rate", "driver_hourly_stats:conv_rate")
    assert matches("driver_hourly_stats__conv_rate", "driver_hourly_stats:conv_rate")
    assert matches("driver_hourly_stats__conv_rate", "conv_rate")
    assert matches("conv_rate", "driver_hourly_stats__conv_rate")
    assert matches("conv_rate", "other_view:conv_rate")  # a short name cannot tell views apart (full names can)
    assert not matches("driver_hourly_stats__conv_rate", "other_view:conv_rate")
    assert not matches("trips", "driver_hourly_stats:conv_rate")
    assert matches("anything", "*")


def test_each_action_changes_only_the_named_feature_and_found_keys() -> None:
    doc = orjson.loads(ANSWER)
    null = rewrite(action="null", features=["driver_hourly_stats:conv_rate"])
    assert column(null, "conv_rate")["values"] == [None, None, None]
    assert column(null, "conv_rate")["statuses"] == ["NULL_VALUE", "NULL_VALUE", "NOT_FOUND"]  # 9999 stays missing
    assert column(null, "trips") == column(doc, "trips") and column(null, "driver_id") == column(doc, "driver_id")
    nf = rewrite(action="not-found", features=["conv_rate"])
    assert column(nf, "conv_rate")["statuses"] == ["NOT_FOUND"] * 3
    assert column(nf, "conv_rate")["event_timestamps"] == [EPOCH] * 3
    old = rewrite(action="old-timestamp", features=["trips"], age="2h")
    assert column(old, "trips")["event_timestamps"] == ["2026-12-04T16:11:08Z", "2026-12-04T16:10:08Z", EPOCH]
    assert column(old, "trips")["values"] == column(doc, "trips")["values"]
    gone = rewrite(action="missing-entity")
    for name in ("trips", "conv_rate"):
        assert column(gone, name)["statuses"] == ["NOT_FOUND"] * 3 and column(gone, name)["values"] == [None] * 3
    assert column(gone, "driver_id") == column(doc, "driver_id")  # the key column is the request's, kept
    stale = rewrite(action="stale", features=["conv_rate"], value=0.0)
    assert column(stale, "conv_rate")["values"] == [0.0, 0.0, None]
    assert column(stale, "conv_rate")["statuses"] == column(doc, "conv_rate")["statuses"]  # silently "fresh"


def test_stale_without_a_value_serves_the_first_answer_seen() -> None:
    f = FeastResponse(FeastResponseParams(action="stale", features=["conv_rate"]), "response")
    assert rewrite(fault=f) is None  # the first answer is the reference: nothing changes
    newer = ANSWER.replace(b"0.5005000233650208", b"0.75")
    assert column(rewrite(newer, fault=f), "conv_rate")["values"][0] == 0.5005000233650208


def test_entity_share_is_drawn_per_row_from_the_rule_generator() -> None:
    """Each row is hit with probability entity_share; the same seed hits the same rows (drawn twice below)."""
    picks = []
    for seed in range(200):
        doc = rewrite(seed=seed, action="null", features=["trips"], entity_share=0.5)
        picks.append(0 if doc is None else sum(v is None for v in column(doc, "trips")["values"][:2]))
    assert picks == [0 if (d := rewrite(seed=s, action="null", features=["trips"], entity_share=0.5)) is None
                     else sum(v is None for v in column(d, "trips")["values"][:2]) for s in range(200)]
    share = sum(picks) / (2 * len(picks))
    assert 0.4 < share < 0.6


def test_not_a_feast_answer_passes_untouched() -> None:
    assert rewrite(b'{"predictions": [1, 0]}', action="null") is None
    assert rewrite(b"not json", action="null") is None
    assert rewrite(ANSWER, action="null", features=["no_such_feature"]) is None


def test_the_proxy_and_the_step_refuse_the_same_values() -> None:
    for bad in ({"entity_share": 0}, {"entity_share": 1.5}, {"features": []}, {"action": "explode"},
                {"features": [":conv_rate"]}, {"age": "-1s"}):
        with pytest.raises(RuleError):
            parse_rule({"kind": "feast-response", **bad}, "http")
        with pytest.raises(ValidationError):
            FeastStep.Spec.model_validate({"fault": "feast-response", **bad})


def test_probe_cells_and_timestamps() -> None:
    doc = orjson.loads(ANSWER)
    got = cells(doc, ["driver_hourly_stats:conv_rate"])
    assert [(n, st) for n, _, st, _ in got] == [("conv_rate", "PRESENT")] * 2 + [("conv_rate", "NOT_FOUND")]
    t = parse_timestamp("2026-12-04T18:11:08Z")
    assert t is not None and format_timestamp(t) == "2026-12-04T18:11:08Z"
    assert parse_timestamp(EPOCH) == 0.0 and parse_timestamp("yesterday") is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0 and percentile([3.0, 1.0, 2.0], "max") == 3.0
    with pytest.raises(ValidationError, match="needs 'entities'"):
        FeaturesSpec.model_validate({"probe": "features", "features": ["conv_rate"]})
    with pytest.raises(ValidationError, match="same length"):
        FeaturesSpec.model_validate({"probe": "features", "features": ["a"], "entities": {"a": [1], "b": [1, 2]}})
    with pytest.raises(ValidationError, match="reads one feature"):
        FeaturesSpec.model_validate({"probe": "features", "features": ["a", "b"], "entities": {"k": [1]},
                                     "stat": "value"})


def test_status_shares_count_cells_not_answers() -> None:
    """Share stats are over entity x feature cells; OUTSIDE_MAX_AGE as Feast's precomputed read path writes it."""
    from mlchaos.probes.features import FeaturesProbe

    doc = orjson.loads(ANSWER.replace(b'"PRESENT","PRESENT","NOT_FOUND"]', b'"OUTSIDE_MAX_AGE","PRESENT","NOT_FOUND"]',
                                      1))
    spec = FeaturesSpec.model_validate({"probe": "features", "features": ["trips", "conv_rate"],
                                        "entities": {"driver_id": [1]}, "stat": "outside-max-age"})
    probe = FeaturesProbe(spec, None)  # type: ignore[arg-type]
    m = probe._stat(cells(doc, spec.features), now=0.0, answers=1)
    assert m.fraction is not None and (m.fraction.numerator, m.fraction.denominator) == (1, 6)
    nf = FeaturesProbe(spec.model_copy(update={"stat": "not-found"}), None)  # type: ignore[arg-type]
    assert nf._stat(cells(doc, spec.features), now=0.0, answers=1).value == pytest.approx(2 / 6)
    few = FeaturesProbe(spec.model_copy(update={"min_cells": 7}), None)  # type: ignore[arg-type]
    assert few._stat(cells(doc, spec.features), now=0.0, answers=1).insufficient


def test_the_sdk_faults_without_the_feast_extra_name_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A core install without Feast: one line naming the extra, at validation, not a traceback at injection."""
    from mlchaos import extras, registry

    monkeypatch.setitem(extras.EXTRAS, "feast", (*extras.EXTRAS["feast"], "mlchaos_no_such_module_for_tests"))
    for name in ("feast-stale-rows", "feast-delete-entities"):
        with pytest.raises(registry.PluginNeedsExtra, match=r"pip install 'mlchaos\[feast\]'"):
            registry.get("fault", name)
    registry.get("probe", "features")  # the probe and the proxy fault need only the core
    registry.get("fault", "feast-response")


def test_feature_share_is_drawn_per_column() -> None:
    hit = [rewrite(seed=s, action="null", feature_share=0.5) for s in range(100)]
    columns_hit = [sum(column(d, n)["values"][0] is None for n in ("trips", "conv_rate")) if d else 0 for d in hit]
    assert set(columns_hit) == {0, 1, 2} and 0.35 < sum(columns_hit) / 200 < 0.65
