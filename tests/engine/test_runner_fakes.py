"""Every status through the real runner, in-process, with fake plugins registered by name.

No process, no network: a fake target, a fake fault that records what the runner did to it and
a fake probe whose answers the test scripts (value, instrument readings, errors).  Phases last
tens of milliseconds, so each run takes a fraction of a second; the verdict rules themselves are
covered exhaustively in test_verdict_rules.py, this checks that the runner feeds them honestly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest

from mlchaos import registry
from mlchaos.engine.instruments import LoopMonitor
from mlchaos.engine.runner import Runner
from mlchaos.engine.state import state_dir, stop_flag, write_json_atomic
from mlchaos.plugin import (
    Applied,
    Fault,
    FaultError,
    FaultSpec,
    Measurement,
    Probe,
    ProbeSpec,
    Target,
    TargetSpec,
)
from mlchaos.spec.loader import load_dict


class FakeTargetSpec(TargetSpec):
    platform: Literal["fake-target"] = "fake-target"


class FakeTarget(Target):
    """Always there."""

    Spec = FakeTargetSpec

    async def preflight(self) -> dict[str, Any]:
        return {"fake": True}


class FakeFaultSpec(FaultSpec):
    fault: Literal["fake-fault"] = "fake-fault"
    fail: bool = False


class FakeFault(Fault):
    """Records inject/remove; ``fail: true`` refuses to inject."""

    Spec = FakeFaultSpec
    log: ClassVar[list[str]] = []

    async def inject(self, lease: Any) -> Applied:
        if self.spec.fail:  # type: ignore[attr-defined]
            raise FaultError("refused by the test")
        FakeFault.log.append("inject")
        return Applied(targets=["thing"], undo={"x": 1})

    async def remove(self) -> None:
        FakeFault.log.append("remove")

    @classmethod
    def revert(cls, undo: dict[str, Any]) -> None:
        FakeFault.log.append("revert")


class FakeProbeSpec(ProbeSpec):
    probe: Literal["fake-probe"] = "fake-probe"


class FakeProbe(Probe):
    """Answers what ``FakeProbe.answer(phase, fault_active)`` says."""

    Spec = FakeProbeSpec
    unit = "s"
    answer: ClassVar[Callable[[str, bool], Measurement]] = staticmethod(lambda phase, active: Measurement(0.01))

    async def measure(self) -> Measurement:
        active = FakeFault.log.count("inject") > FakeFault.log.count("remove")
        return FakeProbe.answer(self.ctx.phase, active)


@pytest.fixture(autouse=True)
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("MLCHAOS_STATE_DIR", str(tmp_path / "state"))
    # the host's CPU is an input of the verdict (a saturated host distrusts timing breaches): here it
    # is "unknown", so these runs do not depend on what else the machine is doing
    monkeypatch.setattr(LoopMonitor, "cpu", lambda self, a, b: (None, None, None))
    registry.register("target", "fake-target", FakeTarget)
    registry.register("fault", "fake-fault", FakeFault)
    registry.register("probe", "fake-probe", FakeProbe)
    FakeFault.log = []
    FakeProbe.answer = staticmethod(lambda phase, active: Measurement(0.01))
    yield
    for kind, name in (("target", "fake-target"), ("fault", "fake-fault"), ("probe", "fake-probe")):
        registry.unregister(kind, name)  # type: ignore[arg-type]


def run(tmp_path: Path, **over: Any) -> Any:
    exp: dict[str, Any] = {
        "title": "fakes", "target": {"platform": "fake-target"},
        "steady_state": [{"name": "p99", "probe": "fake-probe", "max": "100ms", "window": "50ms"}],
        "method": [{"fault": "fake-fault"}],
        "phases": {"baseline": "60ms", "fault": "200ms", "recovery": "60ms"}, "interval": "20ms",
        "lease_ttl": "2s",
    }
    exp.update(over)
    runner = Runner(load_dict(exp), journal_path=tmp_path / "j.jsonl", watchdog=False)
    with asyncio.Runner() as r:
        return r.run(runner.run())


def test_passed(tmp_path: Path) -> None:
    res = run(tmp_path)
    assert res.status.value == "passed", res.reason
    assert FakeFault.log == ["inject", "remove"]
    assert res.summary["evidence"]["p99"]["fault_window"]["evidence"] >= 3


def test_failed_names_the_time_on_the_runs_clock(tmp_path: Path) -> None:
    FakeProbe.answer = staticmethod(lambda phase, active: Measurement(0.3 if active else 0.01))
    res = run(tmp_path)
    assert res.status.value == "failed" and "300 ms > max 100 ms from +" in res.reason, res.reason
    assert FakeFault.log == ["inject", "remove"]


def test_not_run_injects_nothing(tmp_path: Path) -> None:
    FakeProbe.answer = staticmethod(lambda phase, active: Measurement(0.3))
    res = run(tmp_path)
    assert res.status.value == "not-run" and FakeFault.log == []


def test_errored_when_the_fault_cannot_be_injected(tmp_path: Path) -> None:
    res = run(tmp_path, method=[{"fault": "fake-fault", "fail": True}])
    assert res.status.value == "errored" and "refused by the test" in res.reason


def test_a_fault_declares_its_own_preflight_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow preflight (a heavy SDK import) errors the run at the plugin's own bound, before any injection;
    within the bound it goes on."""

    async def slow_preflight(self: Fault) -> dict[str, Any]:
        await asyncio.sleep(0.3)
        return {"slow": True}

    monkeypatch.setattr(FakeFault, "preflight", slow_preflight)
    monkeypatch.setattr(FakeFault, "preflight_timeout", 0.05)
    res = run(tmp_path)
    assert res.status.value == "errored" and "preflight did not finish within 0.05s" in res.reason, res.reason
    assert FakeFault.log == []
    monkeypatch.setattr(FakeFault, "preflight_timeout", 5.0)
    assert run(tmp_path / "again").status.value == "passed"


def test_aborted_by_an_abort_condition_removes_the_fault(tmp_path: Path) -> None:
    FakeProbe.answer = staticmethod(lambda phase, active: Measurement(0.3 if active else 0.01))
    res = run(tmp_path, abort=[{"name": "slow", "probe": "fake-probe", "above": "200ms"}])
    assert res.status.value == "aborted" and "slow" in res.reason
    # removed, or reverted from its intent if the abort came while the injection was being confirmed
    assert FakeFault.log[0] == "inject" and FakeFault.log[1:] in (["remove"], ["revert"])


def test_inconclusive_when_every_fault_window_reading_was_untrustworthy(tmp_path: Path) -> None:
    def answer(phase: str, active: bool) -> Measurement:
        if active:  # a breach the starved generator could explain: not evidence
            return Measurement(0.3, window=0.05, instrument={"lag_p99": 0.2, "lag_max": 0.25, "achieved": 0.8})
        return Measurement(0.01, window=0.05)

    FakeProbe.answer = staticmethod(answer)
    res = run(tmp_path)
    assert res.status.value == "inconclusive" and res.exit_code == 6, res.reason
    assert "only while its instrument was untrustworthy" in res.reason
    assert res.summary["instruments"]["untrusted"] >= 1


def test_refused_under_a_stop_flag_touches_nothing(tmp_path: Path) -> None:
    flag = stop_flag(state_dir())
    write_json_atomic(flag, {"since": 0})
    res = run(tmp_path)
    assert res.status.value == "refused" and res.exit_code == 7 and FakeFault.log == []
    assert "nothing was started or touched" in res.reason
