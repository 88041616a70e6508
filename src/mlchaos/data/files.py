"""Parquet and CSV files through the same kernels.

Files are read whole into an Arrow table (format chosen by suffix), corrupted,
and written to a *new* path; writing goes to a temporary file in the
destination directory and is renamed into place, so a reader never sees half
a file.  The original is never edited here (the ``file-corrupt`` fault swaps
copies and keeps a backup).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa

from mlchaos.atomic import replacing
from mlchaos.data.mask import ErrorMask

__all__ = ["corrupt_file", "file_format", "read_table", "write_table"]


def file_format(path: str | os.PathLike[str]) -> str:
    suffixes = [s.lower() for s in Path(path).suffixes]
    if ".parquet" in suffixes or ".pq" in suffixes:
        return "parquet"
    if ".csv" in suffixes:
        return "csv"
    raise ValueError(f"path: cannot tell the format of {os.fspath(path)!r} (expected .parquet or .csv)")


def read_table(path: str | os.PathLike[str]) -> pa.Table:
    fmt = file_format(path)
    if not Path(path).is_file():
        raise ValueError(f"path: no such file {os.fspath(path)!r}")
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path)
    import pyarrow.csv as pacsv

    return pacsv.read_csv(path)


def write_table(table: pa.Table, path: str | os.PathLike[str], fmt: str | None = None) -> None:
    """Write atomically (:func:`mlchaos.atomic.replacing`): readers see the old table or the new one."""
    fmt = fmt or file_format(path)
    dest = Path(path)
    with replacing(dest) as tmp:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, str(tmp))
        else:
            import pyarrow.csv as pacsv

            pacsv.write_csv(table, str(tmp))


def corrupt_file(src: str | os.PathLike[str], dst: str | os.PathLike[str], kind: str, **kwargs: Any) -> ErrorMask:
    """Write a corrupted copy of ``src`` to ``dst`` (same format); return the mask."""
    from mlchaos.data.core import corrupt

    if Path(src).resolve() == Path(dst).resolve():
        raise ValueError("dst must differ from src: the original is never edited in place")
    table, mask = corrupt(read_table(src), kind, **kwargs)
    write_table(table, dst, file_format(src))
    return mask
