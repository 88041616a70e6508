"""Data faults for the engine: a failpoint armed in the user's code, a corrupted copy of a data file.

Every fault here follows one rule from the product: never edit the user's
only copy.  A data file is swapped, not edited (:mod:`mlchaos.faults.swap`:
the original kept under a backup name, put back by ``revert`` from the undo
record alone, after a runner crash too, by the watchdog or ``mlchaos stop``).
A failpoint needs no undo beyond disarming: its arming record carries its own
lease, so it lapses by itself if the runner stops renewing it, and its arming
id is chosen in ``intent``, before it is armed.

Model faults (a swapped or truncated model) are :mod:`mlchaos.faults.models`.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from mlchaos.faults.swap import SwappedFileFault, swap_file, swap_plan
from mlchaos.plugin import Applied, Fault, FaultError, FaultSpec
from mlchaos.spec.types import Percent

if TYPE_CHECKING:
    from mlchaos.contract.lease import Lease

__all__ = ["FailpointFault", "FileCorrupt"]


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
        from mlchaos.failpoints import _check_name, failpoint_dir

        try:
            _check_name(self.spec.point)
        except ValueError as exc:
            raise FaultError(str(exc)) from None
        _check_corruption(self.spec.kind, self.spec.params, allow_raise=True)
        return {"failpoint": self.spec.point, "kind": self.spec.kind, "fraction": self.spec.fraction,
                "directory": str(failpoint_dir(self.spec.directory))}

    async def intent(self, lease: Lease) -> dict[str, Any]:
        """The arming's id, chosen ahead: ``revert`` disarms this arming only, armed or not yet."""
        from mlchaos.failpoints import failpoint_dir

        self._planned_lease = uuid.uuid4().hex
        return {"name": self.spec.point, "directory": str(failpoint_dir(self.spec.directory)),
                "lease_id": self._planned_lease}

    async def inject(self, lease: Lease) -> Applied:
        from mlchaos import failpoint as fp
        from mlchaos.failpoints import failpoint_dir

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
        from mlchaos.failpoints import renew

        if self._lease_id is None:
            return
        try:
            renew(self.spec.point, lease.ttl, directory=self.spec.directory, lease_id=self._lease_id)
        except ValueError as exc:
            raise FaultError(str(exc)) from None

    async def observed(self) -> dict[str, Any]:
        from mlchaos.failpoints import effects

        if self._lease_id is None:
            return {}
        return summarize_effects(effects(self.spec.point, self._lease_id, directory=self.spec.directory))

    async def remove(self) -> None:
        if self._lease_id is not None:
            self.revert({"name": self.spec.point, "directory": self.spec.directory, "lease_id": self._lease_id})

    @classmethod
    def revert(cls, undo: dict[str, Any]) -> None:
        from mlchaos.failpoints import disarm

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



# -- file corruption -------------------------------------------------------------------------
class FileCorrupt(SwappedFileFault):
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

        return swap_file(path, write, tag)

    async def intent(self, lease: Lease) -> dict[str, Any]:
        return swap_plan(Path(self.spec.path), lease.id)

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

