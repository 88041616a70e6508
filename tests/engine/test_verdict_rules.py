"""The verdict rules, in-process: :func:`judge` over hand-built run records (no process, no sleep).

Each test states one rule of docs/experiment.md "Verdicts"; several are the findings of issue #16
that the old runner got wrong (named in the test).
"""

from __future__ import annotations

import itertools
from fractions import Fraction
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlchaos.engine.records import Evaluation, FaultRecord, ProbeRecord, RunRecords, relation
from mlchaos.engine.tolerance import within
from mlchaos.engine.verdict import Status, judge

T0 = 1000.0
INJECT, REMOVE = T0 + 10.0, T0 + 12.0


def ev(t: float, ok: bool | None = True, *, end: float | None = None, window: float = 0.0,
       trusted: bool = True, checkpoint: str | None = None, reason: str = "", why: str = "") -> Evaluation:
    return Evaluation(t=t, t_end=end if end is not None else t + 0.01, window=window, phase="x", value=0.0, ok=ok,
                      reason=reason or ("" if ok else "113 ms > max 100 ms"), trusted=trusted,
                      instrument={"why": why} if why else {}, checkpoint=checkpoint)


def probe(evals: list[Evaluation], *, before: Evaluation | None = None, after: Evaluation | None = None,
          label: str = "p99") -> ProbeRecord:
    before = before or ev(T0 + 9.0, checkpoint="before")
    after = after or ev(T0 + 15.0, checkpoint="after")
    return ProbeRecord(label, "steady", "latency", {"max": 0.1}, 0.1, [before, *evals, after], before, after)


def records(probes: list[ProbeRecord], **over: Any) -> RunRecords:
    r = RunRecords(t0=T0, probes=probes,
                   faults=[FaultRecord("pause", "process-pause", INJECT, REMOVE, ["pid 1"])],
                   phase_times={"baseline": [T0 + 5, T0 + 10], "fault": [T0 + 10, T0 + 13],
                                "recovery": [T0 + 13, T0 + 15]},
                   reached_faults=True)
    for k, v in over.items():
        setattr(r, k, v)
    return r


def during() -> list[Evaluation]:
    return [ev(INJECT + 0.2), ev(INJECT + 0.7), ev(INJECT + 1.5)]


def test_passed_needs_trustworthy_evidence_in_every_phase() -> None:
    v = judge(records([probe(during())]))
    assert v.status is Status.PASSED, v.reason
    assert v.evidence["p99"]["fault_window"]["evidence"] == 3


def test_a_trustworthy_breach_while_the_fault_is_in_place_fails_with_times_on_the_run_clock() -> None:
    v = judge(records([probe([*during(), ev(INJECT + 1.0, False)])]))
    assert v.status is Status.FAILED and v.decided_by == ["p99"]
    assert "from +11.0 s, while the fault was in place" in v.reason, v.reason
    assert "113 ms > max 100 ms" in v.reason and "1 of 4 evaluations" in v.reason


def test_finding3_a_window_straddling_removal_is_labelled_after_removal_not_during() -> None:
    late = ev(REMOVE + 0.9 - 0.01, False, window=5.0)  # answered 0.9 s after removal, its window reaches back
    assert relation(late, [(INJECT, REMOVE)]) == "straddles-removal"
    v = judge(records([probe([*during(), late])]))
    assert v.status is Status.FAILED
    assert "from +12.9 s, 0.9 s after the fault was removed (its 5 s window reaches back into the fault)" in v.reason


def test_a_breach_wholly_after_removal_is_recovery_not_the_fault_window() -> None:
    v = judge(records([probe([*during(), ev(REMOVE + 6.0, False, window=5.0)])]))
    assert v.status is Status.PASSED, v.reason


def test_finding7_a_breach_seen_only_through_an_untrustworthy_instrument_is_inconclusive_not_failed() -> None:
    bad = ev(INJECT + 1.0, False, trusted=False, why="the load generator's schedule lag p99 was 12 ms")
    v = judge(records([probe([*during(), bad])]))
    assert v.status is Status.INCONCLUSIVE, v.reason
    assert "only while its instrument was untrustworthy" in v.reason and "12 ms" in v.reason


def test_untrustworthy_evidence_alone_is_inconclusive_not_passed() -> None:
    evs = [ev(INJECT + 0.2, trusted=False, why="the runner stalled 40 ms"), ev(INJECT + 1, trusted=False)]
    v = judge(records([probe(evs)]))
    assert v.status is Status.INCONCLUSIVE and "no trustworthy measurement" in v.reason
    assert "2 untrustworthy" in v.reason


