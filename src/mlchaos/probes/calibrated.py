"""The two fields that turn a drift statistic into a calibrated one, shared by the probes that offer it.

``drift`` (a column against its reference) and ``predictions`` (psi/ks/... against the baseline's
answers) both calibrate through :mod:`mlchaos.drift_calibration`; the fields, bounds and wording live
here once so that the two cannot drift apart.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from mlchaos.spec.types import Percent


class Calibrated(BaseModel):
    """``false_alarm`` and ``draws``, mixed into a probe's spec."""

    false_alarm: Percent | None = Field(
        None, gt=0, le=0.5,
        description="Calibrate the threshold from the reference (the baseline's values) so that a window "
                    "without drift exceeds it with this probability (e.g. '1%'); the value is then statistic / "
                    "threshold, so write max: 1 (see mlchaos.drift_calibration). Default: the raw statistic, "
                    "for a fixed threshold of your own.")
    draws: int | None = Field(None, ge=19, le=100_000, description="Calibration draws; default about 20 / false_alarm.")
