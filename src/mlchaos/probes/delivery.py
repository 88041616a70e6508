"""Delivery probes: which model each serving replica runs and whether that version was validated; canary
vs baseline prediction drift; accuracy on labeled shadow traffic.

Why ask the replicas and not the pipeline: the hypothesis is about what
*serving* does.  A manifest that says "blocked" proves nothing if a replica
serves something else; so ``deployed-model`` reads each replica's own
``/info`` (the version it loaded), looks that version up in the model
registry (an observer's read that registry faults do not touch) and calls it
validated only if its validation record passed with finite metrics *and* the
file the replica loaded has the sha256 recorded at registration.

For a user's own pipeline and MLflow server (``model:``), what is deployed
is the version under the alias (or stage) the user's deployment reads, and
"validated" is the user's own rule (``require``: metrics of the version's
run), read from the registry directly, never through the steps' faults.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

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
                    names: list[str] | None = None, tracking_uri: str | None = None) -> dict[str, dict[str, Any]]:
    """Each replica's reported model version and whether it was validated (synchronous; used by tests too)."""
    import httpx

    from mlchaos.lab.delivery.gates import is_validated
    from mlchaos.lab.delivery.layout import MODEL_NAME, DeliveryPaths
    from mlchaos.lab.delivery.registry import open_registry, sha256_file

    lab = _lab(lab_dir)
    if uri or tracking_uri:
        registry = "mlflow"
    reg = open_registry(registry, lab.paths.root, uri=uri, tracking_uri=tracking_uri)
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
        "unvalidated", description="unvalidated: replicas serving a version without a passing validation record "
        "(with `model`: 1 if the version under the alias fails `require`); validated: true when every one "
        "passes; version: the served version (several joined by ',').")
    registry: Literal["file", "mlflow"] = "file"
    registry_uri: str | None = Field(None, description="MLflow registry URI, e.g. http://127.0.0.1:5000.")
    tracking_uri: str | None = Field(None, description="MLflow tracking URI (the versions' runs), if distinct.")
    replicas: list[str] | None = Field(None, description="Only these replicas (default: every serving replica).")
    model: str | None = Field(None, description="Your registered model: read your registry instead of the lab's "
                              "serving replicas (what is deployed = the version under `alias` or `stage`).")
    alias: str | None = Field(None, description="With `model`: the alias that deploys (default: champion).")
    stage: str | None = Field(None, description="With `model`: a stage (Production) instead of an alias.")
    require: dict[str, float | str] = Field(
        default_factory=dict, description="With `model`: what a validated version has: metric → minimum "
        "(0.9), or '>= 0.9' / '<= 0.3'; read from the version's run metrics, then its tags. Missing or NaN fails.")

    @model_validator(mode="after")
    def _user_registry(self) -> DeployedModelSpec:
        if self.model is None:
            return self
        if self.alias and self.stage:
            raise ValueError("give `alias` or `stage`, not both")
        if self.stat != "version" and not self.require:
            raise ValueError("require: with `model`, say what a validated version has (e.g. {auc: 0.9})")
        for k, v in self.require.items():
            _requirement(k, v)
        return self


def _requirement(metric: str, rule: float | str) -> tuple[str, float]:
    """(operator, bound) of one ``require`` entry: a number is a minimum; text is '>= x' or '<= x'."""
    if isinstance(rule, int | float):
        return ">=", float(rule)
    text = rule.strip()
    for op in (">=", "<="):
        if text.startswith(op):
            try:
                return op, float(text[2:])
            except ValueError:
                break
    raise ValueError(f"require.{metric}: {rule!r} is not a number, '>= x' or '<= x'")


def registry_deployed(spec: DeployedModelSpec) -> dict[str, Any]:
    """The version deployed in a user's MLflow registry (under the alias or stage) and whether it meets
    ``require`` (synchronous).  An observer's read: no fault of the pipeline's steps touches it."""
    import math

    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    tracking = spec.tracking_uri or spec.registry_uri
    client = MlflowClient(tracking_uri=tracking, registry_uri=spec.registry_uri or tracking)
    assert spec.model is not None
    try:
        if spec.stage:
            found = client.get_latest_versions(spec.model, stages=[spec.stage])
            mv = found[0] if found else None
        else:
            mv = client.get_model_version_by_alias(spec.model, spec.alias or "champion")
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or "not found" in str(exc).lower():
            mv = None
        else:
            raise
    where = f"{spec.model}@{spec.alias or 'champion'}" if not spec.stage else f"{spec.model}/{spec.stage}"
    if mv is None:
        return {"deployed": where, "version": None, "validated": None, "reason": "nothing deployed there"}
    values: dict[str, float] = {}
    for k, v in (mv.tags or {}).items():
        try:
            values[k] = float(v)
        except (TypeError, ValueError):
            continue
    if mv.run_id:
        with contextlib.suppress(MlflowException):
            values.update(client.get_run(mv.run_id).data.metrics)
    failed = []
    for metric, rule in spec.require.items():
        op, bound = _requirement(metric, rule)
        got = values.get(metric)
        ok = got is not None and math.isfinite(got) and (got >= bound if op == ">=" else got <= bound)
        if not ok:
            failed.append(f"{metric}={got!r} (needs {op} {bound:g})")
    row: dict[str, Any] = {"deployed": where, "version": str(mv.version), "run_id": mv.run_id,
                           "validated": not failed, "metrics": {k: values.get(k) for k in spec.require}}
    if failed:
        row["reason"] = "fails require: " + ", ".join(failed)
    return row


class DeployedModel(Probe):
    """The serving system's model version per replica (or your registry's deployed version), and whether
    it was validated."""

    Spec = DeployedModelSpec
    spec: DeployedModelSpec
    unit: ClassVar[str] = ""

    async def measure(self) -> Measurement:
        if self.spec.model is not None:
            try:
                row = await asyncio.to_thread(registry_deployed, self.spec)
            except Exception as exc:
                raise ProbeError(f"cannot read the model registry: {type(exc).__name__}: {exc}") from None
            if row["version"] is None:
                value: Any = 0 if self.spec.stat == "unvalidated" else None
                if self.spec.stat == "validated":
                    value = True
                return Measurement(value, row, 1)
            if self.spec.stat == "unvalidated":
                value = 0 if row["validated"] else 1
            elif self.spec.stat == "validated":
                value = bool(row["validated"])
            else:
                value = row["version"]
            return Measurement(value, row, 1)
        try:
            rows = await asyncio.to_thread(served_versions, _lab_dir(self), self.spec.registry,
                                           self.spec.registry_uri, self.spec.replicas, self.spec.tracking_uri)
        except Exception as exc:
            raise ProbeError(f"cannot read the serving system: {type(exc).__name__}: {exc}") from None
        live = {n: r for n, r in rows.items() if r.get("reachable")}
        if not live:
            return Measurement(None, {"replicas": rows}, 0, insufficient="no serving replica answered")
        if self.spec.stat == "unvalidated":
            value = sum(1 for r in live.values() if not r["validated"])
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


