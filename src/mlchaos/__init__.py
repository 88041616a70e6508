"""mlchaos: chaos engineering for machine-learning systems.

The Python API, for notebooks, pipelines and tests::

    experiment = mlchaos.load_experiment("experiment.yaml")   # or a dict of the same shape
    result = mlchaos.run(experiment, journal="run.jsonl")      # blocking; faults removed on every exit path
    result.status, result.exit_code, result.reason

    bad, mask = mlchaos.corrupt(df, "nulls", columns=["amount"], fraction=0.05, seed=7)
    df = mlchaos.failpoint("batch.after_extract", df)
    mlchaos.drift.psi(reference, current)

plus the plugin base classes ``mlchaos.Fault``, ``Probe``, ``Target`` and
``Applied`` (see README "Writing a plugin").

Every name is resolved lazily (module ``__getattr__``): ``import mlchaos``
itself imports nothing but this file, because the CLI's ``--help`` and
``--version`` must answer fast and a pipeline that only calls
``mlchaos.failpoint`` must not pay for pydantic, numpy or pandas
(tests/test_api.py checks it in a fresh interpreter).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlchaos.engine.runner import RunResult
    from mlchaos.spec.experiment import Experiment

__version__ = "0.1.0"

#: Public name → ``module:attribute`` it is imported from on first use.
_LAZY: dict[str, str] = {
    "Fault": "mlchaos.plugin:Fault",
    "Probe": "mlchaos.plugin:Probe",
    "Target": "mlchaos.plugin:Target",
    "Applied": "mlchaos.plugin:Applied",
    "Experiment": "mlchaos.spec.experiment:Experiment",
    "SpecErrors": "mlchaos.spec.errors:SpecErrors",
    "corrupt": "mlchaos.data:corrupt",
    "failpoint": "mlchaos.failpoints:failpoint",
    "drift": "mlchaos.drift:",
}

__all__ = ["__version__", "load_experiment", "run", *_LAZY]


def load_experiment(source: str | os.PathLike[str] | dict[str, Any], *,
                    variables: dict[str, str] | None = None) -> Experiment:
    """Validate an experiment: a YAML file's path, or the same document as a dict.

    ``variables`` define a file's ``${NAME}`` (as ``--var NAME=VALUE``; the environment
    is used for the rest).  Raises :class:`mlchaos.SpecErrors` listing every problem (with
    file, line and column for a file), exactly what ``mlchaos validate`` reports.
    """
    from mlchaos.spec.loader import load_dict, load_file

    if isinstance(source, dict):
        if variables:
            raise TypeError("variables apply to an experiment file; a dict is already Python data")
        return load_dict(source)
    if isinstance(source, str | os.PathLike):
        return load_file(source, variables=variables)
    raise TypeError(f"load_experiment takes a path or a dict, got {type(source).__name__}")


def run(experiment: Experiment | str | os.PathLike[str] | dict[str, Any], *,
        journal: str | os.PathLike[str] | None = None) -> RunResult:
    """Run an experiment to its verdict (blocking), like ``mlchaos run``; faults are removed on every exit path.

    ``experiment`` is what :func:`load_experiment` returns (an :class:`Experiment`), or anything it
    takes.  ``journal`` is where the JSON-lines journal goes (default: none
    kept beyond the run's state).  The result has ``status``, ``exit_code``,
    ``reason``, ``run_id``, ``journal`` and ``summary``.
    """
    from mlchaos.engine.runner import run_experiment

    if isinstance(experiment, dict | str | os.PathLike):
        experiment = load_experiment(experiment)
    return run_experiment(experiment, journal_path=os.fspath(journal) if journal is not None else None)


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'mlchaos' has no attribute {name!r}")
    import importlib

    module, _, attr = target.partition(":")
    value = importlib.import_module(module)
    # not cached in globals(): importing a submodule binds its name here by itself (``failpoint`` is
    # the function from ``mlchaos.failpoints``; the old module path's shim binds that same object)
    return getattr(value, attr) if attr else value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
