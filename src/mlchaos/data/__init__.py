"""Data corruption for ML systems (public API).

``corrupt(data, kind, columns=..., fraction=..., seed=..., **params) -> (data, mask)``
breaks pandas DataFrames, Arrow Tables and RecordBatches (and parquet/CSV
files through them) the way production breaks them, vectorised, reproducible
from a seed, and always returns an :class:`ErrorMask` saying which cells
changed.  See docs/data.md for every kind and its parameters.
"""

from __future__ import annotations

from mlchaos.data.core import KINDS, corrupt
from mlchaos.data.files import corrupt_file, read_table, write_table
from mlchaos.data.mask import ErrorMask
from mlchaos.data.selection import select_rows

__all__ = ["KINDS", "ErrorMask", "corrupt", "corrupt_file", "read_table", "select_rows", "write_table"]