def test_finding9_an_answer_that_arrives_after_removal_is_not_evidence_of_the_fault_window() -> None:
    # a 2 s pause; the health request sent during it is answered just after SIGCONT
    hung = [ev(INJECT + 0.1, True, end=REMOVE + 0.05), ev(INJECT + 0.4, True, end=REMOVE + 0.06)]
    v = judge(records([probe(hung)]))
    assert v.status is Status.INCONCLUSIVE, v.reason
    assert "2 answered only after the fault was removed" in v.reason


def test_a_timed_out_request_sent_under_the_fault_is_a_breach_even_if_it_ends_after_removal() -> None:
    timed_out = ev(INJECT + 1.5, False, end=REMOVE + 0.5, reason="probe error: timed out after 1s")
    v = judge(records([probe([*during(), timed_out])]))
    assert v.status is Status.FAILED and "sent while the fault was in place, answered 0.5 s after" in v.reason


def test_finding1_a_load_the_generator_judged_invalid_never_supports_passed() -> None:
    v = judge(records([probe(during())], load_validity=(False, "schedule lag p99 12 ms exceeds the budget 10 ms")))
    assert v.status is Status.INCONCLUSIVE and "INVALID" in v.reason and "12 ms" in v.reason


def test_an_invalid_load_does_not_hide_a_trustworthy_breach() -> None:
    v = judge(records([probe([*during(), ev(INJECT + 1, False)])], load_validity=(False, "lag")))
    assert v.status is Status.FAILED


def test_baseline_not_met_is_not_run_and_an_unmeasurable_baseline_is_inconclusive() -> None:
    nr = judge(records([probe([])], baseline="breached", baseline_reason="p99: 150 ms > max 100 ms",
                       reached_faults=False))
    assert nr.status is Status.NOT_RUN and "no fault was injected" in nr.reason
    inc = judge(records([probe([])], baseline="untrusted", baseline_reason="p99: lag", reached_faults=False))
    assert inc.status is Status.INCONCLUSIVE and inc.status.exit_code == 6 and "no fault was injected" in inc.reason


def test_recovery_breach_fails_and_an_unmeasured_recovery_is_inconclusive() -> None:
    after_bad = ev(T0 + 15, False, checkpoint="after")
    assert judge(records([probe(during(), after=after_bad)])).status is Status.FAILED
    after_untrusted = ev(T0 + 15, True, checkpoint="after", trusted=False, why="stall")
    v = judge(records([probe(during(), after=after_untrusted)]))
    assert v.status is Status.INCONCLUSIVE and "recovery: p99 untrusted (stall)" in v.reason


def test_errors_stops_and_refusals_take_precedence_in_that_order() -> None:
    base = [probe([*during(), ev(INJECT + 1, False)])]
    assert judge(records(base, refused="refused: stop in force")).status is Status.REFUSED
    assert judge(records(base, errors=["fault x could not be removed"])).status is Status.ERRORED
    ab = judge(records(base, stop=("aborted", "abort condition tripped")))
    assert ab.status is Status.ABORTED and ab.reason == "abort condition tripped"


def test_a_fault_that_hit_nothing_is_errored_not_evidence() -> None:
    recs = records([probe(during())])
    recs.faults[0].targets = []
    assert judge(recs).status is Status.ERRORED
    recs.faults[0].targets = ["x"]
    recs.faults[0].observed = {"affected": 0, "seen": 40}
    v = judge(recs)
    assert v.status is Status.ERRORED and "affected nothing (0 of 40)" in v.reason
    recs.faults[0].observed = {}
    recs.faults[0].injected_at = None
    assert judge(recs).status is Status.ERRORED


def test_every_status_has_its_own_exit_code() -> None:
    codes = [s.exit_code for s in Status]
    assert len(set(codes)) == len(codes)
    assert Status.INCONCLUSIVE.exit_code == 6 and Status.REFUSED.exit_code == 7


# -- exact comparisons (finding 4) -------------------------------------------------------------
def tol(**kw: Any) -> Any:
    return SimpleNamespace(**{"equals": None, "max": None, "min": None, "between": None, **kw})


def test_finding4_one_missing_in_a_hundred_meets_max_one_percent() -> None:
    assert 1 - 99 / 100 > 0.01  # the float artefact the old probe compared
    assert within(tol(max=0.01), 1 - 99 / 100, "ratio", Fraction(1, 100)) == (True, "")


