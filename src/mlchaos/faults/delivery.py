"""ML delivery-pipeline faults: a broken validation step, a registry outage, a corrupted artifact, poisoned
training data, and ``delivery-run``, which runs the pipeline once inside the fault window.

The pipeline's steps are separate processes, so every fault here reaches
them through a failpoint record in the lab's delivery failpoint directory
(``<lab>/delivery/failpoints``, see :mod:`mlchaos.lab.delivery.faultpoints`):
armed with the run's lease as its TTL, renewed with it, disarmed on removal
under that lease only.  A runner killed by ``kill -9`` therefore leaves
nothing behind for longer than one lease: the record lapses by itself, and
``revert`` (watchdog, ``mlchaos stop``) disarms it from the undo record.
``delivery-run`` owns a process group instead; its ``revert`` kills that
group if it still runs (checked against the recorded start time, so a
reused pid is never touched).
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
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from mlchaos.faults.data import FailpointFault
from mlchaos.plugin import Applied, Fault, FaultError, FaultSpec
from mlchaos.spec.types import Duration, Percent
from mlchaos.targets.lab import lab_dir_for

if TYPE_CHECKING:
    from mlchaos.contract.lease import Lease

__all__ = ["ArtifactCorrupt", "DeliveryRun", "RegistryOutage", "TrainingPoison", "ValidationCrash",
           "ValidationHang", "ValidationNan"]


class _LabFields(FaultSpec):
    lab_dir: str | None = Field(None, description="Lab directory (default: $MLCHAOS_LAB_DIR or the default lab).")


class _MarkerFault(Fault):
    """Arms one delivery failpoint with ``kind="raise"`` and a ``mode`` the step acts out."""

    point: ClassVar[str]
    spec: Any

    def __init__(self, spec: FaultSpec, ctx: Any) -> None:
        super().__init__(spec, ctx)
        self._lease_id: str | None = None

    def _root(self) -> Path:
        return lab_dir_for(self.spec, self.ctx)

    def _directory(self) -> Path:
        from mlchaos.lab.delivery.layout import DeliveryPaths

        return DeliveryPaths(self._root()).failpoints

    def params(self) -> dict[str, Any]:
        """The marker parameters; ``mode`` first."""
        raise NotImplementedError

    async def preflight(self) -> dict[str, Any]:
        root = self._root()
        if not (root / "models").is_dir():
            raise FaultError(f"no lab built in {root} (run `mlchaos lab up serving`)")
        return {"failpoint": self.point, "directory": str(self._directory()), **self.params()}

    async def intent(self, lease: Lease) -> dict[str, Any]:
        """The arming's id, chosen ahead: ``revert`` disarms this arming only, armed or not yet."""
        self._planned_lease = uuid.uuid4().hex
        return {"name": self.point, "directory": str(self._directory()), "lease_id": self._planned_lease}

    async def inject(self, lease: Lease) -> Applied:
        from mlchaos.failpoints import arm

        planned = await self.preflight()
        directory = self._directory()
        try:
            rec = arm(self.point, "raise", ttl=lease.ttl, directory=directory,
                      lease_id=getattr(self, "_planned_lease", None), **self.params())
        except (ValueError, OSError) as exc:
            raise FaultError(f"could not arm {self.point!r}: {exc}") from None
        self._lease_id = rec["lease_id"]
        return Applied(targets=[f"failpoint:{self.point}"], planned=planned,
                       actual={"armed_lease": rec["lease_id"], "expires_at": rec["expires_at"]},
                       undo={"name": self.point, "directory": str(directory), "lease_id": rec["lease_id"]})

    async def renew(self, lease: Lease) -> None:
        from mlchaos.failpoints import renew

        if self._lease_id is None:
            return
        try:
            renew(self.point, lease.ttl, directory=self._directory(), lease_id=self._lease_id)
        except ValueError as exc:
            raise FaultError(str(exc)) from None

    async def observed(self) -> dict[str, Any]:
        from mlchaos.failpoints import effects

        if self._lease_id is None:
            return {}
        hits = effects(self.point, self._lease_id, directory=self._directory())
        return {"hits": len(hits), "ops": sorted({str(h.get("op") or h.get("run") or "") for h in hits} - {""})}

    async def remove(self) -> None:
        if self._lease_id is not None:
            self.revert({"name": self.point, "directory": str(self._directory()), "lease_id": self._lease_id})

    @classmethod
    def revert(cls, undo: dict[str, Any]) -> None:
        from mlchaos.failpoints import disarm

        if undo.get("name"):
            disarm(str(undo["name"]), directory=undo.get("directory"), lease_id=undo.get("lease_id"))


