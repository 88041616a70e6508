"""Stale model on the lab's serving replicas: serve an older model version, then switch back.

A stale model is the quiet ML failure: every replica answers fast and green
while predicting from last quarter's world.  The lab can switch the model of
chosen replicas at run time; the previous version of each is recorded before
any is switched (``intent``), so a watchdog restores it if the runner dies,
even half way through the switch (restoring a replica never switched is a
no-op).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from mlchaos.contract.blast import BlastRadiusError, select_count
from mlchaos.plugin import Applied, Fault, FaultError, FaultSpec
from mlchaos.spec.types import Percent


class StaleModelSpec(FaultSpec):
    fault: Literal["stale-model"] = "stale-model"
    version: str = Field("stale", description="Model version or alias to serve (the lab ships 'stale'); a name, "
                         "not a path.")
    replicas: list[str] | None = Field(None, description="Replica names; default: chosen by count/percent.")
    count: int | None = Field(None, ge=1, description="How many serving replicas (default: one).")
    percent: Percent | None = Field(None, description="Share of the serving replicas (rounded up).")
    lab_dir: str | None = Field(None, description="Lab directory (default: the target's, else $MLCHAOS_LAB_DIR).")

    @field_validator("version")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        from mlchaos.lab.auth import check_name

        return check_name(v, "version")  # refused at load time, with the file's line, not at injection


class StaleModel(Fault):
    """Serve an older model version on some lab serving replicas."""

    Spec = StaleModelSpec
    spec: StaleModelSpec

    def _lab(self) -> Any:
        from mlchaos.lab import Lab

        directory = self.spec.lab_dir
        if directory is None:
            try:
                directory = str(self.ctx.target(self.spec.target).lab.paths.root)  # type: ignore[attr-defined]
            except Exception:
                directory = None
        return Lab(directory)

    def _choose(self) -> tuple[Any, list[Any]]:
        lab = self._lab()
        replicas = [s for s in lab.status() if s.system == "serving" and s.role == "replica"]
        if self.spec.replicas:
            chosen = [s for s in replicas if s.name in self.spec.replicas]
            missing = set(self.spec.replicas) - {s.name for s in chosen}
            if missing:
                raise FaultError(f"no serving replica named {', '.join(sorted(missing))}")
            return lab, chosen
        try:
            n = select_count(len(replicas), count=self.spec.count, percent=self.spec.percent)
        except BlastRadiusError as exc:
            raise FaultError(str(exc)) from None
        return lab, sorted(replicas, key=lambda s: s.name)[:n]

    async def preflight(self) -> dict[str, Any]:
        _, chosen = self._choose()
        return {"replicas": [s.name for s in chosen], "version": self.spec.version}

    async def intent(self, lease: Any) -> dict[str, Any]:
        """Choose the replicas and record the version each serves now, before any is switched."""
        lab, chosen = self._choose()
        self._plan = (lab, {s.name: s.model_alias or "current" for s in chosen})
        return {"dir": str(lab.paths.root), "previous": self._plan[1]}

    async def inject(self, lease: Any) -> Applied:
        plan = getattr(self, "_plan", None)
        if plan is None:
            lab, chosen = self._choose()
            plan = (lab, {s.name: s.model_alias or "current" for s in chosen})
        lab, previous = plan
        try:
            done = lab.set_model_version(self.spec.version, list(previous))
        except Exception as exc:
            raise FaultError(f"could not switch the model: {exc}") from None
        self._undo = {"dir": str(lab.paths.root), "previous": previous}
        return Applied(targets=done, planned={"replicas": list(previous), "version": self.spec.version},
                       actual={"count": len(done)}, undo=self._undo)

    async def remove(self) -> None:
        self.revert(getattr(self, "_undo", {}))

    @classmethod
    def revert(cls, undo: dict[str, Any]) -> None:
        if not undo.get("previous"):
            return
        from mlchaos.lab import Lab

        lab = Lab(undo.get("dir"))
        if not lab.is_up():
            return
        by_version: dict[str, list[str]] = {}
        for name, version in undo["previous"].items():
            by_version.setdefault(version, []).append(name)
        for version, names in by_version.items():
            lab.set_model_version(version, names)
