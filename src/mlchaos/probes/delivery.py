"""Delivery probes: which model each serving replica runs and whether that version was validated; canary
vs baseline prediction drift; accuracy on labeled shadow traffic.

Why ask the replicas and not the pipeline: the hypothesis is about what
*serving* does.  A manifest that says "blocked" proves nothing if a replica
serves something else; so ``deployed-model`` reads each replica's own
``/info`` (the version it loaded), looks that version up in the model
registry (an observer's read that registry faults do not touch) and calls it
validated only if its validation record passed with finite metrics *and* the
file the replica loaded has the sha256 recorded at registration.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Literal

from pydantic import Field

from mlchaos.plugin import Measurement, Probe, ProbeError, ProbeSpec

__all__ = ["CanaryDrift", "DeployedModel", "ShadowAccuracy"]


class _LabProbeSpec(ProbeSpec):
    lab_dir: str | None = Field(None, description="Lab directory (default: $MLCHAOS_LAB_DIR or the default lab).")


def _lab(lab_dir: str | None) -> Any:
    from mlchaos.lab import Lab
    from mlchaos.lab.paths import resolve_lab_dir

    return Lab(resolve_lab_dir(lab_dir))


def _lab_dir(probe: Probe) -> str:
    """The probe's lab directory: its ``lab_dir``, else its ``lab`` target's, else the default."""
    from mlchaos.targets.lab import lab_dir_for

    return str(lab_dir_for(probe.spec, probe.ctx))


def _replicas(lab: Any) -> dict[str, str]:
    """Serving replica name → URL."""
    return {s.name: s.url for s in lab.status() if s.system == "serving" and s.role == "replica" and s.url}


def served_versions(lab_dir: str | None, registry: str = "file", uri: str | None = None,
                    names: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Each replica's reported model version and whether it was validated (synchronous; used by tests too)."""
    import httpx

    from mlchaos.lab.delivery.gates import is_validated
    from mlchaos.lab.delivery.layout import MODEL_NAME, DeliveryPaths
    from mlchaos.lab.delivery.registry import open_registry, sha256_file

    lab = _lab(lab_dir)
    reg = open_registry(registry, lab.paths.root, uri=uri)
    paths = DeliveryPaths(lab.paths.root)
    out: dict[str, dict[str, Any]] = {}
    for name, url in sorted(_replicas(lab).items()):
        if names and name not in names:
            continue
        try:
            info = httpx.get(url + "/info", timeout=2.0).json()
        except (httpx.HTTPError, ValueError) as exc:
            out[name] = {"reachable": False, "error": type(exc).__name__}
            continue
        version = (info.get("model") or {}).get("version")
        row: dict[str, Any] = {"reachable": True, "version": version, "validated": False}
        mv = reg.inspect(MODEL_NAME, str(version)) if version else None
        if mv is None:
            row["reason"] = "not in the registry"
        elif not is_validated(mv.validation):
            v = mv.validation or {}
            row["reason"] = f"validation {v.get('status', 'missing')}: {v.get('reason', 'no record')}"
        else:
            f = paths.serving_models / f"{version}.pkl"
            sha = sha256_file(f) if f.exists() else None
            if sha != mv.artifact_sha256:
                row["reason"] = "served artifact differs from the validated one (sha256)"
            else:
                row["validated"] = True
        out[name] = row
    return out


class DeployedModelSpec(_LabProbeSpec):
    probe: Literal["deployed-model"] = "deployed-model"
    stat: Literal["unvalidated", "validated", "version"] = Field(
        "unvalidated", description="unvalidated: replicas serving a version without a passing validation record; "
        "validated: true when every reachable replica's version is validated; version: the served version "
        "(several joined by ',').")
    registry: Literal["file", "mlflow"] = "file"
    registry_uri: str | None = None
    replicas: list[str] | None = Field(None, description="Only these replicas (default: every serving replica).")


