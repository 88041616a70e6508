"""MLflow model-registry adapter: the lab's local SQLite store, or a user's MLflow server.

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

Against a server (``http(s)://…`` tracking URI) every read and write goes
through the server, artifacts included: the experiment is created without an
``artifact_location`` so the server's own artifact store (``--serve-artifacts``
/ ``--default-artifact-root``) holds them, metadata is read back with
``download_artifacts`` and a corrupted artifact is re-uploaded through the
client, never written to a local path behind the server's back.  Nothing is
created in the lab directory then.  A local ``sqlite:///`` store keeps its
artifacts in ``<lab>/delivery/mlflow-artifacts``.

``mlflow`` is imported only here (optional extra ``mlchaos[mlflow]``).
"""

from __future__ import annotations

import contextlib
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


def is_remote(uri: str) -> bool:
    """A tracking/registry URI served by an MLflow server (artifacts go through it), not a local store."""
    return urlparse(uri).scheme in ("http", "https", "databricks", "databricks-uc")


class MlflowRegistry(ModelRegistry):
    """An MLflow registry at ``registry_uri`` (default: ``tracking_uri``), runs and artifacts at ``tracking_uri``
    (e.g. ``sqlite:///…/mlflow.sqlite``, or ``http://host:5000`` for a server)."""

    def __init__(self, tracking_uri: str, artifact_root: Path | str | None = None, deadline: float | None = None,
                 *, registry_uri: str | None = None) -> None:
        super().__init__(deadline)
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        self.artifact_root = None if is_remote(tracking_uri) or artifact_root is None else Path(artifact_root)
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=self.registry_uri)

    def _experiment_id(self) -> str:
        exp = self.client.get_experiment_by_name(EXPERIMENT)
        if exp is not None:
            return str(exp.experiment_id)
        if self.artifact_root is None:  # a server: its own artifact store holds the artifacts
            return str(self.client.create_experiment(EXPERIMENT))
        self.artifact_root.mkdir(parents=True, exist_ok=True)
        return str(self.client.create_experiment(EXPERIMENT, artifact_location=self.artifact_root.as_uri()))

    def check(self) -> dict[str, Any]:
        """A read that proves the registry answers (preflight): the number of versions of nothing in
        particular, i.e. one ``search_registered_models`` call; writes nothing."""
        found = self.client.search_registered_models(max_results=1)
        return {"tracking_uri": self.tracking_uri, "registry_uri": self.registry_uri, "reachable": True,
                "models_seen": len(found)}

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
        if urlparse(uri).scheme not in ("", "file"):
            raise RegistryError(f"{mv.name} {mv.version}: the artifacts are stored at {uri}, not in a local "
                                "directory (read them through the client)")
        return Path(unquote(urlparse(uri).path)) / "model"

    def _metadata(self, mv: Any) -> dict[str, Any]:
        """``model/metadata.json`` of the version's run, read through the client (the server's store)."""
        from mlflow.exceptions import MlflowException

        with tempfile.TemporaryDirectory() as tmp:
            try:
                local = self.client.download_artifacts(mv.run_id, "model/metadata.json", tmp)
                meta = json.loads(Path(local).read_text())
            except (MlflowException, OSError, ValueError):
                return {}
        return meta if isinstance(meta, dict) else {}

    def _to_version(self, name: str, mv: Any) -> ModelVersion:
        meta = self._metadata(mv)
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

    def _rewrite_artifact(self, mv: ModelVersion, change: Any) -> str:
        """Download the stored artifact, change its bytes, upload it back to the same place through the
        client (what a tampered bucket object or a bad sync does to a server's store)."""
        found = self._find(mv.name, mv.version)
        if found is None:
            raise RegistryError(f"{mv.name} {mv.version}: no such version")
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(self.client.download_artifacts(found.run_id, "model/artifact.pkl", tmp))
            local.write_bytes(change(local.read_bytes()))
            self.client.log_artifact(found.run_id, str(local), artifact_path="model")
        with contextlib.suppress(Exception):
            return f"{self.client.get_run(found.run_id).info.artifact_uri}/model/artifact.pkl"
        return "model/artifact.pkl"
