"""Mitigations for ML services: reusable in your own services, and used by the lab.

- :class:`CircuitBreaker` (async, on ``purgatory``) with timeout and fallback,
  and :class:`FeatureCache` (last known features with a staleness bound, else a default).
- :class:`ReadinessGate`: ready only once the model is loaded.
- :class:`ValidationGate`: a Pandera schema that halts a batch with a report.
- :func:`with_timeout` and :class:`Deadline`: bounded waits from a latency budget.

The lab's *mitigated* variants are built from exactly these parts.
"""

from mlchaos.mitigations.breaker import CircuitBreaker, CircuitOpen, FeatureCache, Outcome
from mlchaos.mitigations.readiness import NotReady, ReadinessGate
from mlchaos.mitigations.timeouts import Deadline, with_timeout
from mlchaos.mitigations.validation import ValidationFailed, ValidationGate, ValidationReport

__all__ = [
    "CircuitBreaker",
    "CircuitOpen",
    "Deadline",
    "FeatureCache",
    "NotReady",
    "Outcome",
    "ReadinessGate",
    "ValidationFailed",
    "ValidationGate",
    "ValidationReport",
    "with_timeout",
]
