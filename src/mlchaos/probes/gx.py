"""Great Expectations probe: a GX expectation suite (JSON) run against a data file, as a steady-state check.

Why a second validation probe: teams that already keep their data contracts as
GX suites should not have to rewrite them as Pandera schemas to use them as a
steady-state gate.  Pandera stays the default (``validation``): GX costs ~4 s
to import and several times more per batch, so it lives behind the optional
extra ``mlchaos[gx]`` and is imported only inside :meth:`measure`, never when
this module is imported (``mlchaos validate`` loads the Spec without it).

What the value means (``value:``):

* ``failed_share`` (default): failed expectations / evaluated expectations,
  in [0, 1].  Per expectation, not per row: one broken column is one failure
  whatever its size, which is what a contract gate asks ("is any promise
  broken?") and what ``max: 0`` tests.
* ``failures``: the number of failed expectations.
* ``unexpected_rate``: the worst expectation's unexpected-row share (GX's
  ``unexpected_percent_total`` / 100, i.e. of all rows); an expectation that
  fails without a row share (an aggregate such as a mean bound, or one that
  raised, e.g. on a missing column) counts as 1, so it can never pass silently.
* ``valid``: 1 if every expectation passed, else 0.

An expectation that raises while evaluating (a dropped column) is a *failed*
expectation with its error in the detail, not a probe error: a corrupted file
is exactly what the probe is there to catch.  A suite that cannot be read or
built, or has no expectations, is a :class:`ProbeError` (never a vacuous pass).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from mlchaos.plugin import Measurement, Probe, ProbeError, ProbeSpec

__all__ = ["GreatExpectationsProbe", "load_suite", "read_suite_file"]

_INSTALL_HINT = "the gx-validation probe needs great_expectations: pip install 'mlchaos[gx]'"
_MAX_DETAIL = 10
"""Failed expectations listed per measurement: enough to name the culprit, small enough for the journal."""


def _import_gx() -> Any:
    try:
        import great_expectations as gx
    except ImportError:
        raise ProbeError(_INSTALL_HINT) from None
    return gx


def read_suite_file(path: str) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    """The suite's name and its ``(type, kwargs)`` pairs, checked without GX.

    Accepts the standard suite JSON: ``{"name"|"expectation_suite_name": ...,
    "expectations": [{"type"|"expectation_type": ..., "kwargs": {...}}]}``
    (``type`` is GX 1.x, ``expectation_type`` the 0.x spelling).  Parsed here,
    not by ``ExpectationSuite(**json)``, because that constructor only *logs*
    an invalid expectation and drops it, which would turn a typo into a pass.
    """
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProbeError(f"suite: cannot read {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ProbeError(f"suite: {path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("expectations"), list):
        raise ProbeError(f"suite: {path} must be a JSON object with an 'expectations' list")
    name = raw.get("name") or raw.get("expectation_suite_name") or p.stem
    items: list[tuple[str, dict[str, Any]]] = []
    for i, entry in enumerate(raw["expectations"]):
        if not isinstance(entry, dict):
            raise ProbeError(f"suite: {path}: expectation #{i} must be an object with 'type' and 'kwargs'")
        etype = entry.get("type") or entry.get("expectation_type")
        if not isinstance(etype, str):
            raise ProbeError(f"suite: {path}: expectation #{i} has no 'type' (or 'expectation_type')")
        kwargs = entry.get("kwargs", {})
        if not isinstance(kwargs, dict):
            raise ProbeError(f"suite: {path}: expectation #{i} ({etype}): 'kwargs' must be an object")
        items.append((etype, kwargs))
    if not items:
        raise ProbeError(f"suite: {path} has no expectations (an empty suite would always pass)")
    return str(name), items


def load_suite(path: str) -> Any:
    """A ``gx.ExpectationSuite`` from a suite JSON file; every expectation is built or the load fails."""
    gx = _import_gx()
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    name, items = read_suite_file(path)
    expectations = []
    for i, (etype, kwargs) in enumerate(items):
        try:
            expectations.append(ExpectationConfiguration(type=etype, kwargs=kwargs).to_domain_obj())
        except Exception as exc:  # GX raises its own, pydantic's and KeyError here; all mean "bad suite"
            msg = " ".join(str(exc).split())
            raise ProbeError(f"suite: {path}: expectation #{i} ({etype}): {type(exc).__name__}: {msg}") from None
    return gx.ExpectationSuite(name=name, expectations=expectations)


def _row_share(result: dict[str, Any], n: int) -> float | None:
    """The share of all rows an expectation found unexpected, or None when it does not count rows."""
    if result.get("unexpected_percent_total") is not None:
        return float(result["unexpected_percent_total"]) / 100.0
    if result.get("unexpected_count") is not None and n:
        return float(result["unexpected_count"]) / n
    return None


class GreatExpectationsProbe(Probe):
    """Validate a parquet/CSV file with a Great Expectations suite; report what fails."""

    unit: ClassVar[str] = ""

    class Spec(ProbeSpec):
        probe: Literal["gx-validation"] = "gx-validation"
        path: str = Field(description="The data to validate: a parquet or CSV file.")
        suite: str = Field(description="A GX expectation suite JSON file (expectations: [{type, kwargs}]).")
        value: Literal["failed_share", "failures", "unexpected_rate", "valid"] = Field(
            "failed_share",
            description="failed_share (failed / evaluated expectations), failures (count), "
            "unexpected_rate (worst expectation's unexpected-row share) or valid (1/0).",
        )

    spec: Spec

    def __init__(self, spec: ProbeSpec, ctx: Any) -> None:
        super().__init__(spec, ctx)
        self._lock = threading.Lock()
        self._suite: Any = None
        self._batch_definition: Any = None

    async def start(self) -> None:
        """Pay the GX import (~4 s) and build the suite before the baseline, outside the engine's probe timeout.

        A suite that cannot be built is not raised here (the engine would call
        it an internal error); the first ``measure`` raises it again as a
        :class:`ProbeError`, so the baseline fails and no fault is injected.
        """
        with contextlib.suppress(ProbeError):
            await asyncio.to_thread(self._ensure_setup)

    def _ensure_setup(self) -> None:
        with self._lock:
            if self._suite is None:
                self._setup()

    def _setup(self) -> None:
        """Build the suite and an in-memory GX context once; each measurement then only reads and validates."""
        gx = _import_gx()
        from great_expectations.data_context.types.base import ProgressBarsConfig

        suite = load_suite(self.spec.suite)
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)  # else tqdm writes to stderr every time
        asset = context.data_sources.add_pandas("mlchaos").add_dataframe_asset("data")
        self._batch_definition = asset.add_batch_definition_whole_dataframe("whole file")
        self._suite = suite

    def _measure_sync(self) -> Measurement:
        from mlchaos.data.files import read_table

        with self._lock:
            if self._suite is None:
                self._setup()
            try:
                df = read_table(self.spec.path).to_pandas()
            except (ValueError, OSError) as exc:
                raise ProbeError(str(exc)) from None
            n = len(df)
            if n == 0:
                return Measurement(None, insufficient=f"{self.spec.path} has no rows", samples=0)
            try:
                batch = self._batch_definition.get_batch(batch_parameters={"dataframe": df})
                outcome = batch.validate(self._suite, result_format="BASIC")
            except Exception as exc:  # a GX failure outside any one expectation: cannot measure
                raise ProbeError(f"great_expectations could not validate {self.spec.path}: "
                                 f"{type(exc).__name__}: {exc}") from None
        evaluated = len(outcome.results)
        failed: list[dict[str, Any]] = []
        worst = 0.0
        for res in outcome.results:
            result = dict(res.result or {})
            share = _row_share(result, n)
            if res.success:
                worst = max(worst, share or 0.0)
                continue
            worst = max(worst, 1.0 if share is None else share)
            cfg = res.expectation_config
            item: dict[str, Any] = {"type": cfg.type}
            kwargs = {k: v for k, v in cfg.kwargs.items() if k != "batch_id"}
            if "column" in kwargs:
                item["column"] = kwargs.pop("column")
            item["kwargs"] = json.loads(json.dumps(kwargs, default=str))
            if result.get("unexpected_count") is not None:
                item["unexpected_count"] = int(result["unexpected_count"])
            if share is not None:
                item["unexpected_rate"] = share
            info = res.exception_info or {}
            if info.get("raised_exception"):
                item["error"] = str(info.get("exception_message"))[:300]
            else:  # metric errors come back keyed by metric id
                errs = [v.get("exception_message") for v in info.values() if isinstance(v, dict)
                        and v.get("raised_exception")]
                if errs:
                    item["error"] = str(errs[0])[:300]
            failed.append(item)
        failures = len(failed)
        if self.spec.value == "failed_share":
            value: float = failures / evaluated if evaluated else 0.0
        elif self.spec.value == "failures":
            value = failures
        elif self.spec.value == "unexpected_rate":
            value = min(1.0, worst)
        else:
            value = 1.0 if failures == 0 else 0.0
        detail = {"suite": self._suite.name, "evaluated": evaluated, "failures": failures,
                  "failed": failed[:_MAX_DETAIL]}
        return Measurement(value, detail=detail, samples=n)

    async def measure(self) -> Measurement:
        return await asyncio.to_thread(self._measure_sync)
