"""ML data and model faults for the engine: failpoints, corrupted files, swapped or truncated models.

Every fault here follows one rule from the product: never edit the user's
only copy.  Files and models are swapped, not edited: the original is kept
under a backup name in the same directory (a hard link where possible, so
it costs nothing and the swap is a single atomic ``rename``), the backup path
goes in the undo record, and ``revert`` puts it back from that record alone
(after a runner crash, by the watchdog or ``mlchaos stop``).  A failpoint
needs no undo beyond disarming: its arming record carries its own lease, so
it lapses by itself if the runner stops renewing it.

Every fault here plans its undo record in ``intent`` before touching
anything (the engine writes it ahead): the backup and staging names derive
from the lease id, the failpoint's arming id is chosen ahead.  ``revert``
accepts that plan at any point of the injection: no backup yet means
nothing was swapped; a backup beside an unswapped original puts the same
bytes back; leftover staging files are removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from mlchaos.atomic import replacing
from mlchaos.plugin import Applied, Fault, FaultError, FaultSpec
from mlchaos.spec.types import Percent

if TYPE_CHECKING:
    from mlchaos.contract.lease import Lease

__all__ = ["FailpointFault", "FileCorrupt", "ModelSwap", "ModelTruncate"]

BACKUP_TAG = ".mlchaos-backup-"


class _CorruptionFields(FaultSpec):
    kind: str = Field(description="Corruption kind of mlchaos.data.corrupt, e.g. 'nulls', 'typos', 'scale'.")
    columns: list[str] | str | None = Field(None, description="Columns to corrupt (kind-dependent).")
    fraction: Percent = Field(0.1, description="Share of rows to corrupt: '5%' or 0.05.")
    seed: int | None = Field(None, ge=0, description="Seed; the same seed corrupts the same rows.")
    params: dict[str, Any] = Field(default_factory=dict, description="Kind parameters, e.g. {factor: 1000}.")


def _check_corruption(kind: str, params: dict[str, Any], *, allow_raise: bool = False) -> None:
    if allow_raise and kind == "raise":
        return
    from mlchaos.data.core import _resolve_kind

    try:
        spec = _resolve_kind(kind)
    except ValueError as exc:
        raise FaultError(str(exc)) from None
    unknown = set(params) - spec.params - {"selection", "where", "given", "quantiles"}
    if unknown:
        raise FaultError(f"params: unknown parameter {sorted(unknown)[0]!r} for kind {spec.name!r}")


# -- failpoint -------------------------------------------------------------------------------
class FailpointFault(Fault):
    """Arm a named failpoint in user code (``mlchaos.failpoint(name, data)``) under a lease."""

    class Spec(_CorruptionFields):
        fault: Literal["failpoint"] = "failpoint"
        point: str = Field(description="Failpoint name used in the code, e.g. 'batch.after_extract'.")
        kind: str = Field(description="Corruption kind, or 'raise' to make the failpoint raise.")
        directory: str | None = Field(
            None, description="Failpoint directory shared with the pipeline (default: $MLCHAOS_FAILPOINT_DIR "
            "or <state dir>/failpoints)."
        )

    spec: Spec

    def __init__(self, spec: FaultSpec, ctx: Any) -> None:
        super().__init__(spec, ctx)
        self._lease_id: str | None = None

    async def preflight(self) -> dict[str, Any]:
        from mlchaos.failpoint import _check_name, failpoint_dir

        try:
            _check_name(self.spec.point)
        except ValueError as exc:
            raise FaultError(str(exc)) from None
        _check_corruption(self.spec.kind, self.spec.params, allow_raise=True)
        return {"failpoint": self.spec.point, "kind": self.spec.kind, "fraction": self.spec.fraction,
                "directory": str(failpoint_dir(self.spec.directory))}

    async def intent(self, lease: Lease) -> dict[str, Any]:
        """The arming's id, chosen ahead: ``revert`` disarms this arming only, armed or not yet."""
        from mlchaos.failpoint import failpoint_dir

        self._planned_lease = uuid.uuid4().hex
        return {"name": self.spec.point, "directory": str(failpoint_dir(self.spec.directory)),
                "lease_id": self._planned_lease}

    async def inject(self, lease: Lease) -> Applied:
        from mlchaos import failpoint as fp
        from mlchaos.failpoint import failpoint_dir

        await self.preflight()
        try:
            rec = fp.arm(self.spec.point, self.spec.kind, columns=self.spec.columns, fraction=self.spec.fraction,
                         seed=self.spec.seed, ttl=lease.ttl, directory=self.spec.directory,
                         lease_id=getattr(self, "_planned_lease", None), **self.spec.params)
        except (ValueError, OSError) as exc:
            raise FaultError(f"could not arm failpoint {self.spec.point!r}: {exc}") from None
        self._lease_id = rec["lease_id"]
        directory = str(failpoint_dir(self.spec.directory))
        return Applied(
            targets=[f"failpoint:{self.spec.point}"],
            planned={"kind": self.spec.kind, "columns": self.spec.columns, "fraction": self.spec.fraction},
            actual={"armed_lease": rec["lease_id"], "expires_at": rec["expires_at"]},
            undo={"name": self.spec.point, "directory": directory, "lease_id": rec["lease_id"]},
        )

    async def renew(self, lease: Lease) -> None:
        from mlchaos.failpoint import renew

        if self._lease_id is None:
            return
        try:
            renew(self.spec.point, lease.ttl, directory=self.spec.directory, lease_id=self._lease_id)
        except ValueError as exc:
            raise FaultError(str(exc)) from None

    async def observed(self) -> dict[str, Any]:
        from mlchaos.failpoint import effects

        if self._lease_id is None:
            return {}
        return summarize_effects(effects(self.spec.point, self._lease_id, directory=self.spec.directory))

    async def remove(self) -> None:
        if self._lease_id is not None:
            self.revert({"name": self.spec.point, "directory": self.spec.directory, "lease_id": self._lease_id})

    @classmethod
    def revert(cls, undo: dict[str, Any]) -> None:
        from mlchaos.failpoint import disarm

        if undo.get("name"):
            disarm(str(undo["name"]), directory=undo.get("directory"), lease_id=undo.get("lease_id"))


