"""Scenario 7 ``validation-outage``: one release while the validation step crashes, naive vs mitigated.

What the lab contributes to the scenario, as data and set-up: the packaged
``scenarios/validation-outage.yaml`` pointed at a lab directory
(:func:`experiment`), and the hooks the demo runs around it (:func:`prepare`
registers the set-up model as the validated production version, :func:`finish`
puts serving back on it).  The variant (naive | mitigated) is the lab's: it
also selects the delivery pipeline's behaviour, through ``delivery-run``'s
``variant: auto``.  Running the experiment is the CLI's job
(:func:`mlchaos.cli.demo.run_validation_outage`): the lab is a system under
test and never imports the engine (tests/test_import_rules.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

EXPERIMENT = Path(__file__).resolve().parents[2] / "examples" / "scenarios" / "validation-outage.yaml"
"""The experiment file shipped in the package (``mlchaos examples copy DIR`` writes it to DIR/scenarios/)."""

def experiment(lab_dir: Path, path: Path = EXPERIMENT) -> dict[str, Any]:
    """The experiment file pointed at ``lab_dir`` (its lab target's ``dir``; the delivery faults and probes
    follow their target)."""
    exp: dict[str, Any] = yaml.safe_load(path.read_text())
    exp.setdefault("target", {"platform": "lab", "system": "serving"})["lab_dir"] = str(lab_dir)
    return exp


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
