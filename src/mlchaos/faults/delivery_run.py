"""``delivery-run``: one release of a delivery pipeline inside the fault window — the lab's fraud pipeline, or
the user's own (``pipeline: {steps: [...]}``) against the user's MLflow server.

Not a failure by itself: it is the *event* the other delivery faults break,
the way a scheduled CI job or a Kubeflow run would start.  The pipeline runs
in its own process group; removal lets it finish for ``wait`` seconds, then
kills the group; ``revert`` kills it from the undo record (checked against the
recorded start time, so a reused pid is never touched).

``registry_uri`` / ``tracking_uri`` are honoured in every step: the lab's
pipeline opens its MLflow registry there (artifacts through the server), and
a user's steps get them as ``MLFLOW_REGISTRY_URI`` / ``MLFLOW_TRACKING_URI``
(unless the pipeline's own ``env`` sets them).  Preflight only reads: the
registry answers a search, the lab serves, the programs exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from mlchaos.contract.proc import process_alive, process_start_time
from mlchaos.lab.delivery.userpipeline import UserPipeline
from mlchaos.plugin import Applied, Fault, FaultError, FaultSpec
from mlchaos.spec.types import Duration
from mlchaos.targets.lab import lab_dir_for

if TYPE_CHECKING:
    from mlchaos.contract.lease import Lease

__all__ = ["DeliveryRun"]

_MODULES = ("mlchaos.lab.delivery.pipeline", "mlchaos.lab.delivery.userpipeline")


class DeliveryRunSpec(FaultSpec):
    fault: Literal["delivery-run"] = "delivery-run"
    lab_dir: str | None = Field(None, description="Lab directory (default: $MLCHAOS_LAB_DIR or the default lab).")
    pipeline: UserPipeline | None = Field(None, description="Your own pipeline (steps: name + argv); default: "
                                          "the lab's fraud pipeline.")
    directory: str | None = Field(None, description="pipeline: the failpoint directory its steps read "
                                  "(MLCHAOS_FAILPOINT_DIR; default: $MLCHAOS_FAILPOINT_DIR or <state dir>/failpoints).")
    variant: Literal["auto", "naive", "mitigated"] = Field(
        "auto", description="The lab's pipeline: auto = the serving system's variant in the running lab.")
    registry: Literal["file", "mlflow"] = Field("file", description="The lab's pipeline: its registry backend "
                                                "(a registry_uri implies mlflow).")
    registry_uri: str | None = Field(None, description="MLflow registry URI, e.g. http://127.0.0.1:5000 (your "
                                     "server): every step registers and reads there.")
    tracking_uri: str | None = Field(None, description="MLflow tracking URI (runs, artifacts) if not registry_uri.")
    config: dict[str, Any] = Field(default_factory=dict,
                                   description="The lab's pipeline: PipelineConfig overrides, e.g. "
                                   "{timeouts: {validate: 8}}.")
    wait: Duration = Field(8.0, le=9.0, description="On removal, how long to let a still-running pipeline finish "
                           "(at most 9s: the engine gives a removal 10s; give the fault a longer `duration` for a "
                           "longer pipeline).")


class DeliveryRun(Fault):
    """Run a delivery pipeline once (a release) inside the fault window; removal stops a run still going."""

    Spec = DeliveryRunSpec
    spec: DeliveryRunSpec

    def __init__(self, spec: FaultSpec, ctx: Any) -> None:
        super().__init__(spec, ctx)
        self._proc: subprocess.Popen[bytes] | None = None
        self._run_id: str | None = None
        self._run_dir: Path | None = None

    def _registry_kind(self) -> str:
        return "mlflow" if self.spec.registry_uri or self.spec.tracking_uri else self.spec.registry

    def _variant(self, root: Path) -> str:
        if self.spec.variant != "auto":
            return self.spec.variant
        from mlchaos.lab import Lab

        v = Lab(root).state().get("variants", {}).get("serving", "naive")
        return "mitigated" if v == "mitigated" else "naive"

    def _failpoint_dir(self) -> str:
        from mlchaos.failpoints import failpoint_dir

        return str(failpoint_dir(self.spec.directory))

    async def _check_registry(self, root: Path | None) -> dict[str, Any]:
        """Read-only: a search on the registry (a local store that does not exist yet is not opened, since
        MLflow's client would create it)."""
        from mlchaos.lab.delivery.registry import local_store_missing, open_registry

        kind = self._registry_kind()
        if kind == "file" and root is None:
            return {}
        lab = root if root is not None else Path(".")
        if root is not None or self.spec.registry_uri:
            missing = local_store_missing(kind, lab, self.spec.registry_uri)
            if missing is not None:
                return {"registry": kind, "store": str(missing), "exists": False}
        try:
            reg = await asyncio.to_thread(open_registry, kind, lab, uri=self.spec.registry_uri,
                                          tracking_uri=self.spec.tracking_uri)
            checked = await asyncio.to_thread(reg.check)
        except Exception as exc:
            raise FaultError(f"model registry not usable ({self.spec.registry_uri or kind}): "
                             f"{type(exc).__name__}: {exc}") from None
        return {"registry": kind, **checked}

    async def preflight(self) -> dict[str, Any]:
        if self.spec.pipeline is not None:
            from mlchaos.lab.delivery.userpipeline import check, runs_dir

            steps = check(self.spec.pipeline)
            reg = await self._check_registry(None) if self.spec.registry_uri or self.spec.tracking_uri else {}
            return {"pipeline": steps, "runs_dir": str(runs_dir(self.spec.pipeline)),
                    "failpoint_dir": self._failpoint_dir(), **reg}
        from mlchaos.lab import Lab

        root = lab_dir_for(self.spec, self.ctx)
        lab = Lab(root)
        if not lab.is_up() or not any(s.system == "serving" for s in lab.status()):
            raise FaultError(f"the lab in {root} does not run the serving system (`mlchaos lab up serving`)")
        reg = await self._check_registry(root)
        return {"lab_dir": str(root), "variant": self._variant(root), **reg}

    async def intent(self, lease: Lease) -> dict[str, Any]:
        """The pipeline's run id, chosen ahead: with no PID yet, ``revert`` finds the process by it."""
        self._run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        return {"run_id": self._run_id}

    def _uris(self) -> dict[str, str]:
        out = {}
        if self.spec.registry_uri:
            out["MLFLOW_REGISTRY_URI"] = self.spec.registry_uri
        if self.spec.tracking_uri or self.spec.registry_uri:
            out["MLFLOW_TRACKING_URI"] = str(self.spec.tracking_uri or self.spec.registry_uri)
        return out

    async def _lab_command(self, planned: dict[str, Any]) -> tuple[list[str], Path]:
        from mlchaos.lab.delivery.layout import DeliveryPaths
        from mlchaos.lab.delivery.pipeline import bootstrap

        root = Path(planned["lab_dir"])
        kind = self._registry_kind()
        try:  # the registry must know the version serving runs before any release (a write: here, not preflight)
            planned["production"] = await asyncio.to_thread(bootstrap, root, kind, self.spec.registry_uri,
                                                            self.spec.tracking_uri)
        except Exception as exc:
            raise FaultError(f"model registry not usable: {type(exc).__name__}: {exc}") from None
        assert self._run_id is not None
        paths = DeliveryPaths(root)
        cmd = [sys.executable, "-m", "mlchaos.lab.delivery.pipeline", "--lab-dir", str(root), "--variant",
               planned["variant"], "--registry", kind, "--run-id", self._run_id]
        if self.spec.registry_uri:
            cmd += ["--registry-uri", self.spec.registry_uri]
        if self.spec.tracking_uri:
            cmd += ["--tracking-uri", self.spec.tracking_uri]
        if self.spec.config:
            cmd += ["--config", json.dumps(self.spec.config)]
        return cmd, paths.run_dir(self._run_id)

    def _user_command(self) -> tuple[list[str], Path]:
        from mlchaos.atomic import write_json_atomic
        from mlchaos.lab.delivery.userpipeline import MODULE, runs_dir

        assert self.spec.pipeline is not None and self._run_id is not None
        run_dir = runs_dir(self.spec.pipeline) / self._run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        spec_file = run_dir / "pipeline.json"
        write_json_atomic(spec_file, {"pipeline": self.spec.pipeline.model_dump(mode="json"),
                                      "failpoint_dir": self._failpoint_dir(), "uris": self._uris()}, indent=2)
        return [sys.executable, "-m", MODULE, "--spec", str(spec_file), "--run-id", self._run_id], run_dir

    async def inject(self, lease: Lease) -> Applied:
        planned = await self.preflight()
        self._run_id = self._run_id or time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        if self.spec.pipeline is not None:
            cmd, run_dir = self._user_command()
        else:
            cmd, run_dir = await self._lab_command(planned)
        self._run_dir = run_dir
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        out = run_dir.parent / f"{self._run_id}.pipeline.log"
        with open(out, "ab") as fh:
            self._proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=True)
        started = process_start_time(self._proc.pid, zombies=True)
        return Applied(targets=[f"delivery:{run_dir.parent}"], planned=planned,
                       actual={"run_id": self._run_id, "pid": self._proc.pid, "log": str(out)},
                       undo={"pid": self._proc.pid, "start": started, "run_id": self._run_id})

    def _manifest(self) -> dict[str, Any]:
        if self._run_dir is None:
            return {}
        try:
            m: dict[str, Any] = json.loads((self._run_dir / "manifest.json").read_text())
        except (OSError, ValueError):
            return {}
        return m

    async def observed(self) -> dict[str, Any]:
        m = self._manifest()
        return {"run_id": self._run_id, "status": m.get("status"), "decision": m.get("decision"),
                "deployed_version": m.get("deployed_version"), "dir": m.get("dir"),
                "steps": {s["name"]: s["status"] for s in m.get("steps", [])}}

    async def remove(self) -> None:
        proc = self._proc
        if proc is None:
            return
        try:
            await asyncio.to_thread(proc.wait, self.spec.wait)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await asyncio.to_thread(proc.wait, 5)
        self.ctx.log("delivery-run", **(await self.observed()))

    @classmethod
    def revert(cls, undo: dict[str, Any]) -> None:
        """Kill the pipeline run (its process group).  An intent has no PID yet: find it by its run id."""
        pid = undo.get("pid")
        if not pid:
            if undo.get("run_id"):
                for found in _pipelines_of(str(undo["run_id"])):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(found, signal.SIGKILL)
            return
        # its start stamp (a record written before 2026-12-05: its wall-clock create_time); a zombie
        # leader still names its group, whose steps may run on
        started = undo.get("start") or undo.get("create_time") or -1.0
        if not process_alive(int(pid), started, tolerance=0.01, zombies=True):
            return  # gone, or another process got this pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(pid), signal.SIGKILL)


def _pipelines_of(run_id: str) -> list[int]:
    """PIDs of running pipeline processes (the lab's or a user's) started for ``run_id``."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if any(m in cmd for m in _MODULES) and run_id in cmd:
            found.append(int(proc.info["pid"]))
    return found
