"""The per-request decision: shared plans for single hits, fresh plans for combinations, honest counters."""

from __future__ import annotations

from mlchaos.proxy.rules import FaultTable, parse_rule


def _table(*faults: dict) -> FaultTable:
    t = FaultTable()
    for f in faults:
        t.add(parse_rule(f, "http"), schedule=False)
    return t


def test_a_fixed_effect_hit_shares_one_read_only_plan() -> None:
    t = _table({"kind": "json-corrupt", "fields": ["a"]})
    p1, p2 = t.plan_http(b"GET", b"/", []), t.plan_http(b"GET", b"/", [])
    assert p1 is p2 is t.rules[0].solo
    assert p1 is not None and len(p1.corrupt) == 1 and p1.rules == [t.rules[0]]


def test_a_random_effect_gets_a_fresh_plan_each_time() -> None:
    t = _table({"kind": "latency", "delay": "10ms", "jitter": "5ms", "seed": 3})
    plans = [t.plan_http(b"GET", b"/", []) for _ in range(20)]
    assert t.rules[0].solo is None
    assert len({id(p) for p in plans}) == 20
    assert len({p.delay_request + p.delay_response for p in plans if p is not None}) > 1  # the jitter really is drawn per request


def test_two_hits_combine_without_touching_the_shared_plans() -> None:
    t = _table({"kind": "http-error", "status": 503}, {"kind": "json-corrupt", "fields": ["a"]},
               {"kind": "slow-close", "delay": "1s"})
    solos = [r.solo for r in t.rules]
    plan = t.plan_http(b"GET", b"/", [])
    assert plan is not None and plan not in solos
    assert plan.local is not None and len(plan.corrupt) == 1 and plan.close_delay == 1.0
    assert plan.rules == t.rules
    for r, solo in zip(t.rules, solos, strict=True):  # unchanged: one effect each
        assert solo is not None and solo.rules == [r]
    assert solos[0].corrupt == [] and solos[0].close_delay == 0.0
    assert solos[1].local is None and solos[2].local is None and solos[2].corrupt == []


def test_counters_follow_the_coins() -> None:
    t = _table({"kind": "http-error", "probability": "30%", "seed": 5}, {"kind": "json-corrupt", "fields": ["a"],
                                                                         "probability": "50%", "seed": 6})
    hits = [0, 0]
    for _ in range(2000):
        plan = t.plan_http(b"GET", b"/", [])
        if plan is not None:
            hits[0] += plan.local is not None
            hits[1] += bool(plan.corrupt)
    assert [r.seen for r in t.rules] == [2000, 2000]
    assert [r.affected for r in t.rules] == hits
    assert 500 < hits[0] < 700 and 900 < hits[1] < 1100
