"""A revert that keeps failing (the target's API is down): the watchdog keeps trying, backs off, and says so.

Before, it retried every 100 ms for ever and logged only the 1st, 10th and 100th failure: a struggling
target was hit ten times a second, and nothing on disk said why a lease was still there.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import psutil
import pytest

from mlchaos import registry
from mlchaos.contract.lease import Lease
from mlchaos.engine.lease import LeaseStore

FAILS = 5


class _FlakyRevert:
    """A fault whose revert fails FAILS times, then works; it records when each try came and what the
    record on disk said at that moment."""

    tries: ClassVar[list[tuple[float, dict[str, Any]]]] = []
    record: ClassVar[Path | None] = None

    @classmethod
    def revert(cls, undo: dict[str, Any]) -> None:
        assert cls.record is not None
        on_disk = json.loads(cls.record.read_text())
        cls.tries.append((time.monotonic(), on_disk))
        if len(cls.tries) <= FAILS:
            raise ConnectionError("target API unreachable")


@pytest.fixture
def flaky() -> Iterator[type[_FlakyRevert]]:
    _FlakyRevert.tries = []
    registry.register("fault", "flaky-revert", _FlakyRevert)
    yield _FlakyRevert
    registry.unregister("fault", "flaky-revert")


def test_a_failing_revert_is_retried_with_backoff_and_recorded(tmp_path: Path, flaky: type[_FlakyRevert]) -> None:
    from mlchaos.engine.watchdog import POLL, watch

    dead = psutil.Popen([sys.executable, "-c", "pass"])
    dead.wait(10)
    base = tmp_path / "state"
    store = LeaseStore(base)
    (base / "runs").mkdir(parents=True, exist_ok=True)
    store.intend(Lease.new("0-abc", 60.0), run_id="r1", plugin="flaky-revert", undo={"x": 1}, runner_pid=dead.pid)
    flaky.record = store.for_run("r1")[0][0]

    assert watch(base, "r1", dead.pid) == 0  # it returns once the revert finally worked
    assert len(flaky.tries) == FAILS + 1 and not store.for_run("r1")
    gaps = [b[0] - a[0] for a, b in zip(flaky.tries, flaky.tries[1:], strict=False)]
    for k, gap in enumerate(gaps):  # 0.1, 0.2, 0.4, 0.8, 1.6 s at least (a sleep never ends early)
        assert gap >= POLL * 2**k - 0.01, gaps
    # every failure is in the record the next try reads: what `mlchaos stop` and a person find on disk
    for n, (_, on_disk) in enumerate(flaky.tries[1:], 1):
        assert on_disk["revert_failures"] == n and "target API unreachable" in on_disk["revert_error"]
    logged = [json.loads(x) for x in (base / "watchdog.log").read_text().splitlines()]
    failed = [x for x in logged if x["msg"] == "revert failed"]
    assert [x["attempts"] for x in failed] == [1, 2, 4]
    assert any("fault reverted" in x["msg"] for x in logged)
