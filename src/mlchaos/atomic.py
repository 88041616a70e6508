"""Write a file so that a reader never sees half of it: the one way mlchaos does it.

A temporary file beside the destination (same directory, so same file system),
written in full, then renamed over the destination: ``rename(2)`` is atomic on
POSIX, so every reader sees the old content or the new, never a torn mix.  A
failed or interrupted write removes its temporary file and leaves the
destination untouched.

``durable`` adds the fsyncs that make the new content survive a machine crash,
not only a process crash (the page cache outlives ``kill -9`` anyway): the file
before the rename, the directory after it.  Write-ahead records need that; a
lab's status file does not.

This module is neutral on purpose: the engine, the lab, the proxy, the
failpoints and the data faults all use it, and the lab, proxy, load and spec
packages may not import :mod:`mlchaos.engine`.  It imports nothing of mlchaos.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["fsync_dir", "replacing", "write_bytes_atomic", "write_json_atomic", "write_text_atomic"]


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new name in ``directory`` durable (POSIX needs the directory itself synced)."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fresh_temp(path: Path, mode: int | None) -> Path:
    """Create an empty, unique temporary file beside ``path`` (never following a planted symlink).

    Without ``mode`` it gets the permissions a plain ``open(path, "w")`` would
    (0666 less the umask); with one, exactly that mode, whatever the umask.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, 0o666 if mode is None else mode)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return tmp


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing(path: str | os.PathLike[str], *, staging: str | os.PathLike[str] | None = None,
              durable: bool = False, mode: int | None = None, mkdir: bool = False) -> Iterator[Path]:
    """Yield a temporary path to fill; on a clean exit it is renamed over ``path``.

    For writers that do not produce the bytes themselves (``shutil.copyfile``,
    ``pyarrow.parquet.write_table``, ``os.symlink``): they write to the yielded
    path by name.  On an exception the temporary file is removed and ``path``
    is left as it was.

    ``staging`` names the temporary path instead of a fresh unique one: for a
    fault whose write-ahead record must know, before the write starts, what a
    crash half way would leave behind.  It is not created here (the caller
    makes it, e.g. as a symlink), and whatever is at that name is the caller's.
    ``mkdir`` creates the destination's parent directories first.
    """
    dest = Path(path)
    if mkdir:
        dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(staging) if staging is not None else _fresh_temp(dest, mode)
    try:
        yield tmp
        if durable and not tmp.is_symlink():
            _fsync_file(tmp)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(dest.parent)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, *, durable: bool = False,
                       mode: int | None = None, mkdir: bool = False) -> None:
    """Replace ``path`` with ``data`` atomically (see the module docstring for ``durable``)."""
    with replacing(path, durable=durable, mode=mode, mkdir=mkdir) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_text_atomic(path: str | os.PathLike[str], text: str, *, durable: bool = False,
                      mode: int | None = None, mkdir: bool = False) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically."""
    write_bytes_atomic(path, text.encode("utf-8"), durable=durable, mode=mode, mkdir=mkdir)


def write_json_atomic(path: str | os.PathLike[str], data: Any, *, durable: bool = False,
                      mode: int | None = None, mkdir: bool = False, **dumps: Any) -> None:
    """Replace ``path`` with ``json.dumps(data, **dumps)`` atomically."""
    write_text_atomic(path, json.dumps(data, **dumps), durable=durable, mode=mode, mkdir=mkdir)
