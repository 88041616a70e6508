"""Lease safety of the delivery faults: revert from the undo record alone, never someone else's arming;
``delivery-run`` stops its pipeline (and the step it runs) from the undo record."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from mlchaos import failpoint as fp
from mlchaos.contract.lease import Lease
from mlchaos.faults import delivery as faults
from mlchaos.lab import Lab
from mlchaos.lab.delivery.layout import DeliveryPaths
from mlchaos.plugin import FaultError

from .conftest import FakeCtx


@pytest.mark.parametrize("cls", [faults.ValidationCrash, faults.ValidationHang, faults.ValidationNan,
                                 faults.RegistryOutage, faults.ArtifactCorrupt])
def test_marker_faults_revert_only_their_own_lease(cls: type, lab_dir: Path) -> None:
    fault = cls(cls.Spec(lab_dir=str(lab_dir)), FakeCtx())
    applied = asyncio.run(fault.inject(Lease.new("a", 1.0)))
    directory = DeliveryPaths(lab_dir).failpoints
    name = applied.undo["name"]
    assert applied.undo["directory"] == str(directory)
    rec = fp.status(name, directory=directory)
    assert rec is not None and rec["kind"] == "raise" and rec["params"]["mode"]
    asyncio.run(fault.renew(Lease.new("a", 1.0)))
    time.sleep(1.2)
    assert fp.status(name, directory=directory) is None  # lapsed by itself: no renewal, no fault
    other = fp.arm(name, "raise", ttl=30, directory=directory, mode="crash")  # someone else's arming
    cls.revert(applied.undo)
    assert fp.status(name, directory=directory) is not None  # left alone
    fp.disarm(name, directory=directory, lease_id=other["lease_id"])
    cls.revert(applied.undo)  # idempotent


def test_training_poison_defaults(lab_dir: Path) -> None:
    f = faults.TrainingPoison(faults.TrainingPoison.Spec(lab_dir=str(lab_dir), fraction="45%"), FakeCtx())
    assert f.spec.point == "delivery.train.after_extract" and f.spec.kind == "label_noise"
    assert f.spec.fraction == pytest.approx(0.45)
    asyncio.run(f.preflight())  # the lab's delivery failpoint directory, resolved before arming
    assert f.spec.directory == str(DeliveryPaths(lab_dir).failpoints)


def test_delivery_run_needs_a_serving_lab(lab_dir: Path) -> None:
    f = faults.DeliveryRun(faults.DeliveryRun.Spec(lab_dir=str(lab_dir)), FakeCtx())
    with pytest.raises(FaultError, match="serving"):
        asyncio.run(f.preflight())


def test_delivery_run_revert_stops_the_pipeline(lab_dir: Path, serving: Callable[[str], Lab]) -> None:
    serving("naive")
    hang = faults.ValidationHang(faults.ValidationHang.Spec(lab_dir=str(lab_dir)), FakeCtx())
    hang_undo = asyncio.run(hang.inject(Lease.new("h", 60))).undo
    run = faults.DeliveryRun(faults.DeliveryRun.Spec(lab_dir=str(lab_dir), config={"timeouts": {"validate": 120}}),
                             FakeCtx())
    try:
        applied = asyncio.run(run.inject(Lease.new("r", 60)))
        pid = applied.undo["pid"]
        manifest = DeliveryPaths(lab_dir).run_dir(applied.undo["run_id"]) / "manifest.json"
        deadline = time.monotonic() + 60
        step_pid = None
        while time.monotonic() < deadline and step_pid is None:  # wait for the (hanging) validate step
            if manifest.exists():
                import json

                steps = json.loads(manifest.read_text()).get("steps", [])
                step_pid = next((s.get("pid") for s in steps if s["name"] == "validate" and s.get("pid")), None)
            time.sleep(0.2)
        assert step_pid, "validate never started"
        faults.DeliveryRun.revert(applied.undo)  # as the watchdog would, with no runner state
        for p in (pid, step_pid):
            try:
                psutil.Process(p).wait(10)
            except psutil.NoSuchProcess:
                pass
            except psutil.TimeoutExpired:
                pytest.fail(f"process {p} survived revert")
        faults.DeliveryRun.revert(applied.undo)  # idempotent, and a reused pid would not match
    finally:
        faults.ValidationHang.revert(hang_undo)
        if run._proc is not None:
            run._proc.kill()
            run._proc.wait(5)