class DeployedModel(Probe):
    """The serving system's model version per replica, and whether it was validated."""

    Spec = DeployedModelSpec
    spec: DeployedModelSpec
    unit: ClassVar[str] = ""

    async def measure(self) -> Measurement:
        try:
            rows = await asyncio.to_thread(served_versions, _lab_dir(self), self.spec.registry,
                                           self.spec.registry_uri, self.spec.replicas)
        except Exception as exc:
            raise ProbeError(f"cannot read the serving system: {type(exc).__name__}: {exc}") from None
        live = {n: r for n, r in rows.items() if r.get("reachable")}
        if not live:
            return Measurement(None, {"replicas": rows}, 0, insufficient="no serving replica answered")
        if self.spec.stat == "unvalidated":
            value: Any = sum(1 for r in live.values() if not r["validated"])
        elif self.spec.stat == "validated":
            value = all(r["validated"] for r in live.values())
        else:
            value = ",".join(sorted({str(r["version"]) for r in live.values()}))
        return Measurement(value, {"replicas": rows}, len(live))


class _ShadowSpec(_LabProbeSpec):
    rows: int = Field(300, ge=20, le=700, description="Labeled shadow rows (today's holdout) sent per measurement.")


def _post_scores(url: str, rows: list[dict[str, Any]]) -> tuple[Any, str | None]:
    import httpx

    from mlchaos.lab.delivery.canary import predict

    with httpx.Client(timeout=3.0) as client:
        return predict(client, url, rows)


class CanaryDriftSpec(_ShadowSpec):
    probe: Literal["canary-drift"] = "canary-drift"
    canary: str = Field("serving-0", description="Replica that gets a new version first.")
    baseline: str = Field("serving-1", description="Replica compared against it.")
    stat: Literal["psi", "mean_score_diff", "flag_rate_diff"] = "mean_score_diff"


class CanaryDrift(Probe):
    """Prediction drift between the canary and a baseline replica on the same shadow rows."""

    Spec = CanaryDriftSpec
    spec: CanaryDriftSpec

    async def measure(self) -> Measurement:
        from mlchaos.lab.delivery.canary import compare
        from mlchaos.lab.delivery.training import shadow_records

        lab_dir = _lab_dir(self)
        reps = await asyncio.to_thread(lambda: _replicas(_lab(lab_dir)))
        for n in (self.spec.canary, self.spec.baseline):
            if n not in reps:
                raise ProbeError(f"no serving replica {n!r} (have {sorted(reps)})")
        rows, _ = shadow_records(self.spec.rows)
        (cs, cv), (bs, bv) = await asyncio.gather(asyncio.to_thread(_post_scores, reps[self.spec.canary], rows),
                                                  asyncio.to_thread(_post_scores, reps[self.spec.baseline], rows))
        if cs is None or bs is None:
            return Measurement(None, {"canary": cv, "baseline": bv}, 0, insufficient="a replica did not answer")
        diff = compare(cs, bs)
        return Measurement(diff[self.spec.stat], {**diff, "canary_version": cv, "baseline_version": bv},
                           len(rows))


class ShadowAccuracySpec(_ShadowSpec):
    probe: Literal["shadow-accuracy"] = "shadow-accuracy"
    replica: str | None = Field(None, description="A replica name; default: the serving load balancer.")
    stat: Literal["accuracy", "auc", "recall"] = "auc"


class ShadowAccuracy(Probe):
    """Accuracy of what serving answers on labeled shadow traffic (today's holdout rows)."""

    Spec = ShadowAccuracySpec
    spec: ShadowAccuracySpec
    unit: ClassVar[str] = "ratio"

    async def measure(self) -> Measurement:
        from mlchaos.lab.delivery.canary import accuracy
        from mlchaos.lab.delivery.training import shadow_records

        lab_dir = _lab_dir(self)
        eps = await asyncio.to_thread(lambda: _lab(lab_dir).endpoints())
        url = eps.get(self.spec.replica or "serving")
        if url is None:
            raise ProbeError(f"no endpoint {self.spec.replica or 'serving'!r} in the lab")
        rows, labels = shadow_records(self.spec.rows)
        scores, version = await asyncio.to_thread(_post_scores, url, rows)
        if scores is None:
            return Measurement(None, {"error": version}, 0, insufficient=f"serving did not answer: {version}")
        acc = accuracy(scores, labels)
        return Measurement(acc[self.spec.stat], {**acc, "model_version": version}, len(rows))


