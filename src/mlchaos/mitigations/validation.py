"""Validation gate: check a batch against a Pandera schema before it reaches the model.

The naive pipeline "soldiers on" through nulls and malformed values and writes
wrong predictions; a gate halts the run with a report of every failing check
(``lazy=True`` collects them all) so nothing wrong is written.  Schemas are
plain ``pandera.pandas.DataFrameSchema`` objects; :func:`fraud_schema`-style
builders in user code stay the single source of truth for what "valid" means.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass
class ValidationReport:
    """What a gate found: ``ok``, counts, and failure cases (column, check, count, examples)."""

    ok: bool
    rows: int
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed_checks(self) -> int:
        return len(self.failures)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "failed_checks": self.failed_checks,
            "failures": self.failures,
        }

    def summary(self) -> str:
        if self.ok:
            return f"validation passed ({self.rows} rows)"
        parts = [f"{f['column']}: {f['check']} ({f['count']} rows)" for f in self.failures]
        return f"validation failed ({self.rows} rows): " + "; ".join(parts)


class ValidationFailed(Exception):
    """Raised by :meth:`ValidationGate.check` when the batch does not pass; carries the report."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.summary())
        self.report = report


class ValidationGate:
    """Run a Pandera schema over a DataFrame; return a report or raise :class:`ValidationFailed`."""

    def __init__(self, schema: Any) -> None:
        self.schema = schema

    def report(self, frame: pd.DataFrame) -> ValidationReport:
        from pandera.errors import SchemaError, SchemaErrors

        try:
            self.schema.validate(frame, lazy=True)
        except SchemaErrors as exc:
            return ValidationReport(False, len(frame), _failures(exc.failure_cases))
        except SchemaError as exc:  # pragma: no cover - lazy=True raises SchemaErrors
            return ValidationReport(
                False, len(frame), [{"column": None, "check": str(exc), "count": 1, "examples": []}]
            )
        return ValidationReport(True, len(frame))

    def check(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Return ``frame`` unchanged when valid; raise :class:`ValidationFailed` otherwise."""
        rep = self.report(frame)
        if not rep.ok:
            raise ValidationFailed(rep)
        return frame


def _failures(cases: pd.DataFrame) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for (column, check), grp in cases.groupby(["column", "check"], dropna=False, sort=True):
        examples = [None if pd.isna(v) else str(v) for v in grp["failure_case"].head(5).tolist()]
        out.append(
            {
                "column": None if pd.isna(column) else str(column),
                "check": str(check),
                "count": len(grp),
                "examples": examples,
            }
        )
    return out
