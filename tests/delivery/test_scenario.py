"""Scenario 7 ``validation-outage`` end to end through the engine: naive fails, mitigated passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlchaos.cli.demo import run_validation_outage
from mlchaos.lab import Lab
from mlchaos.lab.delivery import scenario


def test_experiment_file_validates(tmp_path: Path) -> None:
    from mlchaos.spec.loader import load_dict

    v = load_dict(scenario.experiment(tmp_path / "lab"))
    assert v.fault_phase_length() == 20.0


@pytest.mark.slow
@pytest.mark.parametrize(("variant", "expected"), [("naive", "failed"), ("mitigated", "passed")])
def test_validation_outage(variant: str, expected: str, lab_dir: Path, tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    result = run_validation_outage(variant, lab_dir, journal)
    assert result.status.value == expected, result.reason
    assert not Lab(lab_dir).is_up()  # brought down again
    assert journal.exists()
    by_name = {f["name"]: f for f in result.summary["faults"]}
    release = by_name["one release"]["observed"]
    assert release["steps"]["validate"] == "failed"  # the crash really happened
    if variant == "naive":
        assert "only validated models serve" in result.reason
        assert release["status"] == "succeeded" and release["deployed_version"]
    else:
        assert release["status"] == "blocked" and release["deployed_version"] is None
