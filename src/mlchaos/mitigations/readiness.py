"""Readiness gate: a service says it is ready only once its model is loaded.

Liveness (the process answers) and readiness (it can serve correct answers)
differ for ML services, whose start-up is dominated by loading the model.  A
load balancer or orchestrator that routes only to ``/ready`` services never
sends a request to a replica that would fail it.  Use :meth:`ReadinessGate.mark_ready`
when loading ends and :meth:`ReadinessGate.require` in request handlers.
"""

from __future__ import annotations

import time


class NotReady(Exception):
    """The service cannot serve yet (model not loaded, or draining)."""


class ReadinessGate:
    """A readiness flag with a reason, shared by the ``/ready`` route and the handlers."""

    def __init__(self) -> None:
        self._ready = False
        self.reason = "starting"
        self.since = time.time()

    @property
    def ready(self) -> bool:
        return self._ready

    def mark_ready(self) -> None:
        self._ready, self.reason, self.since = True, "ready", time.time()

    def mark_not_ready(self, reason: str) -> None:
        self._ready, self.reason, self.since = False, reason, time.time()

    def require(self) -> None:
        """Raise :class:`NotReady` unless ready (map it to HTTP 503)."""
        if not self._ready:
            raise NotReady(self.reason)

    def status(self) -> tuple[int, dict[str, object]]:
        """``(http_status, body)`` for a ``/ready`` endpoint."""
        return (200 if self._ready else 503), {
            "ready": self._ready,
            "reason": self.reason,
            "since": self.since,
        }
