"""The per-request decision: shared plans for single hits, fresh plans for combinations, honest counters."""

from __future__ import annotations

import itertools

from mlchaos.proxy.rules import parse_rule
from mlchaos.proxy.table import FaultTable


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


def test_countdowns_have_the_law_of_a_coin_per_request() -> None:
    """Geometric gaps between hits: rate p, and P(next request hits) = p whatever happened before."""
    t = _table({"kind": "http-error", "probability": "10%", "seed": 11})
    hits = [i for i in range(50_000) if t.plan_http(b"GET", b"/", []) is not None]
    n = len(hits)
    assert 5000 - 3.3 * 67 < n < 5000 + 3.3 * 67  # binomial sd = sqrt(50000 * 0.1 * 0.9) = 67
    gaps = [b - a for a, b in itertools.pairwise(hits)]
    share_1 = sum(g == 1 for g in gaps) / len(gaps)
    assert 0.085 < share_1 < 0.115  # memoryless: a hit right after a hit is as likely as any
    assert 9.4 < sum(gaps) / len(gaps) < 10.6


def test_seen_counts_every_decided_request_while_the_rule_is_active() -> None:
    t = _table({"kind": "http-error", "probability": "50%", "id": "plain", "seed": 1},
               {"kind": "abort", "match": {"method": "POST"}, "id": "posts", "seed": 2})
    for i in range(300):
        t.plan_http(b"POST" if i % 3 == 0 else b"GET", b"/", [])
    plain, posts = t.by_id["plain"], t.by_id["posts"]
    assert plain.seen == 300 and posts.seen == 100  # a matcher rule sees only its requests
    assert 100 < plain.affected < 200 and posts.affected == 100
    t.remove("posts")
    for _ in range(200):  # no matcher left: the table counts for the plain rule
        t.plan_http(b"GET", b"/", [])
    assert plain.seen == 500 and t.retired["posts"]["seen"] == 100
    view = t.remove("plain")
    assert view is not None and view["seen"] == 500
    t.plan_http(b"GET", b"/", [])
    assert plain.seen == 500  # removed: frozen


def test_a_lapsed_lease_stops_hitting_and_counting_before_its_timer_fires() -> None:
    t = _table({"kind": "http-error", "id": "a"}, {"kind": "json-corrupt", "fields": ["x"], "probability": 0, "id": "b"})
    a = t.by_id["a"]
    for _ in range(10):
        assert t.plan_http(b"GET", b"/", []) is a.solo
    a.expires_at = 0.0  # lease over; no event loop here, so no timer removes it
    t._changed()
    for _ in range(10):
        assert t.plan_http(b"GET", b"/", []) is None
    assert a.seen == 10 and a.affected == 10 and t.by_id["b"].seen == 20
    t.renew("a", ttl=30)  # renewed before removal: counted and hitting again
    assert t.plan_http(b"GET", b"/", []) is a.solo and a.seen == 11


def test_worker_counts_add_to_a_table_counted_rule() -> None:
    t = _table({"kind": "http-error", "probability": "10%", "id": "a"})
    for _ in range(50):
        t.plan_http(b"GET", b"/", [])
    t.by_id["a"].seen += 1000  # what the control plane does with a worker's report
    assert t.by_id["a"].seen == 1050
    t.plan_http(b"GET", b"/", [])
    assert t.by_id["a"].seen == 1051
