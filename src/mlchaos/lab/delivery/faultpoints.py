"""How delivery steps learn which faults an experiment armed: named failpoints with a lease.

The steps are separate processes started by the pipeline; the experiment
runner is yet another.  They share only the disk, so the control channel is
the failpoint directory of :mod:`mlchaos.failpoints`: a record per name with
an ``expires_at`` lease, so a fault lapses by itself when the runner stops
renewing it.  Delivery faults are armed with ``kind="raise"`` and a ``mode``
parameter (``crash``, ``hang``, ``nan``, ``unreachable``, ``slow``,
``swap``...), which the step reads here and acts out for real (exit code,
sleep past its timeout, NaN metrics, refused registry calls).
"""

from __future__ import annotations

from typing import Any

from mlchaos import failpoint as fp

TRAIN_DATA = "delivery.train.after_extract"
"""Data failpoint on the training frame (any :func:`mlchaos.data.corrupt` kind, e.g. ``label_noise``)."""
VALIDATE = "delivery.validate"
"""Validation step behaviour: ``mode`` = ``crash`` | ``hang`` | ``nan`` | ``missing``."""
REGISTRY = "delivery.registry"
"""Registry availability: ``mode`` = ``unreachable`` | ``slow`` (``delay_s``)."""
ARTIFACT = "delivery.artifact"
"""Stored artifact corruption after upload: ``mode`` = ``swap`` (``replacement`` path) | ``bitflip`` | ``truncate``."""

POINTS = (TRAIN_DATA, VALIDATE, REGISTRY, ARTIFACT)


def armed(point: str) -> dict[str, Any] | None:
    """The parameters of an armed delivery failpoint (with ``mode`` and ``lease_id``), or None."""
    rec = fp.status(point)
    if rec is None:
        return None
    params = dict(rec.get("params") or {})
    params.setdefault("mode", "raise")
    params["lease_id"] = rec.get("lease_id")
    return params


def record_effect(point: str, params: dict[str, Any], **fields: Any) -> None:
    """Append what the step did under an armed point to the failpoint's effects log (for the report)."""
    import json
    import os
    import time

    path = fp.failpoint_dir() / f"{point}.effects.jsonl"
    entry = {"t": time.time(), "name": point, "lease_id": params.get("lease_id"), "pid": os.getpid(),
             "kind": "raise", "mode": params.get("mode"), "affected": 1, **fields}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as fh:
            fh.write(json.dumps(entry, default=str) + "\n")
    except OSError:
        pass
