"""Blast-radius arithmetic, in one place, with one set of rounding rules.

Every fault that hits "some of N things" (replicas, pods, processes, rows)
asks this module how many.  The rules are deliberately conservative and
documented in docs/experiment.md:

* ``count=k``: exactly ``k`` (an error if ``k > total``).
* ``percent=p``: ``ceil(p * total)`` - a non-zero percentage never rounds to
  zero things hit (a fault that hits nothing would produce a false "pass"),
  and rounding never exceeds ``total``.  A tiny epsilon absorbs float noise
  so that ``0.3 * 10`` is 3, not 4.
* neither: one thing (``one``).
* ``keep_healthy=n``: at least ``n`` healthy things must remain untouched;
  the selection is reduced to ``healthy - n``.  With ``on_shortfall="refuse"``
  (the default) a reduction is an error instead, raised before anything is
  touched; with ``"shrink"`` the smaller selection is used, but a selection
  of zero is always an error (the experiment would test nothing).
"""

from __future__ import annotations

import math
from typing import Literal

__all__ = ["BlastRadiusError", "select_count"]

_EPS = 1e-9


class BlastRadiusError(ValueError):
    """The requested blast radius cannot be honoured; nothing was touched."""


def select_count(
    total: int,
    *,
    count: int | None = None,
    percent: float | None = None,
    keep_healthy: int = 0,
    healthy: int | None = None,
    on_shortfall: Literal["refuse", "shrink"] = "refuse",
) -> int:
    """Return how many of ``total`` things a fault may hit.

    ``healthy`` defaults to ``total`` (everything counts as healthy).
    """
    if total < 0:
        raise BlastRadiusError(f"total must be >= 0, got {total}")
    if count is not None and percent is not None:
        raise BlastRadiusError("give either count or percent, not both")
    if healthy is None:
        healthy = total
    if not 0 <= healthy <= total:
        raise BlastRadiusError(f"healthy must be between 0 and total ({total}), got {healthy}")
    if keep_healthy < 0:
        raise BlastRadiusError(f"keep_healthy must be >= 0, got {keep_healthy}")
    if total == 0:
        raise BlastRadiusError("no targets matched: the fault would hit nothing")

    if count is not None:
        if count < 1:
            raise BlastRadiusError(f"count must be >= 1, got {count}")
        if count > total:
            raise BlastRadiusError(f"count {count} exceeds the {total} targets that matched")
        wanted = count
    elif percent is not None:
        if not 0.0 < percent <= 1.0:
            raise BlastRadiusError(f"percent must be in (0%, 100%], got {percent * 100:g}%")
        wanted = min(total, max(1, math.ceil(percent * total - _EPS)))
    else:
        wanted = 1

    if keep_healthy == 0:
        return wanted  # nothing to protect: unhealthy things may be hit too
    allowed = healthy - keep_healthy
    if wanted > allowed:
        if on_shortfall == "refuse" or allowed < 1:
            raise BlastRadiusError(
                f"hitting {wanted} of {total} would leave fewer than {keep_healthy} healthy "
                f"({healthy} healthy now): refused before touching anything"
            )
        wanted = allowed
    return wanted
