"""Token-level probes on a running LLM load: TTFT, ITL, TPOT, e2e, goodput, stream completion, output validity.

They read the load the engine started (``ctx.services["load"]``) when its ``load:`` has an ``llm:`` block,
and never send traffic themselves (``canary-generation`` does: :mod:`mlchaos.probes.canary_generation`).
Each figure is defined in :mod:`mlchaos.load.llmclient` (vLLM's ``bench serve`` definitions, measured from
the intended send time).  Like the other load probes (:mod:`mlchaos.probes.load`) their windows are
explicit (10 s by default) and a window with too few requests answers "insufficient data"; they carry
the generator's schedule lag over the window, so the engine's instrument rules
(:mod:`mlchaos.engine.instruments`) apply: TTFT and e2e run from the intended send time, and a late
generator can only have added to them.  Values are seconds, written and shown in milliseconds
(``max: 500ms``).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, model_validator

from mlchaos.plugin import Measurement, Probe, ProbeError, ProbeSpec
from mlchaos.probes.load import _instrument, _runner, _window

__all__ = ["E2EProbe", "GoodputProbe", "ITLProbe", "OutputValidityProbe", "StreamCompletionProbe", "TPOTProbe",
           "TTFTProbe"]


def _llm(probe: Probe) -> tuple[Any, Any, float]:
    """(runner, window stats, seconds) of an LLM load; a clear error when the load speaks no LLM API."""
    runner = _runner(probe)
    spec = getattr(runner, "spec", None)
    if spec is not None and getattr(spec, "llm", None) is None:
        raise ProbeError(f"probe {probe.spec.probe!r} reads token-level figures, but the experiment's load has no "
                         "'llm:' block (load: {rate: ..., llm: {api: chat, ...}})")
    seconds = _window(probe)
    return runner, runner.window(seconds), seconds


def _empty() -> Any:
    from mlchaos.load.llmstats import LLMStats

    return LLMStats()


class _QuantileSpec(ProbeSpec):
    percentile: float = Field(99.0, gt=0, le=100, description="Quantile in percent: 50, 90, 99; 100 = max.")
    min_samples: int | None = Field(
        None, ge=1, description="Fewer values in the window → insufficient data (default max(20, 10/(1-q)))."
    )


class _QuantileProbe(Probe):
    """A quantile of one of the load's token-level histograms over the window (seconds)."""

    unit = "s"
    field = ""
    what = ""

    async def measure(self) -> Measurement:
        spec: _QuantileSpec = self.spec  # type: ignore[assignment]
        runner, w, seconds = _llm(self)
        llm = w.llm or _empty()
        hist = getattr(llm, self.field)
        q = spec.percentile / 100.0
        need = spec.min_samples or (max(20, math.ceil(10 / (1 - q))) if q < 1 else 20)
        n = hist.count
        detail: dict[str, Any] = {"window": seconds, "percentile": spec.percentile, "count": n,
                                  "errors": dict(llm.kinds)}
        if n < need:
            return Measurement(value=None, samples=n, detail=detail, window=seconds,
                               insufficient=f"{n} {self.what} in the last {seconds:g}s; "
                                            f"p{spec.percentile:g} needs ≥ {need}")
        detail["p50"] = hist.quantile(0.5)
        detail["max"] = hist.max
        value = hist.max if q >= 1 else hist.quantile(q)
        return Measurement(value=value, samples=n, detail=detail, window=seconds, instrument=_instrument(runner, w))


class TTFTSpec(_QuantileSpec):
    probe: Literal["ttft"] = "ttft"


class TTFTProbe(_QuantileProbe):
    """Time to first token: first content event − intended send time; stalls before any token at their age."""

    Spec = TTFTSpec
    field = "ttft"
    what = "requests with a first token (or stalled before one)"


class ITLSpec(_QuantileSpec):
    probe: Literal["itl"] = "itl"


class ITLProbe(_QuantileProbe):
    """Inter-token latency: every gap between two consecutive content events of every stream."""

    Spec = ITLSpec
    field = "itl"
    what = "inter-token gaps"


class TPOTSpec(_QuantileSpec):
    probe: Literal["tpot"] = "tpot"


class TPOTProbe(_QuantileProbe):
    """Time per output token after the first, per completed stream: (last − first token) / (tokens − 1)."""

    Spec = TPOTSpec
    field = "tpot"
    what = "completed streams of more than one token"


class E2ESpec(_QuantileSpec):
    probe: Literal["e2e"] = "e2e"


class E2EProbe(_QuantileProbe):
    """End-to-end latency of every request that ended in the window, failed ones at their age."""

    Spec = E2ESpec
    field = "e2e"
    what = "requests ended"


class GoodputSpec(ProbeSpec):
    probe: Literal["goodput"] = "goodput"
    stat: Literal["rate", "share"] = Field(
        "rate", description="'rate': good requests per second; 'share': good / requests offered in the window."
    )
    min_coverage: float = Field(0.5, gt=0, le=1, description="Share of the window the load must have covered.")
    min_samples: int = Field(10, ge=1, description="'share': fewer offered requests → insufficient data.")