def summarize_effects(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over a failpoint's effects log: what the report shows and the verdict checks."""
    errors = [e["error"] for e in entries if e.get("error")]
    return {
        "hits": len(entries),
        "seen": sum(int(e.get("rows", 0)) for e in entries),
        "affected": sum(int(e.get("cells_changed", 0)) + int(e.get("rows_inserted", 0)) for e in entries)
        + sum(1 for e in entries if e.get("raised")),
        "rows_changed": sum(int(e.get("rows_changed", 0)) for e in entries),
        "errors": errors[:5],
    }


# -- atomic swap with a backup ---------------------------------------------------------------
def _backup_path(path: Path, tag: str) -> Path:
    return path.with_name(f"{path.name}{BACKUP_TAG}{tag}")


def _fingerprint(path: Path) -> list[int]:
    st = os.lstat(path)
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def _keep_original(path: Path, backup: Path) -> None:
    """A second name for the original (hard link), or a full copy when links are impossible."""
    try:
        os.link(path, backup)
    except OSError:
        with replacing(backup, staging=backup.with_name(backup.name + ".tmp")) as tmp:
            shutil.copy2(path, tmp)


def _staged_path(path: Path, tag: str) -> Path:
    return path.with_name(f".{path.name}.mlchaos-new-{tag}")


def _swap_plan(path: Path, tag: str) -> dict[str, Any]:
    """The undo record of a swap before it starts: where the backup and the staged copy will be."""
    return {"path": str(path), "backup": str(_backup_path(path, tag)), "staged": str(_staged_path(path, tag))}


def _swap_file(path: Path, write_new: Any, tag: str) -> dict[str, Any]:
    """Keep ``path`` as a backup, write the replacement beside it, rename it over ``path``."""
    backup = _backup_path(path, tag)
    if backup.exists():
        raise FaultError(f"backup {backup} already exists; refusing to overwrite it")
    with replacing(path, staging=_staged_path(path, tag)) as tmp:
        write_new(tmp)
        _keep_original(path, backup)
    return {"path": str(path), "backup": str(backup), "written": _fingerprint(path)}


def _drop_staged(undo: dict[str, Any]) -> None:
    """Remove what a swap killed half way left beside the file (staged copy, half-made backup copy)."""
    for name in (undo.get("staged"), str(undo["backup"]) + ".tmp"):
        if name:
            with contextlib.suppress(OSError):
                Path(name).unlink()


def _restore_file(undo: dict[str, Any]) -> None:
    """Put the backup back over the file.  From an intent (no ``written``) that is also right half way:
    a backup beside the unswapped original is the same file, so renaming it back changes no byte."""
    path, backup = Path(undo["path"]), Path(undo["backup"])
    _drop_staged(undo)
    if not backup.exists():
        return  # already restored, or the swap never began
    if path.exists() and os.path.samefile(path, backup):
        backup.unlink()  # killed between the link and the swap: rename(2) of one file over itself does nothing
        return
    if path.exists() and undo.get("written") and _fingerprint(path) != list(undo["written"]):
        raise FaultError(
            f"{path} changed since the fault was injected; not overwriting it. The original is kept at {backup}"
        )
    os.replace(backup, path)


# -- file corruption -------------------------------------------------------------------------
class FileCorrupt(Fault):
    """Swap in a corrupted copy of a parquet/CSV file; the original comes back on removal."""

    class Spec(_CorruptionFields):
        fault: Literal["file-corrupt"] = "file-corrupt"
        path: str = Field(description="The parquet or CSV file the system under test reads.")

    spec: Spec

    def __init__(self, spec: FaultSpec, ctx: Any) -> None:
        super().__init__(spec, ctx)
        self._undo: dict[str, Any] | None = None
        self._summary: dict[str, Any] = {}

    async def preflight(self) -> dict[str, Any]:
        from mlchaos.data.files import file_format

        path = Path(self.spec.path)
        if not path.is_file():
            raise FaultError(f"path: no such file {path}")
        try:
            fmt = file_format(path)
        except ValueError as exc:
            raise FaultError(str(exc)) from None
        if not os.access(path.parent, os.W_OK):
            raise FaultError(f"no write permission in {path.parent} (needed for the swap and the backup)")
        _check_corruption(self.spec.kind, self.spec.params)
        return {"path": str(path), "format": fmt, "kind": self.spec.kind, "fraction": self.spec.fraction}

    def _inject_sync(self, tag: str) -> dict[str, Any]:
        from mlchaos.data import corrupt, read_table, write_table
        from mlchaos.data.files import file_format

        path = Path(self.spec.path)
        try:
            table, mask = corrupt(read_table(path), self.spec.kind, self.spec.columns, self.spec.fraction,
                                  self.spec.seed, **self.spec.params)
        except ValueError as exc:
            raise FaultError(str(exc)) from None
        self._summary = mask.summary()
        fmt = file_format(path)

        def write(tmp: Path) -> None:
            write_table(table, tmp, fmt)

        return _swap_file(path, write, tag)

    async def intent(self, lease: Lease) -> dict[str, Any]:
        return _swap_plan(Path(self.spec.path), lease.id)

    async def inject(self, lease: Lease) -> Applied:
        await self.preflight()
        undo = await asyncio.to_thread(self._inject_sync, lease.id)
        self._undo = undo
        s = self._summary
        return Applied(targets=[f"file:{self.spec.path}"],
                       planned={"kind": self.spec.kind, "fraction": self.spec.fraction},
                       actual={k: s.get(k) for k in ("rows", "rows_changed", "cells_changed", "rows_inserted",
                                                      "schema", "seed")},
                       undo=undo)

    async def observed(self) -> dict[str, Any]:
        s = self._summary
        if not s:
            return {}
        return {"seen": s.get("rows", 0), "affected": int(s.get("cells_changed", 0)) + int(s.get("rows_inserted", 0))
                + (1 if s.get("schema") else 0)}

    async def remove(self) -> None:
        if self._undo is not None:
            self.revert(self._undo)

    @classmethod
    def revert(cls, undo: dict[str, Any]) -> None:
        if undo.get("path") and undo.get("backup"):
            _restore_file(undo)


# -- model faults ----------------------------------------------------------------------------
class ModelSwap(Fault):
    """Serve another (older) model: repoint a symlink, or swap a model file/directory, and restore.

    A symlink is repointed atomically.  A file is swapped atomically (the
    original kept by hard link).  A directory cannot be renamed over
    atomically: it is moved aside and the replacement moved in (two renames
    in one directory; a reader may see the path missing for microseconds).
    """

    class Spec(FaultSpec):
        fault: Literal["model-swap"] = "model-swap"
        path: str = Field(description="The model path the service loads (file, directory or symlink).")
        replacement: str = Field(description="The model to serve instead (e.g. the previous version).")

    spec: Spec

    def __init__(self, spec: FaultSpec, ctx: Any) -> None:
        super().__init__(spec, ctx)
        self._undo: dict[str, Any] | None = None

    async def preflight(self) -> dict[str, Any]:
        path, repl = Path(self.spec.path), Path(self.spec.replacement)
        if not (path.exists() or path.is_symlink()):
            raise FaultError(f"path: no such model {path}")
        if not repl.exists():
            raise FaultError(f"replacement: no such model {repl}")
        if path.resolve() == repl.resolve():
            raise FaultError("replacement is the model already served")
        mode = "symlink" if path.is_symlink() else ("dir" if path.is_dir() else "file")
        return {"path": str(path), "replacement": str(repl), "mode": mode}

    def _inject_sync(self, tag: str) -> dict[str, Any]:
        path, repl = Path(self.spec.path), Path(self.spec.replacement).resolve()
        if path.is_symlink():
            old = os.readlink(path)
            with replacing(path, staging=path.with_name(f".{path.name}.mlchaos-link-{tag}")) as tmp:
                tmp.unlink(missing_ok=True)
                os.symlink(repl, tmp, target_is_directory=repl.is_dir())
            return {"mode": "symlink", "path": str(path), "target": old, "written": str(repl)}
        if path.is_dir():
            backup = _backup_path(path, tag)
            if backup.exists():
                raise FaultError(f"backup {backup} already exists; refusing to overwrite it")
            staged = _staged_path(path, tag)
            shutil.copytree(repl, staged, symlinks=True)
            os.rename(path, backup)
            os.rename(staged, path)
            return {"mode": "dir", "path": str(path), "backup": str(backup), "staged": str(staged)}

        def write(tmp: Path) -> None:
            shutil.copy2(repl, tmp)

        return {"mode": "file", **_swap_file(path, write, tag)}

    async def intent(self, lease: Lease) -> dict[str, Any]:
        """The mode and names the swap will use; for a symlink, the target it points at now."""
        path = Path(self.spec.path)
        if path.is_symlink():
            return {"mode": "symlink", "path": str(path), "target": os.readlink(path),
                    "staged": str(path.with_name(f".{path.name}.mlchaos-link-{lease.id}"))}
        return {"mode": "dir" if path.is_dir() else "file", **_swap_plan(path, lease.id)}

    async def inject(self, lease: Lease) -> Applied:
        planned = await self.preflight()
        undo = await asyncio.to_thread(self._inject_sync, lease.id)
        self._undo = undo
        return Applied(targets=[f"model:{self.spec.path}"], planned=planned,
                       actual={"serving": str(Path(self.spec.replacement).resolve()), "mode": undo["mode"]},
                       undo=undo)

    async def observed(self) -> dict[str, Any]:
        return {"swapped": self._undo is not None}

    async def remove(self) -> None:
        if self._undo is not None:
            self.revert(self._undo)

    @classmethod
    def revert(cls, undo: dict[str, Any]) -> None:
        path = Path(undo["path"])
        mode = undo.get("mode")
        if mode == "symlink":
            if undo.get("staged"):
                with contextlib.suppress(OSError):
                    Path(undo["staged"]).unlink()
            if path.is_symlink() and os.readlink(path) == undo["target"]:
                return
            with replacing(path, staging=path.with_name(f".{path.name}.mlchaos-restore-{uuid.uuid4().hex[:8]}")) as tmp:
                os.symlink(undo["target"], tmp)
        elif mode == "dir":
            backup = Path(undo["backup"])
            if undo.get("staged"):  # a copy killed half way, or staged but never moved in
                shutil.rmtree(undo["staged"], ignore_errors=True)
            if not backup.exists():
                return
            trash = path.with_name(f".{path.name}.mlchaos-old-{uuid.uuid4().hex[:8]}")
            if path.exists():
                os.rename(path, trash)
            os.rename(backup, path)
            with contextlib.suppress(OSError):
                shutil.rmtree(trash)
        elif mode == "file":
            _restore_file(undo)


class ModelTruncate(Fault):
    """A corrupted model artifact: the file is cut short (the service must refuse to load it)."""

    class Spec(FaultSpec):
        fault: Literal["model-truncate"] = "model-truncate"
        path: str = Field(description="Model file the service loads.")
        keep: Percent = Field(0.5, description="Share of the bytes kept: '50%' or 0.5 (must be < 1).")

    spec: Spec

    def __init__(self, spec: FaultSpec, ctx: Any) -> None:
        super().__init__(spec, ctx)
        self._undo: dict[str, Any] | None = None
        self._sizes: tuple[int, int] = (0, 0)

    async def preflight(self) -> dict[str, Any]:
        path = Path(self.spec.path)
        if not path.is_file():
            raise FaultError(f"path: no such model file {path}")
        if not self.spec.keep < 1.0:
            raise FaultError("keep must be below 100% (otherwise nothing is truncated)")
        size = path.stat().st_size
        return {"path": str(path), "size": size, "keep_bytes": int(size * self.spec.keep)}

    def _inject_sync(self, tag: str) -> dict[str, Any]:
        path = Path(self.spec.path)
        size = path.stat().st_size
        keep = int(size * self.spec.keep)

        def write(tmp: Path) -> None:
            with open(path, "rb") as src, open(tmp, "wb") as dst:
                dst.write(src.read(keep))

        self._sizes = (size, keep)
        return _swap_file(path, write, tag)

    async def intent(self, lease: Lease) -> dict[str, Any]:
        return _swap_plan(Path(self.spec.path), lease.id)

    async def inject(self, lease: Lease) -> Applied:
        planned = await self.preflight()
        undo = await asyncio.to_thread(self._inject_sync, lease.id)
        self._undo = undo
        return Applied(targets=[f"model:{self.spec.path}"], planned=planned,
                       actual={"size": self._sizes[0], "kept": self._sizes[1]}, undo=undo)

    async def remove(self) -> None:
        if self._undo is not None:
            self.revert(self._undo)

    @classmethod
    def revert(cls, undo: dict[str, Any]) -> None:
        if undo.get("path") and undo.get("backup"):
            _restore_file(undo)
