"""ML delivery-pipeline faults: a broken validation step, a registry outage, a corrupted artifact, poisoned
training data, and ``delivery-run``, which runs the pipeline once inside the fault window.

The pipeline's steps are separate processes, so every fault here reaches
them through a failpoint record in the lab's delivery failpoint directory
(``<lab>/delivery/failpoints``, see :mod:`mlchaos.lab.delivery.faultpoints`):
armed with the run's lease as its TTL, renewed with it, disarmed on removal
under that lease only.  A runner killed by ``kill -9`` therefore leaves
nothing behind for longer than one lease: the record lapses by itself, and
``revert`` (watchdog, ``mlchaos stop``) disarms it from the undo record.
``delivery-run`` (:mod:`mlchaos.faults.delivery_run`) owns a process group
instead; its ``revert`` kills that group if it still runs (checked against
the recorded start time, so a reused pid is never touched).

The same faults act on a user's own pipeline: ``step: NAME`` arms the
record ``<point>.<NAME>`` in the user pipeline's failpoint directory, which
:mod:`mlchaos.lab.delivery.stepwrap` acts out around that step's command;
``failpoint: NAME`` arms a failpoint in the user's code directly.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, model_validator

from mlchaos.faults.data import FailpointFault
from mlchaos.faults.delivery_run import DeliveryRun  # its own module; registered by this module's name
from mlchaos.plugin import Applied, Fault, FaultError, FaultSpec
from mlchaos.spec.types import Duration, Percent
from mlchaos.targets.lab import lab_dir_for

if TYPE_CHECKING:
    from mlchaos.contract.lease import Lease

__all__ = ["ArtifactCorrupt", "DeliveryRun", "RegistryOutage", "TrainingPoison", "ValidationCrash",
           "ValidationHang", "ValidationNan"]


class _LabFields(FaultSpec):
    lab_dir: str | None = Field(None, description="Lab directory (default: $MLCHAOS_LAB_DIR or the default lab).")


class _StepFields(_LabFields):
    step: str | None = Field(None, description="A step of your own pipeline (`delivery-run` with `pipeline:`) "
                             "by name: the fault is acted out around that step's command. Default: the lab's.")
    failpoint: str | None = Field(None, description="Instead of `step`: a failpoint name in your own code "
                                  "(mlchaos.failpoint(name, data)), armed for this fault.")
    directory: str | None = Field(None, description="With `step`/`failpoint`: the failpoint directory your "
                                  "pipeline reads (default: $MLCHAOS_FAILPOINT_DIR or <state dir>/failpoints, "
                                  "where delivery-run points its steps).")

    @model_validator(mode="after")
    def _one_target(self) -> _StepFields:
        if self.step is not None and self.failpoint is not None:
            raise ValueError("give `step` or `failpoint`, not both")
        return self


class _MarkerFault(Fault):
    """Arms one delivery failpoint with ``kind="raise"`` and a ``mode`` the step acts out.

    Three places a fault can land: the lab's pipeline (no ``step``), a step of
    the user's pipeline by name (``step``: the record ``<point>.<step>`` that
    :mod:`mlchaos.lab.delivery.stepwrap` reads around the command), or a
    failpoint in the user's own code (``failpoint``: armed under that name, as
    a ``raise`` or a data corruption the user's call applies).
    """

    point: ClassVar[str]
    step_modes: ClassVar[frozenset[str]] = frozenset()
    """Modes a wrapped command step can act out (others need the lab's pipeline or a proxy)."""
    step_hint: ClassVar[str] = ""
    spec: Any

    def __init__(self, spec: FaultSpec, ctx: Any) -> None:
        super().__init__(spec, ctx)
        self._lease_id: str | None = None

    def _user(self) -> bool:
        return bool(self.spec.step or self.spec.failpoint)

    def _name(self) -> str:
        """The failpoint record this fault arms."""
        if self.spec.failpoint:
            return str(self.spec.failpoint)
        if self.spec.step:
            return self.point if self.spec.step == "*" else f"{self.point}.{self.spec.step}"
        return self.point

    def _root(self) -> Path:
        return lab_dir_for(self.spec, self.ctx)

    def _directory(self) -> Path:
        if self._user():
            from mlchaos.failpoints import failpoint_dir

            return failpoint_dir(self.spec.directory)
        from mlchaos.lab.delivery.layout import DeliveryPaths

        return DeliveryPaths(self._root()).failpoints

    def params(self) -> dict[str, Any]:
        """The marker parameters; ``mode`` first."""
        raise NotImplementedError

    def arming(self) -> tuple[str, dict[str, Any]]:
        """(kind, arguments of :func:`mlchaos.failpoints.arm`): a ``raise`` record with the mode's parameters;
        a ``failpoint`` in user code may need a data corruption instead (see ValidationNan)."""
        return "raise", self.params()

    async def preflight(self) -> dict[str, Any]:
        if self._user():
            from mlchaos.failpoints import _check_name

            try:
                _check_name(self._name())
            except ValueError as exc:
                raise FaultError(f"{'failpoint' if self.spec.failpoint else 'step'}: {exc}") from None
            mode = self.params().get("mode")
            if self.spec.step and mode not in self.step_modes:
                raise FaultError(f"mode {mode!r} cannot be acted out around a command step "
                                 f"(possible: {', '.join(sorted(self.step_modes))}){self.step_hint}")
            kind, _ = self.arming()
            return {"failpoint": self._name(), "kind": kind, "directory": str(self._directory()), **self.params()}
        root = self._root()
        if not (root / "models").is_dir():
            raise FaultError(f"no lab built in {root} (run `mlchaos lab up serving`)")
        return {"failpoint": self.point, "directory": str(self._directory()), **self.params()}

    async def intent(self, lease: Lease) -> dict[str, Any]:
        """The arming's id, chosen ahead: ``revert`` disarms this arming only, armed or not yet."""
        self._planned_lease = uuid.uuid4().hex
        return {"name": self._name(), "directory": str(self._directory()), "lease_id": self._planned_lease}

    async def inject(self, lease: Lease) -> Applied:
        from mlchaos.failpoints import arm

        planned = await self.preflight()
        directory = self._directory()
        kind, args = self.arming()
        try:
            rec = arm(self._name(), kind, ttl=lease.ttl, directory=directory,
                      lease_id=getattr(self, "_planned_lease", None), **args)
        except (ValueError, OSError) as exc:
            raise FaultError(f"could not arm {self._name()!r}: {exc}") from None
        self._lease_id = rec["lease_id"]
        return Applied(targets=[f"failpoint:{self._name()}"], planned=planned,
                       actual={"armed_lease": rec["lease_id"], "expires_at": rec["expires_at"]},
                       undo={"name": self._name(), "directory": str(directory), "lease_id": rec["lease_id"]})

    async def renew(self, lease: Lease) -> None:
        from mlchaos.failpoints import renew

        if self._lease_id is None:
            return
        try:
            renew(self._name(), lease.ttl, directory=self._directory(), lease_id=self._lease_id)
        except ValueError as exc:
            raise FaultError(str(exc)) from None

    async def observed(self) -> dict[str, Any]:
        from mlchaos.failpoints import effects

        if self._lease_id is None:
            return {}
        hits = effects(self._name(), self._lease_id, directory=self._directory())
        return {"hits": len(hits), "ops": sorted({str(h.get("op") or h.get("run") or h.get("step") or "")
                                                  for h in hits} - {""}),
                "errors": [str(h["error"]) for h in hits if h.get("error")][:5]}

    async def remove(self) -> None:
        if self._lease_id is not None:
            self.revert({"name": self._name(), "directory": str(self._directory()), "lease_id": self._lease_id})

    @classmethod
    def revert(cls, undo: dict[str, Any]) -> None:
        from mlchaos.failpoints import disarm

        if undo.get("name"):
            disarm(str(undo["name"]), directory=undo.get("directory"), lease_id=undo.get("lease_id"))


class ValidationCrash(_MarkerFault):
    """The validation step crashes (an exception, exit code 1) before writing any metrics."""

    point = "delivery.validate"
    step_modes = frozenset({"crash"})

    class Spec(_StepFields):
        fault: Literal["validation-crash"] = "validation-crash"
        message: str = Field("injected crash", description="Text of the crash in the step's log.")

    def params(self) -> dict[str, Any]:
        return {"mode": "crash", "message": self.spec.message}


class ValidationHang(_MarkerFault):
    """The validation step hangs (sleeps ``hang`` seconds), past the pipeline's step timeout."""

    point = "delivery.validate"
    step_modes = frozenset({"hang"})

    class Spec(_StepFields):
        fault: Literal["validation-hang"] = "validation-hang"
        hang: Duration = Field(3600.0, description="How long the step hangs; the step timeout kills it first.")

    def params(self) -> dict[str, Any]:
        return {"mode": "hang", "hang_s": self.spec.hang}

    def arming(self) -> tuple[str, dict[str, Any]]:
        if self.spec.failpoint:
            raise FaultError("failpoint: a failpoint in your code cannot hang; name the step (`step:`) instead")
        return super().arming()


class ValidationNan(_MarkerFault):
    """The validation step finishes with exit code 0 but its metrics are NaN (or missing).

    Around a command step, the step's declared ``metrics`` JSON file is
    rewritten after it succeeds; in your code, the frame passed to the
    failpoint comes back all-null (``nulls`` on every cell; ``nan`` only).
    """

    point = "delivery.validate"
    step_modes = frozenset({"nan", "missing"})

    class Spec(_StepFields):
        fault: Literal["validation-nan"] = "validation-nan"
        mode: Literal["nan", "missing"] = Field("nan", description="NaN metric values, or no metrics at all.")

    def params(self) -> dict[str, Any]:
        return {"mode": self.spec.mode}

    def arming(self) -> tuple[str, dict[str, Any]]:
        if self.spec.failpoint:
            if self.spec.mode != "nan":
                raise FaultError("mode: a failpoint in your code can make metrics NaN, not missing; "
                                 "name the step (`step:`) for `missing`")
            return "nulls", {"fraction": 1.0}
        return super().arming()


class RegistryOutage(_MarkerFault):
    """The model registry refuses connections (``unreachable``) or answers after ``delay`` (``slow``).

    Around a command step (``step: NAME``, or ``"*"`` for every step) the
    step's MLflow URIs point at a port that refuses connections; ``slow``
    needs the lab's pipeline — for your own registry server put a ``latency``
    fault of the fault proxy on its URL.
    """

    point = "delivery.registry"
    step_modes = frozenset({"unreachable"})
    step_hint = "; for a slow registry server put a `latency` proxy fault on its URL"

    class Spec(_StepFields):
        fault: Literal["registry-outage"] = "registry-outage"
        mode: Literal["unreachable", "slow"] = "unreachable"
        delay: Duration = Field(5.0, description="slow: added to every registry call.")

    def params(self) -> dict[str, Any]:
        return {"mode": self.spec.mode, "delay_s": self.spec.delay}

    def arming(self) -> tuple[str, dict[str, Any]]:
        if self.spec.failpoint and self.spec.mode != "unreachable":
            raise FaultError("mode: a failpoint in your code can refuse the call (unreachable), not slow it; "
                             "put a `latency` proxy fault on the registry's URL")
        return super().arming()


class ArtifactCorrupt(_MarkerFault):
    """The stored artifact of the next registered version changes after upload (checksum mismatch).

    ``swap`` replaces it with another loadable model (default: the lab's
    stale model) — the dangerous case, a wrong model that loads fine;
    ``bitflip`` / ``truncate`` damage the bytes.  Around a command step
    (``step: register``), once the step succeeded, the newest version of
    ``model`` in your registry has its stored ``file`` changed through the
    MLflow client (the server's artifact store).
    """

    point = "delivery.artifact"
    step_modes = frozenset({"swap", "bitflip", "truncate"})

    class Spec(_StepFields):
        fault: Literal["artifact-corrupt"] = "artifact-corrupt"
        mode: Literal["swap", "bitflip", "truncate"] = "swap"
        replacement: str | None = Field(None, description="swap: the file put in its place (default: the "
                                                          "lab's stale model).")
        model: str | None = Field(None, description="With `step`: the registered model whose newest version "
                                                    "is damaged.")
        file: str | None = Field(None, description="With `step`: the file inside the version's artifacts "
                                                   "(default: the largest), e.g. model.pkl.")
        registry_uri: str | None = Field(None, description="With `step`: MLflow registry URI (default: the "
                                                           "step's MLFLOW_REGISTRY_URI / MLFLOW_TRACKING_URI).")
        tracking_uri: str | None = Field(None, description="With `step`: MLflow tracking URI, if distinct.")

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.spec.mode}
        if self.spec.step:
            out.update({k: v for k, v in {"model": self.spec.model, "file": self.spec.file,
                                          "registry_uri": self.spec.registry_uri,
                                          "tracking_uri": self.spec.tracking_uri}.items() if v})
            if self.spec.mode == "swap" and self.spec.replacement:
                out["replacement"] = self.spec.replacement
            return out
        if self.spec.mode == "swap":
            if self.spec.replacement:
                out["replacement"] = self.spec.replacement
            else:
                from mlchaos.lab.models import resolve_fraud_version

                models = self._root() / "models"
                out["replacement"] = str(models / "fraud" / f"{resolve_fraud_version(models, 'stale')}.pkl")
        return out

    def arming(self) -> tuple[str, dict[str, Any]]:
        if self.spec.failpoint:
            raise FaultError("failpoint: a stored artifact is damaged around the step that registers it; "
                             "name that step (`step:`) and `model:`")
        if self.spec.step:
            if not self.spec.model:
                raise FaultError("model: name the registered model whose newest version is damaged")
            if self.spec.mode == "swap" and not (self.spec.replacement and Path(self.spec.replacement).is_file()):
                raise FaultError(f"replacement: swap needs an existing file (got {self.spec.replacement!r})")
        return super().arming()


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
        # the lab's delivery failpoints, where its train step looks; a point of your own (a failpoint in your
        # train step's code) without lab_dir stays in the default directory, where delivery-run points its steps
        lab = self.spec.lab_dir is not None or self.spec.point == "delivery.train.after_extract"
        if self.spec.directory is None and lab:
            from mlchaos.lab.delivery.layout import DeliveryPaths

            self.spec.directory = str(DeliveryPaths(lab_dir_for(self.spec, self.ctx)).failpoints)
        return await super().preflight()
