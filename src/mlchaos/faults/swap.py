"""Swap a file for another, keeping the original: how the data and model faults never edit a user's only copy.

The original is kept under a backup name in the same directory (a hard link
where possible, so it costs nothing and the swap is a single atomic
``rename``); the replacement is written under a staging name beside it and
renamed over the path (:func:`mlchaos.atomic.replacing`).  Both names derive
from the lease id, so a fault's ``intent`` can plan them (:func:`swap_plan`)
before anything is touched, and :func:`restore_file` is right from that plan
at any point of the swap: no backup yet means nothing was swapped; a backup
beside an unswapped original puts the same bytes back; leftover staging files
are removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

from mlchaos.atomic import replacing
from mlchaos.plugin import Fault, FaultError

__all__ = ["BACKUP_TAG", "SwappedFileFault", "backup_path", "restore_file", "staged_path", "swap_file", "swap_plan"]

BACKUP_TAG = ".mlchaos-backup-"
"""The backup's name is ``<file><BACKUP_TAG><lease id>``, beside the file."""


def backup_path(path: Path, tag: str) -> Path:
    return path.with_name(f"{path.name}{BACKUP_TAG}{tag}")


def fingerprint(path: Path) -> list[int]:
    st = os.lstat(path)
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def keep_original(path: Path, backup: Path) -> None:
    """A second name for the original (hard link), or a full copy when links are impossible."""
    try:
        os.link(path, backup)
    except OSError:
        with replacing(backup, staging=backup.with_name(backup.name + ".tmp")) as tmp:
            shutil.copy2(path, tmp)


def staged_path(path: Path, tag: str) -> Path:
    return path.with_name(f".{path.name}.mlchaos-new-{tag}")


def swap_plan(path: Path, tag: str) -> dict[str, Any]:
    """The undo record of a swap before it starts: where the backup and the staged copy will be."""
    return {"path": str(path), "backup": str(backup_path(path, tag)), "staged": str(staged_path(path, tag))}


def swap_file(path: Path, write_new: Any, tag: str) -> dict[str, Any]:
    """Keep ``path`` as a backup, write the replacement beside it, rename it over ``path``."""
    backup = backup_path(path, tag)
    if backup.exists():
        raise FaultError(f"backup {backup} already exists; refusing to overwrite it")
    with replacing(path, staging=staged_path(path, tag)) as tmp:
        write_new(tmp)
        keep_original(path, backup)
    return {"path": str(path), "backup": str(backup), "written": fingerprint(path)}


def drop_staged(undo: dict[str, Any]) -> None:
    """Remove what a swap killed half way left beside the file (staged copy, half-made backup copy)."""
    for name in (undo.get("staged"), str(undo["backup"]) + ".tmp"):
        if name:
            with contextlib.suppress(OSError):
                Path(name).unlink()


def restore_file(undo: dict[str, Any]) -> None:
    """Put the backup back over the file.  From an intent (no ``written``) that is also right half way:
    a backup beside the unswapped original is the same file, so renaming it back changes no byte."""
    path, backup = Path(undo["path"]), Path(undo["backup"])
    drop_staged(undo)
    if not backup.exists():
        return  # already restored, or the swap never began
    if path.exists() and os.path.samefile(path, backup):
        backup.unlink()  # killed between the link and the swap: rename(2) of one file over itself does nothing
        return
    if path.exists() and undo.get("written") and fingerprint(path) != list(undo["written"]):
        raise FaultError(
            f"{path} changed since the fault was injected; not overwriting it. The original is kept at {backup}"
        )
    os.replace(backup, path)


class SwappedFileFault(Fault):
    """A fault whose whole effect is one file swapped with a backup: removed and reverted by restoring it."""

    _undo: dict[str, Any] | None = None

    async def remove(self) -> None:
        if self._undo is not None:
            self.revert(self._undo)

    @classmethod
    def revert(cls, undo: dict[str, Any]) -> None:
        if undo.get("path") and undo.get("backup"):
            restore_file(undo)