@settings(deadline=None)  # the first call imports the formatting helpers
@given(st.integers(0, 10_000), st.integers(1, 10_000), st.integers(0, 10_000), st.sampled_from([1, 10, 100, 1000]))
def test_count_ratios_are_compared_as_exact_fractions(k: int, n: int, num: int, scale: int) -> None:
    k = min(k, n)
    limit = float(f"{num / scale}")  # a tolerance as a person writes it: 0.01, 2.5, 0.125
    from mlchaos.plugin import Measurement

    m = Measurement.share(k, n)
    ok, _ = within(tol(max=limit), m.value, "ratio", m.fraction)
    assert ok == (Fraction(k, n) <= Fraction(str(limit)))
    ok_min, _ = within(tol(min=limit), m.value, "ratio", m.fraction)
    assert ok_min == (Fraction(k, n) >= Fraction(str(limit)))


# -- instruments (findings 2 and 7) ------------------------------------------------------------
def _assess(**kw: Any) -> tuple[bool, dict[str, Any]]:
    from mlchaos.engine.instruments import assess

    base: dict[str, Any] = {"probe_instrument": None, "latency_bound": 0.1, "windowed": True, "value": 0.05,
                            "ok": True, "stall": 0.0, "steal": None, "delay": 0.0}
    base.update(kw)
    return assess(**base)


def test_finding2_the_lag_budget_follows_the_tightest_latency_bound() -> None:
    from mlchaos.budget import lag_budget

    assert lag_budget([0.1, 0.5]) == 0.01 and lag_budget([0.005]) == 0.001 and lag_budget([]) == 0.1
    # a 5 ms lag does not matter to p99 < 100 ms
    assert _assess(probe_instrument={"lag_p99": 0.004, "lag_max": 0.005}, ok=False, value=0.2)[0]


def test_a_lagging_instrument_can_only_inflate_latency_so_a_pass_despite_it_is_evidence() -> None:
    assert _assess(probe_instrument={"lag_p99": 0.03, "lag_max": 0.08}, ok=True, value=0.09)[0]


def test_finding7_a_breach_the_instruments_lag_could_explain_is_not_evidence() -> None:
    trusted, info = _assess(probe_instrument={"lag_p99": 0.03, "lag_max": 0.08}, ok=False, value=0.113)
    assert not trusted and "80 ms late" in info["why"] and "budget 10 ms" in info["why"]
    # a breach larger than anything the lag could add stays evidence
    assert _assess(probe_instrument={"lag_p99": 0.03, "lag_max": 0.08}, ok=False, value=0.5)[0]


def test_a_runner_stall_while_timing_a_request_and_cpu_steal_distrust_a_point_breach() -> None:
    trusted, info = _assess(windowed=False, stall=0.04, ok=False, value=0.12)
    assert not trusted and "runner stalled 40 ms" in info["why"]
    trusted, info = _assess(windowed=False, stall=0.0, steal=0.3, ok=False, value=0.5)
    assert not trusted and "30% of CPU time was stolen" in info["why"]
    assert _assess(windowed=False, stall=0.04, ok=True, value=0.05)[0]


def test_error_rates_need_arrivals_near_their_schedule() -> None:
    assert _assess(latency_bound=None, probe_instrument={"lag_p99": 0.05}, ok=False, value=0.5)[0]
    trusted, info = _assess(latency_bound=None, probe_instrument={"lag_p99": 0.3}, ok=True, value=0.0)
    assert not trusted and "300 ms" in info["why"]


def test_a_window_in_which_the_generator_was_starved_is_evidence_of_nothing_either_way() -> None:
    for ok, value in ((True, 0.02), (False, 5.0)):
        trusted, info = _assess(probe_instrument={"lag_p99": 0.05, "lag_max": 0.16, "achieved": 0.83},
                                ok=ok, value=value)
        assert not trusted and "dispatched 83.0%" in info["why"]


def test_a_timing_breach_on_a_saturated_host_is_not_evidence_but_a_pass_is() -> None:
    late = {"lag_p99": 0.02, "lag_max": 0.04, "lag_budget": 0.01}
    trusted, info = _assess(probe_instrument=late, ok=False, value=5.0, idle=0.01)
    assert not trusted and "CPU was saturated" in info["why"] and "1% idle" in info["why"]
    assert "40 ms late" in info["why"]
    assert _assess(probe_instrument=late, ok=True, value=0.05, idle=0.0)[0]
    # saturated by the system itself, instruments on time: the breach is the system's
    assert _assess(probe_instrument={"lag_p99": 0.001, "lag_max": 0.002}, ok=False, value=5.0, idle=0.0)[0]
    trusted, info = _assess(windowed=False, stall=0.03, ok=False, value=5.0, idle=0.0)
    assert not trusted and "runner stalled 30 ms" in info["why"]
    # a prediction share is not a timing: a saturated host does not explain it away
    assert _assess(latency_bound=None, windowed=False, ok=False, value=0.3, idle=0.0)[0]


