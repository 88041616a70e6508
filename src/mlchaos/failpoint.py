"""Deprecated module path: the failpoint machinery is :mod:`mlchaos.failpoints`.

``mlchaos.failpoint`` is the *function* (``mlchaos.failpoint("batch.after_extract", df)``);
the module holding it was once at this very path, so importing the module shadowed the
function on the package and a callable-module patch kept both working.  The module is
now ``mlchaos.failpoints``.  Code that still writes ``import mlchaos.failpoint`` or
``from mlchaos.failpoint import arm, failpoint`` keeps working: this shim puts the
function object itself in ``sys.modules`` under this name (the import system binds
whatever a module leaves there), and that object carries ``arm``, ``renew``,
``disarm``, ``status``, ``effects``, ``failpoint_dir``, ``Failpoint`` and
``FailpointError`` as attributes, so both spellings name the same callable.
"""

from __future__ import annotations

import sys
import warnings

from mlchaos.failpoints import (
    Failpoint,
    FailpointError,
    arm,
    disarm,
    effects,
    failpoint,
    failpoint_dir,
    renew,
    status,
)

__all__ = ["Failpoint", "FailpointError", "arm", "disarm", "effects", "failpoint", "failpoint_dir", "renew", "status"]

warnings.warn("the module mlchaos.failpoint is now mlchaos.failpoints (mlchaos.failpoint is the function)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = failpoint  # type: ignore[assignment]
