"""Where the delivery system keeps its files inside a lab directory.

One place for the paths so the pipeline, its step processes, the faults and
the probes (separate processes) agree on them from the lab directory alone.
"""

from __future__ import annotations

from pathlib import Path

from mlchaos.lab.paths import LabPaths

MODEL_NAME = "fraud"
"""Registered model name of the lab's fraud model."""


class DeliveryPaths:
    """``<lab>/delivery/``: ``registry/`` (file registry), ``runs/<run_id>/`` (manifest, logs, outputs)."""

    def __init__(self, lab_dir: Path | str) -> None:
        self.lab = LabPaths(lab_dir)
        self.root = self.lab.root / "delivery"

    @property
    def registry(self) -> Path:
        return self.root / "registry"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.sqlite"

    @property
    def serving_models(self) -> Path:
        """Where serving replicas load fraud model files from (``<version>.pkl`` + ``<version>.json``)."""
        return self.lab.models / MODEL_NAME

    @property
    def failpoints(self) -> Path:
        """The failpoint directory delivery steps read (``MLCHAOS_FAILPOINT_DIR`` of every step process):
        keyed to the lab, so a fault armed for this lab reaches its pipeline whatever the caller's env."""
        return self.root / "failpoints"

    def run_dir(self, run_id: str) -> Path:
        """``runs/<run_id>``; ``run_id`` (it may come from ``--run-id``) must be a plain name."""
        from mlchaos.lab.auth import check_name

        return self.runs / check_name(run_id, "run id")
