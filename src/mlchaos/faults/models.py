"""Model faults for the engine: serve another model, or a model file cut short.

Like every file fault, these swap rather than edit (:mod:`mlchaos.faults.swap`):
the model the service loads is kept under a backup name and put back by
``revert`` from the undo record alone.  A symlinked model is repointed
atomically instead, and its old target is the undo record.
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
from mlchaos.faults.swap import SwappedFileFault, backup_path, restore_file, staged_path, swap_file, swap_plan
from mlchaos.plugin import Applied, Fault, FaultError, FaultSpec
from mlchaos.spec.types import Percent

if TYPE_CHECKING:
    from mlchaos.contract.lease import Lease

__all__ = ["ModelSwap", "ModelTruncate"]


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
            backup = backup_path(path, tag)
            if backup.exists():
                raise FaultError(f"backup {backup} already exists; refusing to overwrite it")
            staged = staged_path(path, tag)
            shutil.copytree(repl, staged, symlinks=True)
            os.rename(path, backup)
            os.rename(staged, path)
            return {"mode": "dir", "path": str(path), "backup": str(backup), "staged": str(staged)}

        def write(tmp: Path) -> None:
            shutil.copy2(repl, tmp)

        return {"mode": "file", **swap_file(path, write, tag)}

    async def intent(self, lease: Lease) -> dict[str, Any]:
        """The mode and names the swap will use; for a symlink, the target it points at now."""
        path = Path(self.spec.path)
        if path.is_symlink():
            return {"mode": "symlink", "path": str(path), "target": os.readlink(path),
                    "staged": str(path.with_name(f".{path.name}.mlchaos-link-{lease.id}"))}
        return {"mode": "dir" if path.is_dir() else "file", **swap_plan(path, lease.id)}

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
            restore_file(undo)


class ModelTruncate(SwappedFileFault):
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
        return swap_file(path, write, tag)

    async def intent(self, lease: Lease) -> dict[str, Any]:
        return swap_plan(Path(self.spec.path), lease.id)

    async def inject(self, lease: Lease) -> Applied:
        planned = await self.preflight()
        undo = await asyncio.to_thread(self._inject_sync, lease.id)
        self._undo = undo
        return Applied(targets=[f"model:{self.spec.path}"], planned=planned,
                       actual={"size": self._sizes[0], "kept": self._sizes[1]}, undo=undo)

