"""mlchaos: chaos engineering for machine-learning systems.

The top-level import stays tiny on purpose: the CLI's ``--help`` and
``--version`` must answer fast, so heavy libraries (numpy, pandas, httpx,
scikit-learn) are imported only by the modules that need them.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "failpoint"]


def __getattr__(name: str) -> Any:
    # Lazy public API: ``mlchaos.failpoint`` without paying for it on import.
    if name == "failpoint":
        from mlchaos.failpoint import failpoint

        return failpoint
    raise AttributeError(f"module 'mlchaos' has no attribute {name!r}")
