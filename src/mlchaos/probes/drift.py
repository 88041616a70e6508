"""Drift probe: how far a column's current window has moved from a baseline window.

Why a probe of its own: the silent failures of ML systems (zero-filled
features, a stale model, a corrupted column) leave latency and error rate
green; only the distribution of features or predictions moves.  The value is
the statistic itself (PSI, KS D, normed Wasserstein or Jensen-Shannon
distance, see :mod:`mlchaos.drift`), so tolerances are thresholds on the
statistic, e.g. ``max: 0.1``, never on a p-value.

The reference comes from ``reference`` (a parquet/CSV file) or, without one,
from the whole baseline: the column as it stands at each measurement of the
baseline phase (all rows, not only the ``last`` ones), frozen when the phase
ends.  It used to be the first window, the same size as the current one:
twice the noise, which made KS false-alarm in 8-19 % of no-drift windows at
the documented thresholds.  ``last`` limits the current window to the last N
rows (e.g. the latest predictions appended to a log).  A window smaller than
``min_size`` is reported as insufficient data, never as a pass.

``false_alarm: 1%`` calibrates the threshold from the reference itself
(:mod:`mlchaos.drift_calibration`): the value is then the statistic divided by
the threshold a no-drift window of the same size exceeds with that
probability, so ``max: 1`` is the calibrated test on any column.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Literal

from pydantic import Field

from mlchaos.plugin import Measurement, Probe, ProbeError, ProbeSpec
from mlchaos.probes.calibrated import Calibrated

__all__ = ["DriftProbe"]


def read_column(path: str, column: str, last: int | None = None) -> Any:
    """One column of a parquet/CSV file, as a numpy array."""
    import numpy as np

    from mlchaos.data.files import file_format

    fmt = file_format(path)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path, columns=[column])
        else:
            import pyarrow.csv as pacsv

            table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(include_columns=[column]))
    except (OSError, KeyError) as exc:
        raise ProbeError(f"cannot read column {column!r} of {path}: {exc}") from None
    except Exception as exc:
        raise ProbeError(f"cannot read column {column!r} of {path}: {type(exc).__name__}: {exc}") from None
    if column not in table.column_names:
        raise ProbeError(f"column {column!r} is not in {path}")
    col = table.column(column)
    if last is not None and len(col) > last:
        col = col.slice(len(col) - last)
    return np.asarray(col.to_numpy())


class DriftProbe(Probe):
    """A drift statistic between a baseline and the current window of one column."""

    unit: ClassVar[str] = ""

    class Spec(ProbeSpec, Calibrated):
        probe: Literal["drift"] = "drift"
        path: str = Field(description="Current data: a parquet or CSV file (features or predictions).")
        column: str = Field(description="Column to compare, e.g. 'amount' or 'prediction'.")
        reference: str | None = Field(
            None, description="Baseline file; default: the data as first measured (baseline phase)."
        )
        statistic: Literal["psi", "ks", "wasserstein", "jensen_shannon"] = Field(
            "psi", description="psi, ks (statistic D), wasserstein (normed by reference sd), jensen_shannon."
        )
        bins: int | Literal["sturges"] = Field(10, description="PSI bins: reference-quantile count or 'sturges'.")
        last: int | None = Field(None, ge=1, description="Use only the last N rows of the current file.")
        min_size: int = Field(100, ge=1, description="Smallest window (rows) worth judging.")

    spec: Spec

    def __init__(self, spec: ProbeSpec, ctx: Any) -> None:
        super().__init__(spec, ctx)
        self._reference: Any = None
        self._calibrator: Any = None
        if self.spec.false_alarm is not None:
            from mlchaos.drift_calibration import Calibrator

            self._calibrator = Calibrator(self.spec.statistic, self.spec.false_alarm, bins=self.spec.bins,
                                          draws=self.spec.draws, min_size=self.spec.min_size)

    def _learn_reference(self) -> Measurement | None:
        """Read the reference: once from a file, or the whole column while the baseline lasts."""
        from mlchaos import drift

        s = self.spec
        if self._reference is not None and (s.reference is not None or self.ctx.phase != "baseline"):
            return None
        ref_values = read_column(s.reference or s.path, s.column)
        if self._calibrator is not None:
            self._calibrator.set_reference(ref_values)
        numeric = ref_values.dtype.kind in "fiub"
        if numeric and s.statistic != "jensen_shannon" and s.bins != "sturges":
            try:
                self._reference = drift.Reference(ref_values, bins=int(s.bins), min_size=s.min_size)
            except ValueError as exc:
                return Measurement(None, insufficient=str(exc))
        else:
            self._reference = ref_values
        return None

    def _measure_sync(self) -> Measurement:
        import numpy as np

        from mlchaos import drift

        s = self.spec
        early = self._learn_reference()
        if early is not None:
            return early
        current = read_column(s.path, s.column, s.last)
        ref = self._reference
        try:
            if s.statistic == "psi":
                value = drift.psi(ref, current, bins=s.bins, min_size=s.min_size)
            elif s.statistic == "jensen_shannon":
                ref_raw = ref.sorted if isinstance(ref, drift.Reference) else ref
                value = drift.jensen_shannon(ref_raw, current, min_size=s.min_size)
            elif isinstance(ref, drift.Reference) or np.asarray(ref).dtype.kind in "fiub":
                fn = drift.ks if s.statistic == "ks" else drift.wasserstein
                value = fn(ref, current, min_size=s.min_size)
            else:
                raise ProbeError(f"{s.statistic} needs a numeric column; {s.column!r} is not")
        except ValueError as exc:
            return Measurement(None, insufficient=str(exc), samples=int(current.size))
        detail: dict[str, Any] = {"statistic": s.statistic, "column": s.column}
        if self._calibrator is None:
            return Measurement(float(value), detail=detail, samples=int(current.size))
        try:
            cal = self._calibrator.threshold(int(current.size))
        except ValueError as exc:
            return Measurement(None, insufficient=f"cannot calibrate: {exc}", samples=int(current.size))
        detail.update(value=float(value), threshold=cal.threshold, calibration=cal.to_dict())
        return Measurement(float(value) / max(cal.threshold, 1e-12), detail=detail, samples=int(current.size))

    async def measure(self) -> Measurement:
        return await asyncio.to_thread(self._measure_sync)
