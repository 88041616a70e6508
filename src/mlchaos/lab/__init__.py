"""The lab: small but real ML systems to break, each in a naive and a mitigated variant.

Systems: ``serving`` (3 model replicas behind a load balancer), ``realtime``
(fraud model → feature service → SQLite feature store, autoscaled),
``batch`` (offline parquet → failpoint → model → predictions + manifest) and
``recommender`` (recommendations → user-embedding service).  Use
:class:`Lab` from code, ``mlchaos lab`` from the shell; see ``docs/lab.md``.
"""

from mlchaos.lab.lab import ENTRYPOINTS, SYSTEMS, VARIANTS, Lab, LabError, LabInputError, ServiceStatus

__all__ = ["ENTRYPOINTS", "SYSTEMS", "VARIANTS", "Lab", "LabError", "LabInputError", "ServiceStatus"]