class GoodputProbe(Probe):
    """Completed requests meeting every SLO of ``load.llm.slo`` (vLLM ``--goodput``), per second or as a share.

    With no SLO given every completed request is good.  The share's denominator is the schedule's
    requests in the window (the offered load), so requests that never ended count against it.
    """

    Spec = GoodputSpec

    def value_unit(self) -> str:
        return "1/s" if self.spec.stat == "rate" else "ratio"  # type: ignore[attr-defined]

    async def measure(self) -> Measurement:
        spec: GoodputSpec = self.spec  # type: ignore[assignment]
        runner, w, seconds = _llm(self)
        llm = w.llm or _empty()
        detail = {"window": seconds, "covered": w.covered, "good": llm.good, "completed": llm.completed,
                  "offered": w.scheduled, "ended": llm.ended, "errors": dict(llm.kinds)}
        if w.covered < spec.min_coverage * seconds:
            return Measurement(value=None, samples=llm.good, detail=detail, window=seconds,
                               insufficient=f"load ran {w.covered:.2g}s of the {seconds:g}s window")
        inst = _instrument(runner, w)
        if spec.stat == "rate":
            return Measurement(value=llm.good / w.covered, samples=llm.good, detail=detail, window=seconds,
                               instrument=inst)
        if w.scheduled < spec.min_samples:
            return Measurement(value=None, samples=w.scheduled, detail=detail, window=seconds,
                               insufficient=f"{w.scheduled} requests offered in the last {seconds:g}s; "
                                            f"need ≥ {spec.min_samples}")
        return Measurement.share(min(llm.good, w.scheduled), w.scheduled, detail, window=seconds, instrument=inst)


class StreamCompletionSpec(ProbeSpec):
    probe: Literal["stream-completion"] = "stream-completion"
    min_samples: int = Field(20, ge=1, description="Fewer streams ended in the window → insufficient data.")


class StreamCompletionProbe(Probe):
    """Share of streams that ended with ``data: [DONE]`` (requests refused with an HTTP error are not streams)."""

    Spec = StreamCompletionSpec
    unit = "ratio"

    async def measure(self) -> Measurement:
        spec: StreamCompletionSpec = self.spec  # type: ignore[assignment]
        runner, w, seconds = _llm(self)
        llm = w.llm or _empty()
        n = llm.streams
        detail = {"window": seconds, "streams": n, "done": llm.done_marker, "errors": dict(llm.kinds)}
        if n < spec.min_samples:
            return Measurement(value=None, samples=n, detail=detail, window=seconds,
                               insufficient=f"{n} streams ended in the last {seconds:g}s; need ≥ {spec.min_samples}")
        return Measurement.share(llm.done_marker, n, detail, window=seconds, instrument=_instrument(runner, w))


class OutputValiditySpec(ProbeSpec):
    probe: Literal["output-validity"] = "output-validity"
    json_schema: dict[str, Any] | None = Field(
        None, alias="schema", description="JSON Schema each answer must match (needs the 'jsonschema' package)."
    )
    min_samples: int = Field(20, ge=1, description="Fewer sampled answers in the window → insufficient data.")

    @model_validator(mode="after")
    def _schema_support(self) -> OutputValiditySpec:
        """jsonschema is not a core dependency: a schema without it is an error now, not mid-run."""
        if self.json_schema is not None:
            import importlib.util

            if importlib.util.find_spec("jsonschema") is None:
                raise ValueError("schema: checking answers against a JSON Schema needs the 'jsonschema' package "
                                 "(pip install jsonschema); without 'schema' the probe checks that answers parse "
                                 "as JSON")
            from jsonschema.validators import validator_for

            validator_for(self.json_schema).check_schema(self.json_schema)
        return self


class OutputValidityProbe(Probe):
    """Share of sampled completed answers that parse as JSON (and match ``schema`` when given).

    It judges the answers the load sampled (``load.sample``, e.g. ``10%``): the text of a completed
    request, content events joined (cut or failed streams are not sampled: stream-completion counts them).
    Without the optional ``jsonschema`` package the probe still checks that answers parse as JSON; a
    ``schema`` then is refused when the experiment is validated.
    """

    Spec = OutputValiditySpec
    unit = "ratio"

    def __init__(self, spec: ProbeSpec, ctx: Any) -> None:
        super().__init__(spec, ctx)
        self._validator: Any = None
        schema = self.spec.json_schema  # type: ignore[attr-defined]
        if schema is not None:
            from jsonschema.validators import validator_for

            self._validator = validator_for(schema)(schema)

    async def measure(self) -> Measurement:
        spec: OutputValiditySpec = self.spec  # type: ignore[assignment]
        runner, w, seconds = _llm(self)
        if not getattr(getattr(runner, "spec", None), "sample", 1):
            raise ProbeError("output-validity judges sampled answers, but the load keeps none: set load.sample "
                             "(e.g. '10%')")
        answers = w.samples
        ok = 0
        bad: list[str] = []
        for rec in answers:
            if "json" in rec and (self._validator is None or self._validator.is_valid(rec["json"])):
                ok += 1
            elif len(bad) < 3:
                bad.append(str(rec.get("text", rec.get("json")))[:200])
        n = len(answers)
        detail = {"window": seconds, "answers": n, "valid": ok, "examples_invalid": bad}
        if n < spec.min_samples:
            return Measurement(value=None, samples=n, detail=detail, window=seconds,
                               insufficient=f"{n} sampled answers in the last {seconds:g}s; need ≥ {spec.min_samples}")
        return Measurement.share(ok, n, detail, window=seconds, instrument=_instrument(runner, w))
