"""The token-level probes in experiments (mlchaos's runner), against the scripted SSE server.

A healthy stream passes every probe; a server whose streams stall (while its /health answers 200) fails
stream completion, goodput and the canary generation, and only those: the gray failure a health check
misses.  Timing bounds are loose (hundreds of ms against scripted tens): the machine is shared.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from mlchaos.engine.runner import run_experiment
from mlchaos.plugin import Context, ProbeError, Target
from mlchaos.probes.canary_generation import CanaryGenerationProbe
from mlchaos.probes.llm import OutputValidityProbe, TTFTProbe
from mlchaos.spec.loader import load_dict
from tests.load.test_llm_load import llm_url  # noqa: F401 - the module-scoped server fixture

GOOD = "ttft=0.02 itl=0.01 answer=json"
STALL = "ttft=0.02 n=3 end=stall"


def _exp(url: str, prompts: Path, canary: str) -> dict[str, Any]:
    return {
        "title": "llm probes",
        "target": {"platform": "http", "url": url, "health": "/health"},
        "load": {"rate": "20/s", "sample": 1.0, "lag_budget": "100ms",
                 "llm": {"prompts": {"file": str(prompts)}, "stall_timeout": "400ms",
                         "slo": {"ttft": "300ms", "tpot": "100ms", "e2e": "2s"}}},
        "steady_state": [
            {"name": "ttft", "probe": "ttft", "percentile": 90, "min_samples": 10, "window": "1s", "max": "300ms"},
            {"name": "itl", "probe": "itl", "percentile": 50, "min_samples": 10, "window": "1s", "max": "100ms"},
            {"name": "tpot", "probe": "tpot", "percentile": 50, "min_samples": 5, "window": "1s", "max": "100ms"},
            {"name": "e2e", "probe": "e2e", "percentile": 50, "min_samples": 10, "window": "1s", "max": "2s"},
            {"name": "goodput", "probe": "goodput", "window": "1s", "min": "8"},
            {"name": "goodput share", "probe": "goodput", "stat": "share", "window": "1s", "min": "70%"},
            {"name": "completion", "probe": "stream-completion", "window": "1s", "min_samples": 10, "min": "99%"},
            {"name": "json answers", "probe": "output-validity", "window": "1s", "min_samples": 5, "min": "99%",
             "schema": {"type": "object", "required": ["ok"], "properties": {"ok": {"const": True}}}},
            {"name": "canary", "probe": "canary-generation", "prompt": f"canary @@ {canary}", "tokens": 5,
             "within": "1s"},
            {"name": "health", "probe": "http", "url": "/health", "equals": 200},
        ],
        "phases": {"baseline": "1500ms", "recovery": "200ms"},
    }


def _prompts(tmp_path: Path, *scripts: str) -> Path:
    f = tmp_path / "p.jsonl"
    f.write_text("".join(json.dumps(f"q @@ {s}") + "\n" for s in scripts))
    return f


@pytest.mark.slow  # an experiment with a 1.5 s baseline: ~5 s
def test_probes_pass_on_healthy_streams(llm_url: str, tmp_path: Path) -> None:  # noqa: F811
    exp = _exp(llm_url, _prompts(tmp_path, GOOD), "ttft=0.01 itl=0.01 n=10")
    res = run_experiment(load_dict(exp), journal_path=tmp_path / "j.jsonl")
    by = {p["name"]: p for p in res.summary["probes"]}
    assert res.status.value == "passed", (res.reason, {k: v["before"] for k, v in by.items()})
    assert by["ttft"]["before"]["value"] >= 0.02 and 0.005 <= by["itl"]["before"]["value"] < 0.1
    assert by["canary"]["before"]["value"] >= 5 and by["completion"]["before"]["value"] == 1.0
    assert res.summary["load"]["llm"]["completed"] > 0  # the run's summary carries the token-level report
    ticks = [json.loads(ln) for ln in (tmp_path / "j.jsonl").read_text().splitlines()]
    ticks = [e for e in ticks if e.get("event") == "load-tick"]
    assert ticks and all("ttft_p99" in e and "goodput" in e for e in ticks)  # and so does the journal, per second


@pytest.mark.slow  # an experiment with a 1.5 s baseline: ~5 s
def test_stalling_streams_fail_completion_goodput_and_canary_while_health_is_200(llm_url: str,  # noqa: F811
                                                                                  tmp_path: Path) -> None:
    exp = _exp(llm_url, _prompts(tmp_path, GOOD, STALL), "ttft=0.01 n=2 end=stall")
    res = run_experiment(load_dict(exp), journal_path=tmp_path / "j.jsonl")
    by = {p["name"]: p for p in res.summary["probes"]}
    assert res.status.value in ("failed", "not-run", "inconclusive"), res.reason
    before = {k: v["before"] for k, v in by.items()}
    assert before["health"]["ok"] is True, before
    assert before["canary"]["ok"] is False and before["canary"]["value"] == 2, before
    assert before["completion"]["ok"] is False and before["completion"]["value"] <= 0.6, before
    assert before["goodput share"]["ok"] is False, before
    assert before["json answers"]["ok"] is True  # the completed answers are still valid JSON


class _Ctx(Context):
    run_id = "t"
    state_dir = None
    lease_ttl = 5.0

    def __init__(self, services: dict[str, Any]) -> None:
        self._s = services

    def target(self, name: str) -> Target:
        raise KeyError(name)

    def log(self, event: str, **fields: Any) -> None:
        pass

    @property
    def services(self) -> dict[str, Any]:
        return self._s


def test_probe_errors_are_clear(llm_url: str) -> None:  # noqa: F811
    from mlchaos.load import LoadRunner, LoadSpec

    plain = LoadRunner(LoadSpec.model_validate({"rate": "1/s"}), llm_url)
    ttft = TTFTProbe(TTFTProbe.Spec.model_validate({"probe": "ttft"}), _Ctx({"load": plain}))
    with pytest.raises(ProbeError, match="no 'llm:' block"):
        asyncio.run(ttft.measure())
    unsampled = LoadRunner(LoadSpec.model_validate({"rate": "1/s", "llm": {}}), llm_url)
    ov = OutputValidityProbe(OutputValidityProbe.Spec.model_validate({"probe": "output-validity"}),
                             _Ctx({"load": unsampled}))
    with pytest.raises(ProbeError, match=r"set load\.sample"):
        asyncio.run(ov.measure())
    canary = CanaryGenerationProbe(CanaryGenerationProbe.Spec.model_validate({"probe": "canary-generation"}),
                                   _Ctx({}))
    with pytest.raises(ProbeError, match="no URL"):
        asyncio.run(canary.measure())


def test_output_validity_without_jsonschema(monkeypatch: pytest.MonkeyPatch) -> None:
    """jsonschema is optional: a schema is refused at validation with the install line; parse-only still works."""
    import importlib.util

    from pydantic import ValidationError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jsonschema" else real(name, *a))
    with pytest.raises(ValidationError, match="pip install jsonschema"):
        OutputValidityProbe.Spec.model_validate({"probe": "output-validity", "schema": {"type": "object"}})
    assert OutputValidityProbe.Spec.model_validate({"probe": "output-validity"}).json_schema is None


def test_canary_judges_its_own_instrument(llm_url: str) -> None:  # noqa: F811
    """A canary that failed while its own loop was blocked for > 10 % of the deadline is not evidence."""
    import time

    spec = {"probe": "canary-generation", "url": llm_url + "/v1/chat/completions", "tokens": 5, "within": "1s"}

    async def measure(prompt: str, block: float) -> Any:
        probe = CanaryGenerationProbe(CanaryGenerationProbe.Spec.model_validate({**spec, "prompt": prompt}), _Ctx({}))

        async def hog() -> None:
            await asyncio.sleep(0.05)
            time.sleep(block)  # the runner's loop held up, as on a starved host

        return (await asyncio.gather(probe.measure(), hog()))[0]

    ok = asyncio.run(measure("c @@ ttft=0.01 itl=0.005 n=10", 0.0))
    assert ok.value >= 5 and ok.instrument.get("ok") is not False and ok.detail["done"] is True
    dead = asyncio.run(measure("c @@ ttft=0.01 n=2 end=stall", 0.0))
    assert dead.value == 2 and dead.instrument.get("ok") is not False  # a quiet loop: the failure is evidence
    blocked = asyncio.run(measure("c @@ ttft=0.01 n=2 end=stall", 0.2))
    assert blocked.value == 2 and blocked.instrument["ok"] is False and "stalled" in blocked.instrument["why"]
