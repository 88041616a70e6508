"""The three LLM scenarios of the demo end to end: naive → failed, mitigated → passed, on one lab.

One ``run_demo`` call (the demo's own code path: lab up, warm-up, variant switches, retry of an unexpected
verdict, report) runs the three scenarios in both variants on one lab running only the ``llm`` system;
each test then checks one scenario's two verdicts and what its journal says happened.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlchaos.cli.demo import SCENARIOS, run_demo

pytestmark = pytest.mark.slow

LLM = [s.name for s in SCENARIOS if s.systems == ("llm",)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], dict[str, Any]]:
    out = tmp_path_factory.mktemp("llm-demo")
    got = run_demo(out / "report", lab_dir=out / "lab", only=LLM, quiet=True, retries=1)
    return {(r["scenario"], r["variant"]): {**r, "out": out / "report"} for r in got}


def _events(run: dict[str, Any], attempt: str = "") -> list[dict[str, Any]]:
    journal = run["out"] / "journals" / f"{run['scenario']}-{run['variant']}{attempt}.jsonl"
    return [json.loads(x) for x in Path(journal).read_text().splitlines()]


def _verdicts(runs: dict[tuple[str, str], dict[str, Any]], scenario: str) -> tuple[dict[str, Any], dict[str, Any]]:
    naive, mitigated = runs[(scenario, "naive")], runs[(scenario, "mitigated")]
    assert naive["status"] == "failed", f"{scenario} naive: {naive['status']}: {naive['reason']}"
    assert mitigated["status"] == "passed", f"{scenario} mitigated: {mitigated['status']}: {mitigated['reason']}"
    assert naive["faults"] and mitigated["faults"]
    return naive, mitigated


def test_the_three_scenarios_are_in_the_demo() -> None:
    assert sorted(LLM) == ["llm-gray-failure", "llm-overload", "llm-stream-stall"]


def test_stream_stall(runs: dict[tuple[str, str], dict[str, Any]]) -> None:
    naive, _ = _verdicts(runs, "llm-stream-stall")
    assert {"goodput share", "e2e p99", "streams completed"} & set(naive["decided_by"]), naive["decided_by"]


def _load_report(run: dict[str, Any]) -> dict[str, Any]:
    report: dict[str, Any] = next(e["report"] for e in _events(run) if e["event"] == "load-report")
    return report


def test_overload(runs: dict[tuple[str, str], dict[str, Any]]) -> None:
    naive, mitigated = _verdicts(runs, "llm-overload")
    assert {"ttft p99", "goodput"} & set(naive["decided_by"]), naive["decided_by"]
    # admission control answered the surge's excess with 429 (each with Retry-After: tests/llm); naive
    # let the queue grow, and the clients gave up waiting for a first token
    assert _load_report(mitigated)["codes"].get("429", 0) > 0, _load_report(mitigated)["codes"]
    assert "429" not in _load_report(naive)["codes"] and _load_report(naive)["errors"]["timeout"] > 0


def test_gray_failure(runs: dict[tuple[str, str], dict[str, Any]]) -> None:
    naive, _ = _verdicts(runs, "llm-gray-failure")
    assert {"goodput", "ttft p99", "streams completed"} & set(naive["decided_by"]), naive["decided_by"]
