"""The error mask: ground truth of what a corruption changed.

Why it exists: a probe (validation gate, drift check, null-rate monitor) can
only be scored if we know exactly which cells were broken.  Of the libraries
surveyed only tab-err returns one; every :func:`mlchaos.data.corrupt` call
returns an :class:`ErrorMask` so recall and precision of a probe can be
computed, and a failpoint can log how many cells it changed.

Coordinates are *positions* in the corrupted output (0 .. n_rows-1), never
pandas index labels, so the same mask works for DataFrames, Arrow tables and
record batches.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ErrorMask"]


def _empty_i64() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


@dataclasses.dataclass
class ErrorMask:
    """Which rows and cells one corruption changed, and by which fault.

    * ``cells[column]`` is a boolean array over the output rows: ``True`` where
      that cell's value differs from the input (null-aware, NaN equals NaN).
    * ``inserted`` holds output positions of rows the fault added (duplicated
      or re-emitted stale rows); ``source`` the input position each one copies.
    * ``schema`` describes column-level changes (dropped, renamed, reordered,
      added, retyped) for schema faults, which change no cell value.
    * ``seed`` is the seed actually used, so a call made with ``seed=None`` can
      still be replayed exactly.
    """

    kind: str
    n_rows: int
    cells: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    inserted: np.ndarray = dataclasses.field(default_factory=_empty_i64)
    source: np.ndarray = dataclasses.field(default_factory=_empty_i64)
    schema: dict[str, Any] = dataclasses.field(default_factory=dict)
    seed: int | None = None
    params: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def rows(self) -> np.ndarray:
        """Boolean array over output rows: any cell changed, or the row was inserted."""
        out = np.zeros(self.n_rows, dtype=bool)
        for col in self.cells.values():
            out |= col
        if self.inserted.size:
            out[self.inserted] = True
        return out

    @property
    def row_indices(self) -> np.ndarray:
        """Sorted output positions of every changed or inserted row."""
        return np.flatnonzero(self.rows)

    @property
    def n_cells_changed(self) -> int:
        return int(sum(int(np.count_nonzero(c)) for c in self.cells.values()))

    @property
    def n_rows_changed(self) -> int:
        return int(np.count_nonzero(self.rows))

    def __bool__(self) -> bool:  # "did anything change?"
        return bool(self.n_cells_changed or self.inserted.size or self.schema)

    def to_pandas(self) -> pd.DataFrame:
        """Boolean frame (output rows x changed columns), e.g. to compare with a validator's flags."""
        import pandas as pd

        return pd.DataFrame({name: col for name, col in self.cells.items()}, index=np.arange(self.n_rows))

    def to_records(self) -> pd.DataFrame:
        """Long form ``row, column, fault``: one line per changed cell or inserted row.

        Concatenating the records of several corruptions gives the
        "which fault changed which cell" table for a whole pipeline.
        """
        import pandas as pd

        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        for name, col in self.cells.items():
            idx = np.flatnonzero(col)
            rows.append(idx)
            cols.append(np.full(idx.size, name, dtype=object))
        if self.inserted.size:
            rows.append(self.inserted)
            cols.append(np.full(self.inserted.size, None, dtype=object))
        row = np.concatenate(rows) if rows else _empty_i64()
        col = np.concatenate(cols) if cols else np.zeros(0, dtype=object)
        return pd.DataFrame({"row": row, "column": col, "fault": self.kind})

    def summary(self) -> dict[str, Any]:
        """JSON-able counts (what a failpoint writes to its effects log)."""
        return {
            "kind": self.kind,
            "rows": self.n_rows,
            "rows_changed": self.n_rows_changed,
            "cells_changed": self.n_cells_changed,
            "cells_by_column": {k: int(np.count_nonzero(v)) for k, v in self.cells.items()},
            "rows_inserted": int(self.inserted.size),
            "schema": self.schema,
            "seed": self.seed,
        }
