"""Which pods a fault hits: blast radius plus "keep at least N ready replicas".

The arithmetic (``one``/``count``/``percent`` rounding, keep-N) is the engine's
(:func:`mlchaos.contract.blast.select_count`), so every platform rounds the same
way: ``percent`` is ``ceil(p * total)`` (a non-zero percentage never hits zero
pods and never more than all of them) and ``keep_healthy=n`` caps the selection
at ``ready - n``, refusing (default) or shrinking the selection.

What this module adds for Kubernetes:

* Ready pods are chosen before not-ready ones: hitting a pod that already
  serves no traffic proves nothing, and it keeps the keep-N arithmetic honest
  (every pod we hit is assumed to stop being ready).
* The choice is reproducible with a ``seed``.
* Chaos Mesh has no keep-N rule (research notes, §1): mlchaos resolves the pods
  itself and pins them by name in the Chaos Mesh object (``mode: all`` over an
  explicit ``selector.pods`` list), so Chaos Mesh cannot pick others.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Literal

from mlchaos.contract.blast import BlastRadiusError, select_count

__all__ = ["BlastRadiusError", "PodRef", "Selection", "choose_pods"]


@dataclasses.dataclass(frozen=True)
class PodRef:
    """The facts about one pod that selection and the journal need."""

    namespace: str
    name: str
    ready: bool
    phase: str = "Running"
    ip: str | None = None
    node: str | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclasses.dataclass(frozen=True)
class Selection:
    """The outcome of blast-radius selection, for the plan and the journal."""

    chosen: list[PodRef]
    matched: int
    ready: int
    wanted: int
    keep_healthy: int
    shrunk: bool

    def plan(self) -> dict[str, object]:
        return {
            "matched": self.matched,
            "ready": self.ready,
            "selected": len(self.chosen),
            "wanted": self.wanted,
            "keep_healthy": self.keep_healthy,
            "shrunk": self.shrunk,
            "pods": [p.key for p in self.chosen],
        }


def choose_pods(
    pods: list[PodRef],
    *,
    mode: Literal["one", "count", "percent", "all"] = "one",
    count: int | None = None,
    percent: float | None = None,
    keep_healthy: int = 0,
    on_shortfall: Literal["refuse", "shrink"] = "refuse",
    seed: int | None = None,
) -> Selection:
    """Pick the pods to hit; raise :class:`BlastRadiusError` before anything is touched.

    ``mode="all"`` is ``percent=100%``: it still obeys ``keep_healthy``.
    """
    total = len(pods)
    ready = sum(1 for p in pods if p.ready)
    if mode == "one":
        count, percent = None, None
    elif mode == "count":
        if count is None:
            raise BlastRadiusError("mode 'count' needs 'count'")
        percent = None
    elif mode == "percent":
        if percent is None:
            raise BlastRadiusError("mode 'percent' needs 'percent'")
        count = None
    elif mode == "all":
        count, percent = None, 1.0
    unconstrained = select_count(total, count=count, percent=percent)
    # Ready pods are hit first, so hitting n leaves ready - min(n, ready); with keep_healthy > 0
    # that is exactly the engine's rule n <= ready - keep_healthy.  With keep_healthy == 0 nothing
    # constrains n, so readiness is not passed (the engine would cap n at the ready count).
    n = select_count(
        total,
        count=count,
        percent=percent,
        keep_healthy=keep_healthy,
        healthy=ready if keep_healthy > 0 else None,
        on_shortfall=on_shortfall,
    )
    rng = random.Random(seed)
    ordered = sorted(pods, key=lambda p: p.key)
    ready_pods = [p for p in ordered if p.ready]
    other = [p for p in ordered if not p.ready]
    rng.shuffle(ready_pods)
    rng.shuffle(other)
    chosen = sorted((ready_pods + other)[:n], key=lambda p: p.key)
    return Selection(
        chosen=chosen,
        matched=total,
        ready=ready,
        wanted=unconstrained,
        keep_healthy=keep_healthy,
        shrunk=n < unconstrained,
    )


def scale_target(
    current_ready: int,
    replicas: int,
    *,
    keep_healthy: int = 0,
    on_shortfall: Literal["refuse", "shrink"] = "refuse",
) -> int:
    """The replica count a scale-down may set without breaking keep-N-ready.

    Scaling up never breaks it.  Scaling to fewer than ``keep_healthy`` replicas
    is refused, or shrunk to ``keep_healthy`` replicas; a shrink that leaves the
    deployment unchanged is refused (the experiment would test nothing).
    """
    if replicas < 0:
        raise BlastRadiusError(f"replicas must be >= 0, got {replicas}")
    if replicas >= keep_healthy or replicas >= current_ready:
        return replicas
    if on_shortfall == "refuse":
        raise BlastRadiusError(
            f"scaling to {replicas} replicas would leave fewer than {keep_healthy} ready "
            f"({current_ready} ready now): refused before touching anything"
        )
    if keep_healthy >= current_ready:
        raise BlastRadiusError(
            f"keep_healthy={keep_healthy} with {current_ready} ready leaves nothing to scale down: refused"
        )
    return keep_healthy