def test_a_timing_breach_on_a_host_saturated_by_others_is_not_evidence() -> None:
    on_time = {"lag_p99": 0.001, "lag_max": 0.002}
    # CI, 2026-12-05: two CPU hogs, the generator on time, the system queued behind the hogs
    trusted, info = _assess(probe_instrument=on_time, ok=False, value=0.235, idle=0.0, foreign=0.62)
    assert not trusted and "62% of it went to processes other than the system under test" in info["why"]
    assert info["foreign"] == 0.62
    # the system used the CPU itself (little went to others): its breach is evidence
    assert _assess(probe_instrument=on_time, ok=False, value=0.235, idle=0.0, foreign=0.1)[0]
    # others used the CPU but the host had idle time: nobody queued, the breach is evidence
    assert _assess(probe_instrument=on_time, ok=False, value=0.235, idle=0.2, foreign=0.62)[0]
    # a pass measured then still counts, and so does a breach of something that is not a timing
    assert _assess(probe_instrument=on_time, ok=True, value=0.05, idle=0.0, foreign=0.9)[0]
    assert _assess(latency_bound=None, windowed=False, ok=False, value=0.3, idle=0.0, foreign=0.9)[0]
    # an error-rate window (a timing: arrivals on a schedule) on a host saturated by others
    assert not _assess(latency_bound=None, probe_instrument=on_time, ok=False, value=0.3, idle=0.0,
                       foreign=0.5)[0]


def test_the_loop_monitor_reads_the_hosts_cpu_over_a_span() -> None:
    import asyncio
    import time

    from mlchaos.engine.instruments import LoopMonitor

    async def sample() -> tuple[float | None, float | None, float | None]:
        mon = LoopMonitor()
        task = asyncio.create_task(mon.run())
        t0 = time.time()
        await asyncio.sleep(2.5)
        task.cancel()
        assert len(mon.sampler.seconds) >= 1, "the /proc scan runs once a second, in a process of its own"
        return mon.cpu(t0, time.time())

    steal, idle, _ = asyncio.run(sample())
    assert steal is not None and idle is not None and 0.0 <= steal <= 1.0 and 0.0 <= idle <= 1.0


def _samples(idle_by_interval: list[float], dt: float = 0.2) -> list[tuple[float, int, int, int]]:
    """(time, steal, idle, total) cumulative jiffies, 100 per interval, with the given idle share each."""
    out, idle, total = [(1000.0, 0, 0, 0)], 0, 0
    for k, share in enumerate(idle_by_interval, 1):
        idle, total = idle + round(100 * share), total + 100
        out.append((1000.0 + k * dt, 0, idle, total))
    return out


def test_a_window_with_one_saturated_second_reads_as_saturated() -> None:
    from mlchaos.engine.instruments import worst_idle

    # five seconds at 50 % idle but for one second at 0 %: the average (40 %) would trust the
    # window's p99, whose slowest answers came from that second
    shares = [0.5] * 10 + [0.0] * 5 + [0.5] * 10
    assert worst_idle(_samples(shares)) == 0.0
    assert worst_idle(_samples([0.5] * 25)) == 0.5
    # a span shorter than a second is read whole; a short tail as the span's last second
    assert worst_idle(_samples([0.2, 0.4])) == pytest.approx(0.3)
    assert worst_idle(_samples([0.5] * 10 + [0.0])) == pytest.approx(0.4)
    assert worst_idle(_samples([])) is None


@given(st.lists(st.floats(0, 1), min_size=1, max_size=60), st.floats(0.05, 0.5))
def test_the_worst_second_lies_within_the_intervals_it_is_made_of(shares: list[float], dt: float) -> None:
    from mlchaos.engine.instruments import worst_idle

    samples = _samples(shares, dt)
    got = worst_idle(samples)
    per = [(b[2] - a[2]) / (b[3] - a[3]) for a, b in itertools.pairwise(samples)]
    assert got is not None and min(per) - 0.01 <= got <= max(per) + 0.01  # jiffies are rounded


def test_the_loop_monitor_gives_a_span_its_worst_second(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlchaos.engine import instruments

    mon = instruments.LoopMonitor()
    t_now = 1000.0 + 25 * 0.2
    for x in _samples([0.5] * 10 + [0.0] * 5 + [0.5] * 10):
        mon._cpu.append(x)
    monkeypatch.setattr(instruments, "cpu_times", lambda: None)
    steal, idle, foreign = mon.cpu(t_now - 5.0, t_now)
    assert steal == 0.0 and idle == 0.0 and foreign is None  # no /proc scan yet: nothing said of whose CPU
    assert mon.cpu(t_now - 1.0, t_now)[1] == 0.5  # the last second alone had idle time
