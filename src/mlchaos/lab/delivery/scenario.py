"""Scenario 7 ``validation-outage``: one release while the validation step crashes, naive vs mitigated.

The demo calls :func:`run` once per variant: it brings up the lab's serving
system in that variant (the variant also selects the delivery pipeline's
behaviour, through ``delivery-run``'s ``variant: auto``), registers the
set-up model as the validated production version, runs
the packaged ``scenarios/validation-outage.yaml`` with the engine and brings the lab down
again (only if this call started it).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from mlchaos.engine.runner import RunResult

EXPERIMENT = Path(__file__).resolve().parents[2] / "examples" / "scenarios" / "validation-outage.yaml"
"""The experiment file shipped in the package (``mlchaos examples copy DIR`` writes it to DIR/scenarios/)."""

def experiment(lab_dir: Path, path: Path = EXPERIMENT) -> dict[str, Any]:
    """The experiment file pointed at ``lab_dir`` (its lab target's ``dir``; the delivery faults and probes
    follow their target)."""
    exp: dict[str, Any] = yaml.safe_load(path.read_text())
    exp.setdefault("target", {"platform": "lab", "system": "serving"})["dir"] = str(lab_dir)
    return exp


def run(variant: str, lab_dir: Path, journal: Path, *, load_delay: float = 0.5) -> RunResult:
    """Run scenario 7 in ``variant`` (``naive`` | ``mitigated``) on the lab in ``lab_dir``.

    Returns the engine's :class:`~mlchaos.engine.runner.RunResult`: naive →
    ``failed`` (an unvalidated model reached serving), mitigated → ``passed``.
    """
    from mlchaos.engine.runner import run_experiment
    from mlchaos.lab import Lab
    from mlchaos.spec.loader import load_dict

    if variant not in ("naive", "mitigated"):
        raise ValueError(f"variant must be naive or mitigated, got {variant!r}")
    lab_dir = Path(lab_dir)
    lab = Lab(lab_dir, load_delay=load_delay)
    started = not lab.is_up()
    try:
        lab.up(["serving"], variant=variant)
        prepare(lab)
        return run_experiment(load_dict(experiment(lab_dir), source=str(EXPERIMENT)), journal_path=journal)
    finally:
        if started:
            lab.down()


def prepare(lab: Any) -> None:
    """Serving back on the set-up model, and that model registered as the validated production version."""
    from mlchaos.lab.delivery.pipeline import bootstrap

    lab.set_model_version("current")  # a previous run may have left a delivered version in place
    lab.wait_ready(30)
    bootstrap(Path(lab.paths.root))


def finish(lab: Any) -> None:
    """Leave serving on the set-up model for whatever runs next."""
    lab.set_model_version("current")
    lab.wait_ready(30)
