"""Open-loop HTTP load generation with trustworthy latency (no coordinated omission).

Public API (imported lazily so ``import mlchaos.load`` stays cheap):

* :class:`LoadSpec` — the ``load:`` section of an experiment (``mlchaos.load.spec``);
* :class:`LoadRunner` — start/stop a load, ``window(seconds)`` live stats, ``validity()``;
* :func:`run_load` / :func:`arun_load` — run a load with a duration to its end;
* :class:`WindowStats`, :class:`LoadReport`, :class:`Validity` — what they return;
* :class:`LogHistogram` — the mergeable latency histogram.

Modules, one concept each: ``spec`` (model), ``schedule`` (arrivals and
profiles), ``pacer`` (dispatch on time), ``client`` (raw HTTP/1.1 pool),
``histogram`` (log buckets), ``worker`` (one generator process), ``stats``
(windows, report, validity), ``runner`` (processes), ``locust`` (distributed).
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlchaos.load.histogram import LogHistogram
    from mlchaos.load.runner import LoadError, LoadRunner, arun_load, run_load
    from mlchaos.load.spec import LoadSpec
    from mlchaos.load.stats import LoadReport, Validity, WindowStats

LOCUSTFILE = os.path.join(os.path.dirname(__file__), "distributed.py")
"""Path of the locustfile for distributed runs (``locust -f LOCUSTFILE ...``; see ``distributed``)."""

__all__ = [
    "LOCUSTFILE",
    "LoadError",
    "LoadReport",
    "LoadRunner",
    "LoadSpec",
    "LogHistogram",
    "Validity",
    "WindowStats",
    "arun_load",
    "run_load",
]

_WHERE = {
    "LoadSpec": "mlchaos.load.spec",
    "LoadRunner": "mlchaos.load.runner",
    "LoadError": "mlchaos.load.runner",
    "run_load": "mlchaos.load.runner",
    "arun_load": "mlchaos.load.runner",
    "LoadReport": "mlchaos.load.stats",
    "Validity": "mlchaos.load.stats",
    "WindowStats": "mlchaos.load.stats",
    "LogHistogram": "mlchaos.load.histogram",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'mlchaos.load' has no attribute {name!r}")