class ValidationCrash(_MarkerFault):
    """The validation step crashes (an exception, exit code 1) before writing any metrics."""

    point = "delivery.validate"

    class Spec(_LabFields):
        fault: Literal["validation-crash"] = "validation-crash"
        message: str = Field("injected crash", description="Text of the crash in the step's log.")

    def params(self) -> dict[str, Any]:
        return {"mode": "crash", "message": self.spec.message}


class ValidationHang(_MarkerFault):
    """The validation step hangs (sleeps ``hang`` seconds), past the pipeline's step timeout."""

    point = "delivery.validate"

    class Spec(_LabFields):
        fault: Literal["validation-hang"] = "validation-hang"
        hang: Duration = Field(3600.0, description="How long the step hangs; the step timeout kills it first.")

    def params(self) -> dict[str, Any]:
        return {"mode": "hang", "hang_s": self.spec.hang}


class ValidationNan(_MarkerFault):
    """The validation step finishes with exit code 0 but its metrics are NaN (or missing)."""

    point = "delivery.validate"

    class Spec(_LabFields):
        fault: Literal["validation-nan"] = "validation-nan"
        mode: Literal["nan", "missing"] = Field("nan", description="NaN metric values, or no metrics at all.")

    def params(self) -> dict[str, Any]:
        return {"mode": self.spec.mode}


class RegistryOutage(_MarkerFault):
    """The model registry refuses connections (``unreachable``) or answers after ``delay`` (``slow``)."""

    point = "delivery.registry"

    class Spec(_LabFields):
        fault: Literal["registry-outage"] = "registry-outage"
        mode: Literal["unreachable", "slow"] = "unreachable"
        delay: Duration = Field(5.0, description="slow: added to every registry call.")

    def params(self) -> dict[str, Any]:
        return {"mode": self.spec.mode, "delay_s": self.spec.delay}


class ArtifactCorrupt(_MarkerFault):
    """The stored artifact of the next registered version changes after upload (checksum mismatch).

    ``swap`` replaces it with another loadable model (default: the lab's
    stale model) — the dangerous case, a wrong model that loads fine;
    ``bitflip`` / ``truncate`` damage the bytes.
    """

    point = "delivery.artifact"

    class Spec(_LabFields):
        fault: Literal["artifact-corrupt"] = "artifact-corrupt"
        mode: Literal["swap", "bitflip", "truncate"] = "swap"
        replacement: str | None = Field(None, description="swap: the file put in its place (default: the "
                                                          "lab's stale model).")

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.spec.mode}
        if self.spec.mode == "swap":
            if self.spec.replacement:
                out["replacement"] = self.spec.replacement
            else:
                from mlchaos.lab.models import resolve_fraud_version

                models = self._root() / "models"
                out["replacement"] = str(models / "fraud" / f"{resolve_fraud_version(models, 'stale')}.pkl")
        return out


class TrainingPoison(FailpointFault):
    """Poisoned training data: the train step's frame passes through a data corruption (default: 45 % of
    the labels flipped), via the failpoint ``delivery.train.after_extract``.

    Why 45 %: symmetric label noise below 50 % keeps the ranking in expectation, so a mild flip rate often
    trains a model as good as the clean one; near 50 % the signal drowns and the model flags almost
    nothing — still ~0.97 accurate on 3 % fraud, which is exactly what an accuracy-only gate lets through.
    """

    class Spec(FailpointFault.Spec):
        fault: Literal["training-poison"] = "training-poison"  # type: ignore[assignment]
        point: str = Field("delivery.train.after_extract", description="Failpoint in the train step.")
        kind: str = Field("label_noise", description="Corruption kind of mlchaos.data.corrupt.")
        columns: list[str] | str | None = Field(["is_fraud"], description="Columns to corrupt.")
        fraction: Percent = Field(0.45, description="Share of rows to corrupt: '45%' or 0.45.")
        lab_dir: str | None = Field(None, description="Lab directory (its delivery failpoint directory is used).")

    spec: Spec

    async def preflight(self) -> dict[str, Any]:
        if self.spec.directory is None:  # the lab's delivery failpoints, where its train step looks
            from mlchaos.lab.delivery.layout import DeliveryPaths

            self.spec.directory = str(DeliveryPaths(lab_dir_for(self.spec, self.ctx)).failpoints)
        return await super().preflight()


