"""The built-in lab as a target: its systems' URLs, replica PIDs, fault proxies and batch runs.

An experiment names a lab system (``serving``, ``realtime``, ``batch``,
``recommender``, ``llm``) and gets, with no ports written anywhere: the system's entry
point for load and HTTP probes, the PIDs of its processes for process faults
(``select: "serving-[0-9]"`` picks the replicas), the control API of the
fault proxy the lab keeps on the system's dependency call (network faults
drive it), and a ``resolve_path`` for files under the lab directory.

The batch system has no long-lived process: it is a daily job.  With
``batch_every`` the target runs it on that cadence for the whole experiment
(its workload, as load is for a service), and journals each run's outcome,
so probes can judge what it wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from mlchaos.plugin import Target, TargetError, TargetSpec
from mlchaos.spec.types import Duration

_ENTRY = {"serving": "serving-lb", "realtime": "fraud", "recommender": "recommender", "llm": "llm-gateway"}
_PROXY = {"realtime": "features-proxy", "recommender": "embedding-proxy", "llm": "llm-primary-proxy"}


def lab_dir_for(spec: Any, ctx: Any) -> Path:
    """The lab directory a fault or probe acts on: its spec's ``lab_dir``; else the directory of its target
    when that is a ``lab`` target; else the default (``$MLCHAOS_LAB_DIR``).

    So ``target: {platform: lab, system: serving, lab_dir: ...}`` is enough.  Here, with the lab target, so
    that faults and probes share one rule without importing each other.
    """
    from mlchaos.lab.paths import resolve_lab_dir

    if getattr(spec, "lab_dir", None):
        return resolve_lab_dir(spec.lab_dir)
    try:
        target = ctx.target(spec.target)
    except Exception:  # no such target, or a context without targets
        target = None
    lab = getattr(target, "lab", None)
    root = getattr(getattr(lab, "paths", None), "root", None)
    return Path(root) if root is not None else resolve_lab_dir(None)


class LabTargetSpec(TargetSpec):
    platform: Literal["lab"] = "lab"
    system: Literal["serving", "realtime", "batch", "recommender", "llm"] = Field(description="Which lab system.")
    lab_dir: str | None = Field(None, description="Lab directory (default: $MLCHAOS_LAB_DIR or the user state dir).")
    entry: str | None = Field(None, description="Service whose URL is the base URL (default: the system's entry).")
    variant: str | None = Field(None, description="Refuse to run unless the system runs this variant.")
    batch_every: Duration | None = Field(None, description="batch: run the pipeline this often during the run.")


class LabTarget(Target):
    """A system of the running lab (``mlchaos lab up``)."""

    Spec = LabTargetSpec
    spec: LabTargetSpec

    def __init__(self, spec: Any, ctx: Any) -> None:
        super().__init__(spec, ctx)
        from mlchaos.lab import Lab

        self.lab = Lab(spec.lab_dir)
        self._status: dict[str, Any] = {}
        self._batch: asyncio.Task[None] | None = None
        self._batch_stop = asyncio.Event()
        self.batch_runs: list[dict[str, Any]] = []

    def _refresh(self) -> dict[str, Any]:
        try:
            self._status = {s.name: s for s in self.lab.status()}
        except Exception as exc:
            raise TargetError(f"cannot read the lab in {self.lab.paths.root}: {exc}") from None
        return self._status

    async def preflight(self) -> dict[str, Any]:
        if not self.lab.is_up():
            raise TargetError(f"no lab running in {self.lab.paths.root}: run 'mlchaos lab up {self.spec.system}'")
        status = await asyncio.to_thread(self._refresh)
        mine = [s for s in status.values() if s.system == self.spec.system]
        if not mine:
            raise TargetError(f"the lab does not run the {self.spec.system!r} system: "
                              f"run 'mlchaos lab up {self.spec.system}'")
        not_ready = [s.name for s in mine if not s.ready]
        if not_ready:
            raise TargetError(f"lab services not ready: {', '.join(not_ready)}")
        variant = mine[0].variant
        if self.spec.variant and variant != self.spec.variant:
            raise TargetError(f"the lab's {self.spec.system} runs variant {variant!r}, the experiment wants "
                              f"{self.spec.variant!r} (mlchaos lab variant {self.spec.variant} {self.spec.system})")
        return {"system": self.spec.system, "variant": variant, "lab": str(self.lab.paths.root),
                "services": {s.name: {"pid": s.pid, "url": s.url, "model_version": s.model_version} for s in mine}}

    async def start(self) -> None:
        if self.spec.system == "batch" and self.spec.batch_every:
            self._batch = asyncio.create_task(self._batch_loop(self.spec.batch_every))

    async def _batch_loop(self, every: float) -> None:
        while True:
            try:
                result = await asyncio.to_thread(self.lab.run_batch)
            except Exception as exc:
                result = {"status": "error", "error": str(exc)}
            self.batch_runs.append(result)
            self.ctx.log("batch-run", status=result.get("status"), run_id=result.get("run_id"),
                         output=result.get("output"), error=result.get("error"))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._batch_stop.wait(), every)
            if self._batch_stop.is_set():
                return

    async def stop(self) -> None:
        # let a batch run in flight finish: cancelling the task would leave its process running
        # (and writing) after the experiment, into whatever runs next
        if self._batch is not None:
            self._batch_stop.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._batch), 150)
            except TimeoutError:
                self._batch.cancel()

    def url(self, path: str = "") -> str:
        name = self.spec.entry or _ENTRY.get(self.spec.system)
        if name is None:
            raise TargetError(f"the lab's {self.spec.system} system has no HTTP entry point")
        svc = (self._status or self._refresh()).get(name)
        if svc is None or not svc.url:
            raise TargetError(f"lab service {name!r} is not running")
        if path.startswith(("http://", "https://")):
            return path
        return svc.url.rstrip("/") + ("/" + path.lstrip("/") if path else "")

    def pids(self, selector: str | None = None) -> list[int]:
        """PIDs of the system's processes; ``selector`` is a glob on service names (``serving-[0-9]``)."""
        status = self._refresh()  # replicas restart with new PIDs: always read them fresh
        out = []
        for s in status.values():
            if s.pid is None or s.system != self.spec.system:
                continue
            if selector is None and s.role not in ("replica", "service"):
                continue
            if selector is not None and not fnmatch.fnmatch(s.name, selector):
                continue
            out.append(int(s.pid))
        return out

    def footprint(self) -> list[int]:
        """Every process of the lab (supervisor, load balancers, proxies too): the system as deployed."""
        try:
            return list(self.lab.pids().values())
        except Exception:  # a lab going down meanwhile
            return []

    def proxy_control_url(self) -> str | None:
        """The control API of the fault proxy on this system's dependency call."""
        name = _PROXY.get(self.spec.system)
        svc = (self._status or self._refresh()).get(name) if name else None
        return getattr(svc, "control_url", None)

    def resolve_path(self, path: str) -> Path:
        """A path relative to the lab directory (e.g. ``batch/runs/*/predictions.parquet``)."""
        p = Path(path)
        return p if p.is_absolute() else self.lab.paths.root / p
