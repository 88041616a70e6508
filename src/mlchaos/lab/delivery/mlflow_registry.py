"""MLflow model-registry adapter (local SQLite backend store, local artifact store).

Maps the :class:`~mlchaos.lab.delivery.registry.ModelRegistry` interface
onto MLflow's own concepts, so a team that already has an MLflow registry
runs the same pipeline, faults and probes against it:

* a version is an MLflow *model version* whose source is the artifacts of
  an MLflow *run* holding ``model/artifact.pkl`` and ``model/metadata.json``;
  its metrics are logged on that run;
* our version id is ``<name>-m<MLflow version>`` unless the caller names
  it (the lab's set-up model keeps ``fraud-v2``); the id, the sha256 and the
  creation time are model-version tags (``mlchaos.version``,
  ``mlchaos.sha256``);
* aliases are MLflow registered-model aliases.

``mlflow`` is imported only here (optional extra ``mlchaos[mlflow]``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from mlchaos.lab.delivery.registry import (
    ModelRegistry,
    ModelVersion,
    RegistryError,
    _corrupt_if_armed,
    sha256_file,
)

TAG_VERSION = "mlchaos.version"
TAG_SHA = "mlchaos.sha256"
EXPERIMENT = "mlchaos-delivery"


class MlflowRegistry(ModelRegistry):
    """An MLflow registry at ``tracking_uri`` (e.g. ``sqlite:///…/mlflow.sqlite``)."""

    def __init__(self, tracking_uri: str, artifact_root: Path | str, deadline: float | None = None) -> None:
        super().__init__(deadline)
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.artifact_root = Path(artifact_root)
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def _experiment_id(self) -> str:
        exp = self.client.get_experiment_by_name(EXPERIMENT)
        if exp is not None:
            return str(exp.experiment_id)
        self.artifact_root.mkdir(parents=True, exist_ok=True)
        return str(self.client.create_experiment(EXPERIMENT, artifact_location=self.artifact_root.as_uri()))

    def _ensure_model(self, name: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException:
            self.client.create_registered_model(name)

    def _register(self, name: str, artifact: Path, version: str | None, metadata: dict[str, Any],
                  metrics: dict[str, float]) -> ModelVersion:
        if version is not None and self._find(name, version) is not None:
            raise RegistryError(f"{name} {version} is already registered")
        sha = sha256_file(artifact)
        self._ensure_model(name)
        run = self.client.create_run(self._experiment_id(), run_name=f"register-{name}")
        run_id = run.info.run_id
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp) / "model"
            d.mkdir()
            shutil.copyfile(artifact, d / "artifact.pkl")
            (d / "metadata.json").write_text(json.dumps(metadata, default=str))
            self.client.log_artifacts(run_id, str(d), artifact_path="model")
        for k, v in metrics.items():
            if isinstance(v, int | float) and v == v:  # MLflow stores NaN badly; the record keeps it
                self.client.log_metric(run_id, k, float(v))
        self.client.set_terminated(run_id)
        created = time.time()
        mv = self.client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id,
                                              tags={TAG_SHA: sha, "mlchaos.created_at": str(created)})
        vid = version or f"{name}-m{mv.version}"
        self.client.set_model_version_tag(name, mv.version, TAG_VERSION, vid)
        out = ModelVersion(name, vid, sha, metadata, metrics, [], created)
        _corrupt_if_armed(self, out)
        return out

    def _find(self, name: str, version: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.search_model_versions(f"name='{name}'")
        except MlflowException:
            return None
        for mv in found:
            if mv.tags.get(TAG_VERSION) == version:
                return mv
        return None

    def _run_dir(self, mv: Any) -> Path:
        uri = self.client.get_run(mv.run_id).info.artifact_uri
        return Path(unquote(urlparse(uri).path)) / "model"

    def _to_version(self, name: str, mv: Any) -> ModelVersion:
        d = self._run_dir(mv)
        try:
            meta = json.loads((d / "metadata.json").read_text())
        except (OSError, ValueError):
            meta = {}
        metrics = dict(self.client.get_run(mv.run_id).data.metrics)
        aliases = sorted(getattr(mv, "aliases", []) or [])
        return ModelVersion(name, mv.tags.get(TAG_VERSION, f"{name}-m{mv.version}"), mv.tags.get(TAG_SHA, ""),
                            meta, metrics, aliases, float(mv.tags.get("mlchaos.created_at", 0) or 0))

    def _get(self, name: str, version: str) -> ModelVersion:
        mv = self._find(name, version)
        if mv is None:
            raise RegistryError(f"{name} {version}: no such version")
        return self._to_version(name, mv)

    def _versions(self, name: str) -> list[ModelVersion]:
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.search_model_versions(f"name='{name}'")
        except MlflowException:
            return []
        return sorted((self._to_version(name, mv) for mv in found), key=lambda m: m.created_at)

    def _set_alias(self, name: str, alias: str, version: str) -> None:
        mv = self._find(name, version)
        if mv is None:
            raise RegistryError(f"{name} {version}: no such version")
        self.client.set_registered_model_alias(name, alias, mv.version)

    def _by_alias(self, name: str, alias: str) -> ModelVersion | None:
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client.get_model_version_by_alias(name, alias)
        except MlflowException:
            return None
        return self._to_version(name, mv)

    def _download(self, mv: ModelVersion, dest: Path) -> None:
        found = self._find(mv.name, mv.version)
        if found is None:
            raise RegistryError(f"{mv.name} {mv.version}: no such version")
        with tempfile.TemporaryDirectory() as tmp:
            local = self.client.download_artifacts(found.run_id, "model/artifact.pkl", tmp)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, dest)

    def artifact_path(self, name: str, version: str) -> Path:
        mv = self._find(name, version)
        if mv is None:
            raise RegistryError(f"{name} {version}: no such version")
        return self._run_dir(mv) / "artifact.pkl"
