"""Spec fields shared by the Kubernetes faults and probes (pydantic only: cheap to import)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mlchaos.plugin import StrictModel
from mlchaos.spec.types import Percent


def parse_selector(selector: dict[str, str] | str | None) -> dict[str, str] | None:
    """An equality-only selector string (``app=model,tier=serving``) as a label map; None if not one."""
    if selector is None:
        return None
    if isinstance(selector, dict):
        return dict(selector)
    out: dict[str, str] = {}
    for part in (p.strip() for p in selector.split(",") if p.strip()):
        if "!=" in part or " in " in part or " notin " in part or "=" not in part:
            return None
        key, _, value = part.replace("==", "=").partition("=")
        out[key.strip()] = value.strip()
    return out


def selector_string(selector: dict[str, str] | str | None) -> str:
    """A label map or selector string as the query string the API takes."""
    if selector is None:
        return ""
    if isinstance(selector, str):
        return selector
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


class PodSelectorFields(StrictModel):
    """Which pods: a namespace plus a label selector, or the pods of a named deployment."""

    namespace: str | None = Field(None, description="Namespace of the pods; default: the target's namespace.")
    selector: dict[str, str] | str | None = Field(
        None, description="Label selector: a map {app: model} or a string 'app=model,tier!=batch'."
    )
    deployment: str | None = Field(
        None, description="Select the pods of this deployment (its spec.selector) instead of 'selector'."
    )

    @model_validator(mode="after")
    def _one_way(self) -> PodSelectorFields:
        if (self.selector is None) == (self.deployment is None):
            raise ValueError("give exactly one of 'selector' or 'deployment'")
        return self


class BlastRadiusFields(StrictModel):
    """How many of the selected pods, and how many ready replicas must be left alone."""

    mode: Literal["one", "count", "percent", "all"] | None = Field(
        None,
        description="Blast radius; default: 'count' if count is set, 'percent' if percent is set, else 'one'.",
    )
    count: int | None = Field(None, ge=1, description="Hit exactly this many pods (mode 'count').")
    percent: Percent | None = Field(
        None, description="Hit ceil(percent x matched) pods, at least 1 (mode 'percent'), e.g. '34%'."
    )
    keep_healthy: int = Field(
        0, ge=0, description="Keep at least this many ready replicas untouched (checked before any mutation)."
    )
    on_shortfall: Literal["refuse", "shrink"] = Field(
        "refuse", description="When keep_healthy would be broken: refuse the fault, or hit fewer pods."
    )
    seed: int | None = Field(None, description="Seed for the random choice of pods (reproducible runs).")

    def blast_mode(self) -> Literal["one", "count", "percent", "all"]:
        if self.mode is not None:
            return self.mode
        if self.count is not None:
            return "count"
        if self.percent is not None:
            return "percent"
        return "one"