class DeliveryRun(Fault):
    """Run the delivery pipeline once (a release) inside the fault window; removal stops a run still going.

    Not a failure by itself: it is the *event* the other delivery faults
    break, the way a scheduled CI job or a Kubeflow run would start.
    """

    class Spec(_LabFields):
        fault: Literal["delivery-run"] = "delivery-run"
        variant: Literal["auto", "naive", "mitigated"] = Field(
            "auto", description="auto: the serving system's variant in the running lab.")
        registry: Literal["file", "mlflow"] = "file"
        config: dict[str, Any] = Field(default_factory=dict,
                                       description="PipelineConfig overrides, e.g. {timeouts: {validate: 8}}.")
        wait: Duration = Field(8.0, description="On removal, how long to let a still-running pipeline finish.")

    spec: Spec

    def __init__(self, spec: FaultSpec, ctx: Any) -> None:
        super().__init__(spec, ctx)
        self._proc: subprocess.Popen[bytes] | None = None
        self._run_id: str | None = None
        self._root: Path | None = None

    def _variant(self, root: Path) -> str:
        if self.spec.variant != "auto":
            return self.spec.variant
        from mlchaos.lab import Lab

        v = Lab(root).state().get("variants", {}).get("serving", "naive")
        return "mitigated" if v == "mitigated" else "naive"

    async def preflight(self) -> dict[str, Any]:
        from mlchaos.lab import Lab

        root = lab_dir_for(self.spec, self.ctx)
        lab = Lab(root)
        if not lab.is_up() or not any(s.system == "serving" for s in lab.status()):
            raise FaultError(f"the lab in {root} does not run the serving system (`mlchaos lab up serving`)")
        from mlchaos.lab.delivery.pipeline import bootstrap

        try:  # the registry must know the version serving runs before any release
            prod = await asyncio.to_thread(bootstrap, root, self.spec.registry)
        except Exception as exc:
            raise FaultError(f"model registry not usable: {type(exc).__name__}: {exc}") from None
        return {"lab_dir": str(root), "variant": self._variant(root), "registry": self.spec.registry,
                "production": prod}

    async def intent(self, lease: Lease) -> dict[str, Any]:
        """The pipeline's run id, chosen ahead: with no PID yet, ``revert`` finds the process by it."""
        self._run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        return {"run_id": self._run_id, "lab_dir": str(lab_dir_for(self.spec, self.ctx))}

    async def inject(self, lease: Lease) -> Applied:
        from mlchaos.lab.delivery.layout import DeliveryPaths

        planned = await self.preflight()
        root = Path(planned["lab_dir"])
        self._root = root
        self._run_id = self._run_id or time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        paths = DeliveryPaths(root)
        paths.runs.mkdir(parents=True, exist_ok=True)
        out = paths.runs / f"{self._run_id}.pipeline.log"
        cmd = [sys.executable, "-m", "mlchaos.lab.delivery.pipeline", "--lab-dir", str(root), "--variant",
               planned["variant"], "--registry", self.spec.registry, "--run-id", self._run_id]
        if self.spec.config:
            cmd += ["--config", json.dumps(self.spec.config)]
        with open(out, "ab") as fh:
            self._proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=True)
        import psutil

        started = psutil.Process(self._proc.pid).create_time()
        return Applied(targets=[f"delivery:{root}"], planned=planned,
                       actual={"run_id": self._run_id, "pid": self._proc.pid, "log": str(out)},
                       undo={"pid": self._proc.pid, "create_time": started, "run_id": self._run_id,
                             "lab_dir": str(root)})

    def _manifest(self) -> dict[str, Any]:
        from mlchaos.lab.delivery.layout import DeliveryPaths

        if self._run_id is None or self._root is None:
            return {}
        path = DeliveryPaths(self._root).run_dir(self._run_id) / "manifest.json"
        try:
            m: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return m

    async def observed(self) -> dict[str, Any]:
        m = self._manifest()
        return {"run_id": self._run_id, "status": m.get("status"), "decision": m.get("decision"),
                "deployed_version": m.get("deployed_version"),
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
        import psutil

        pid = undo.get("pid")
        if not pid:
            if undo.get("run_id"):
                for found in _pipelines_of(str(undo["run_id"])):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(found, signal.SIGKILL)
            return
        try:
            p = psutil.Process(int(pid))
            if abs(p.create_time() - float(undo.get("create_time", 0))) > 0.01:
                return  # another process got this pid
            os.killpg(int(pid), signal.SIGKILL)
        except (psutil.NoSuchProcess, ProcessLookupError, PermissionError):
            return


def _pipelines_of(run_id: str) -> list[int]:
    """PIDs of running ``mlchaos.lab.delivery.pipeline`` processes started for ``run_id``."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if "mlchaos.lab.delivery.pipeline" in cmd and run_id in cmd:
            found.append(int(proc.info["pid"]))
    return found
