"""What the model answered: class rates, means, quantiles, fallback share, model version, drift.

Latency and error rate cannot see a service that silently answers with zero
features: it is fast, green and wrong.  This probe reads the answers
themselves — JSON bodies sampled by the running load generator (``source:
load``) or a parquet/CSV file of predictions (``source: file``) — and turns a
field into one number: the share equal to a label (fraud rate, fallback
rate), a mean, a quantile, the most common value (model version), or a drift
statistic against what the same field looked like during the baseline phase.

A batched answer is many rows: ``field: predictions[*]`` reads every entry of
MLflow's ``{"predictions": [0, 1, 1]}`` (three rows, not one list), and
``outputs[name=probabilities].data`` reads an Open Inference Protocol tensor
split into rows by its ``shape``; ``column:`` or ``reduce: argmax`` turns a
row of class probabilities into one value.  ``protocol:`` fills those paths
(:mod:`mlchaos.probes.protocols`).  Every count (``min_samples``, shares) is
of rows, not responses.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import glob
import json
import math
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from mlchaos import jsonpath
from mlchaos.plugin import Measurement, Probe, ProbeError, ProbeSpec
from mlchaos.probes import protocols
from mlchaos.probes.calibrated import Calibrated

_DRIFT = ("psi", "ks", "wasserstein", "jensen_shannon")
_BASELINED = (*_DRIFT, "changed")


class PredictionsSpec(ProbeSpec, Calibrated):
    probe: Literal["predictions"] = "predictions"
    source: Literal["load", "file"] = Field("load", description="Sampled load responses, or a predictions file.")
    field: str = Field(  # type: ignore[assignment]  # None until _resolve fills it (protocol or 'prediction')
        None, validate_default=False,
        description="JSON path to the rows of a response (load), e.g. 'predictions[*]', "
                    "'outputs[name=probabilities].data', 'predictions[*].score' (wildcards flatten: a batch of N "
                    "is N rows); or a column name (file).  Default: the protocol's path, else 'prediction'.")
    protocol: protocols.Protocol | None = Field(None, description=protocols.PROTOCOL_HELP)
    output: str | None = Field(None, description="protocol: oip: the output tensor to read, e.g. 'probabilities'.")
    column: int | None = Field(None, description="Rows that are vectors (class probabilities): the value at this "
                                                 "index (negative counts from the end), e.g. 1 for P(class 1).")
    reduce: Literal["argmax", "max"] | None = Field(
        None, description="Rows that are vectors: argmax (the predicted class) or max (its score).")
    path: str | None = Field(None, description="Predictions file (parquet or CSV) for source: file; a glob picks "
                                                "the newest match; relative paths resolve on the target (lab dir).")
    stat: Literal["rate", "mean", "quantile", "mode", "missing", "changed", "psi", "ks", "wasserstein",
                  "jensen_shannon"] = Field(
        "rate", description="rate: share equal to 'label'; missing: share without the field; changed: share of "
                            "rows that differ from the baseline's (same input, e.g. a batch re-run); psi/ks/...: "
                            "drift against the values seen during the baseline phase.")
    label: Any = Field(1, description="Value counted by stat: rate (e.g. 1 for fraud, true for fallback).")
    q: float = Field(0.5, ge=0, le=1, description="Quantile for stat: quantile.")
    min_samples: int = Field(50, ge=1, description="Fewer values (rows) in the window means 'insufficient data'.")
    last: int | None = Field(None, ge=1, description="source: file: only the last N rows.")

    @field_validator("source")
    @classmethod
    def _file_needs_data(cls, v: str) -> str:
        """Reading a parquet/CSV file needs pyarrow (the data extra): say so at validation, not mid-run."""
        if v == "file":
            from mlchaos import extras

            absent = extras.missing("data")
            if absent:
                raise ValueError(extras.message("data", "source: file", absent))
        return v

    @model_validator(mode="after")
    def _resolve(self) -> PredictionsSpec:
        """Fill the field from the protocol and parse the path once, so a bad one is an error at its line."""
        if self.output is not None and not protocols.is_oip(self.protocol):
            raise ValueError("'output' names an Open Inference Protocol output: it needs protocol: oip")
        if self.column is not None and self.reduce is not None:
            raise ValueError("give either 'column' or 'reduce', not both")
        if self.source == "file":
            if self.protocol is not None or self.column is not None or self.reduce is not None:
                raise ValueError("'protocol', 'column' and 'reduce' read HTTP answers: they apply to source: load")
            self.field = self.field or "prediction"
            return self
        if self.field is None:
            self.field = protocols.default_field(self.protocol, self.output) or "prediction"
        try:
            jsonpath.compile(self.field)
        except jsonpath.JsonPathError as exc:
            raise ValueError(f"field: {exc}") from None
        return self


_NO_BODY = object()


def _document(sample: dict[str, Any]) -> Any:
    """The JSON of a sampled answer; a success whose body is not strict JSON counts as one row without the field.

    The load generator parses with orjson, which refuses ``NaN``: Python's parser reads it, so a model (or a
    fault) that answers NaN shows as NaN values, not as vanished answers.
    """
    if "json" in sample:
        return sample["json"]
    if int(sample.get("status") or 0) >= 400:
        return _NO_BODY  # an error answer: the error-rate probe's business, not a row
    try:
        return json.loads(sample.get("text") or "")
    except ValueError:
        return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) is bool(b) if isinstance(a, bool) and isinstance(b, bool) else a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return bool(a == b)


class PredictionsProbe(Probe):
    """A statistic of what a model answered (from sampled responses or a predictions file)."""

    Spec = PredictionsSpec
    spec: PredictionsSpec
    unit: ClassVar[str] = ""

    def __init__(self, spec: Any, ctx: Any) -> None:
        super().__init__(spec, ctx)
        self._reference: list[Any] = []
        self._calibrator: Any = None
        self._seen: set[tuple[Any, ...]] = set()  # sampled answers already in the reference
        self._fresh: list[Any] = []

    def _values(self) -> tuple[list[Any], int]:
        """(values of the field, number of records looked at) in the current window."""
        s = self.spec
        if s.source == "file":
            if not s.path:
                raise ProbeError("source: file needs 'path'")
            from mlchaos.probes.drift import read_column

            path = self._file()
            if path is None:
                return [], 0
            try:
                col = read_column(str(path), s.field, s.last)
            except (OSError, KeyError, ValueError) as exc:
                raise ProbeError(f"cannot read {s.field!r} from {s.path}: {exc}") from None
            rows = col.tolist()
            return rows, len(rows)
        load = self.ctx.services.get("load")
        if load is None:
            raise ProbeError("source: load needs a 'load' section in the experiment (with 'sample' above 0)")
        window = load.window(s.window or 5.0)
        jpath = jsonpath.compile(s.field)
        values: list[Any] = []
        self._fresh = []
        for sample in window.samples:
            doc = _document(sample)
            if doc is _NO_BODY:
                continue
            try:
                rows = [protocols.pick(row, s.column, s.reduce) for row in protocols.rows(doc, jpath)]
            except ValueError as exc:
                raise ProbeError(f"{s.field!r}: {exc}") from None
            values.extend(rows)
            # windows overlap from one measurement to the next: the reference takes each answer once
            key = (sample.get("t"), sample.get("latency"), sample.get("status"))
            if key not in self._seen:
                self._seen.add(key)
                self._fresh.extend(rows)
        return values, len(values)

    def _file(self) -> Path | None:
        """The file to read: relative to the target (the lab dir) if it can resolve paths; newest glob match."""
        assert self.spec.path is not None
        raw = self.spec.path
        resolve = None
        with contextlib.suppress(Exception):
            resolve = getattr(self.ctx.target(self.spec.target), "resolve_path", None)
        path = resolve(raw) if callable(resolve) and not Path(raw).is_absolute() else Path(raw)
        if any(c in str(path) for c in "*?["):
            matches = [Path(m) for m in glob.glob(str(path))]
            return max(matches, key=lambda m: m.stat().st_mtime) if matches else None
        return path

    async def measure(self) -> Measurement:
        if self.spec.false_alarm is not None and self.spec.stat in _DRIFT:
            m = await asyncio.to_thread(self._measure)  # a calibration takes up to seconds: off the event loop
        else:
            m = self._measure()
        if self.spec.source == "load":  # it summarises the responses sampled over its window
            m.window = float(self.spec.window or 5.0)
        return m

    def _measure(self) -> Measurement:
        s = self.spec
        values, seen = self._values()
        present = [v for v in values if v is not None]
        if self.ctx.phase == "baseline" and s.stat in _BASELINED:
            if s.stat == "changed":
                self._reference = list(values)  # the same input's answers, row by row
            elif s.source == "file":  # the file as it stands: re-reading it must not count its rows twice
                self._reference = present[-50_000:]
            else:
                self._reference = (self._reference + [v for v in self._fresh if v is not None])[-50_000:]
        if seen < s.min_samples:
            return Measurement(None, samples=seen,
                               insufficient=f"{seen} answers in the window; {s.stat} needs ≥ {s.min_samples}")
        detail: dict[str, Any] = {"field": s.field, "stat": s.stat}
        if s.stat == "missing":
            return Measurement.share(seen - len(present), seen, detail)
        if s.stat == "changed":
            return self._changed(values, detail)
        if not present:
            raise ProbeError(f"no answer in the window has the field {s.field!r}")
        if s.stat not in ("mode", "changed") and any(isinstance(v, list | dict) for v in present):
            hint = ("write a wildcard for every row, e.g. 'predictions[*]'" if not jsonpath.compile(s.field).multi
                    and s.source == "load" else "pick one value with 'column:' or 'reduce: argmax'")
            raise ProbeError(f"{s.field!r} gives lists or objects, not values: {hint}")
        if s.stat == "rate":
            return Measurement.share(sum(_same(v, s.label) for v in present), len(present), detail)
        if s.stat == "mode":
            value, count = collections.Counter(map(str, present)).most_common(1)[0]
            return Measurement(value, {**detail, "share": count / len(present)}, samples=len(present))
        nums = [float(v) for v in present if isinstance(v, int | float) and not isinstance(v, bool)]
        if s.stat in ("mean", "quantile"):
            if not nums:
                raise ProbeError(f"{s.field!r} is not numeric")
            if s.stat == "mean":
                return Measurement(math.fsum(nums) / len(nums), detail, samples=len(nums))
            nums.sort()
            return Measurement(nums[min(len(nums) - 1, int(s.q * len(nums)))], detail, samples=len(nums))
        return self._drift(present, detail)

    def _changed(self, current: list[Any], detail: dict[str, Any]) -> Measurement:
        ref = self._reference
        if not ref:
            return Measurement(None, insufficient="no baseline answers to compare against")
        if len(ref) != len(current):
            return Measurement.share(1, 1, {**detail, "reference_rows": len(ref), "rows": len(current)},
                                     samples=len(current))

        def differ(a: Any, b: Any) -> bool:
            if isinstance(a, float) and isinstance(b, float):
                return not (a == b or (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-12 * max(1.0, abs(a)))
            return bool(a != b)

        changed = sum(differ(a, b) for a, b in zip(ref, current, strict=True))
        return Measurement.share(changed, len(current), {**detail, "changed_rows": changed})

    def _drift(self, current: list[Any], detail: dict[str, Any]) -> Measurement:
        from mlchaos import drift

        s = self.spec
        if len(self._reference) < s.min_samples:
            return Measurement(None, insufficient=f"only {len(self._reference)} baseline values to compare against")
        fn = {"psi": drift.psi, "ks": drift.ks, "wasserstein": drift.wasserstein,
              "jensen_shannon": drift.jensen_shannon}[s.stat]
        try:
            value = fn(self._reference, current, min_size=s.min_samples)
        except (ValueError, TypeError) as exc:
            return Measurement(None, insufficient=str(exc))
        detail = {**detail, "reference": len(self._reference)}
        if s.false_alarm is None:
            return Measurement(float(value), detail, samples=len(current))
        from mlchaos.drift_calibration import Calibrator

        if self._calibrator is None:
            self._calibrator = Calibrator(s.stat, s.false_alarm, draws=s.draws, min_size=s.min_samples)
        if self.ctx.phase == "baseline" or not self._calibrator.has_reference:
            self._calibrator.set_reference(self._reference)  # the baseline grows; frozen once it ends
        try:
            cal = self._calibrator.threshold(len(current))
        except ValueError as exc:
            return Measurement(None, insufficient=f"cannot calibrate: {exc}", samples=len(current))
        detail.update(value=float(value), threshold=cal.threshold, calibration=cal.to_dict())
        return Measurement(float(value) / max(cal.threshold, 1e-12), detail, samples=len(current))
