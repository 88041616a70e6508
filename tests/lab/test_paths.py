"""One rule resolves a lab directory (``lab.paths.resolve_lab_dir``): ``Lab``, the CLI, the demo, the lab target
and the delivery faults and probes all go through it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlchaos.lab import Lab
from mlchaos.lab.paths import ENV_LAB_DIR, resolve_lab_dir


def test_precedence_value_then_default_then_env_then_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_LAB_DIR, str(tmp_path / "env"))
    assert resolve_lab_dir(tmp_path / "given", default=tmp_path / "dflt") == tmp_path / "given"
    assert resolve_lab_dir(None, default=tmp_path / "dflt") == tmp_path / "dflt"
    assert resolve_lab_dir() == tmp_path / "env"
    monkeypatch.delenv(ENV_LAB_DIR)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_lab_dir() == tmp_path / "home" / ".local" / "state" / "mlchaos" / "lab"


def test_relative_and_tilde_become_absolute_and_every_caller_agrees(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_lab_dir("lab") == tmp_path / "lab"
    assert resolve_lab_dir("~/lab") == tmp_path / "lab"
    for spelling in ("lab", "~/lab", str(tmp_path / "lab")):
        assert Lab(spelling).paths.root == resolve_lab_dir(spelling) == tmp_path / "lab"
    monkeypatch.setenv(ENV_LAB_DIR, "~/lab")
    assert Lab().paths.root == resolve_lab_dir(None) == tmp_path / "lab"
