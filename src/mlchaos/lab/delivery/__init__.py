"""The ``delivery`` lab system: train → validate → register → deploy for the fraud model.

Each step runs as its own process (``python -m mlchaos.lab.delivery.step``)
with a timeout, a log file and a status in a run manifest, the way Kubeflow
Pipelines or a CI job runs steps, so a crash, a hang or a wrong exit code of
one step is a real event the pipeline has to decide about.  Two variants:
``naive`` fails open (a crashed, hung or NaN validation counts as a pass and
the model is deployed), ``mitigated`` fails closed, deploys to one canary
replica first with an automatic rollback, and verifies the artifact checksum
before any replica loads it.  See ``docs/delivery.md``.
"""

from mlchaos.lab.delivery.layout import DeliveryPaths
from mlchaos.lab.delivery.registry import (
    ChecksumMismatch,
    FileRegistry,
    ModelRegistry,
    ModelVersion,
    RegistryError,
    RegistryUnavailable,
    open_registry,
)

__all__ = [
    "ChecksumMismatch",
    "DeliveryPaths",
    "FileRegistry",
    "ModelRegistry",
    "ModelVersion",
    "RegistryError",
    "RegistryUnavailable",
    "open_registry",
]
