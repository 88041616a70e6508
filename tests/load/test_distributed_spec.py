"""The distributed workers' ``--mlchaos-spec @file`` is read like an experiment file: bounded, positioned.

(``mlchaos.load.distributed`` itself is not imported here: locust monkey-patches the process at import.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlchaos.load.spec import read_spec_file
from mlchaos.spec.errors import SpecErrors


def test_a_spec_file_is_read_with_the_experiment_loaders_bounds(tmp_path: Path) -> None:
    ok = tmp_path / "ok.yaml"
    ok.write_text("rate: 100/s\nduration: 2s\n")
    assert read_spec_file(str(ok)).rate == 100.0
    bomb = tmp_path / "bomb.yaml"
    rows = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    rows += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)]
    bomb.write_text("\n".join(rows) + "\n")
    with pytest.raises(SpecErrors, match="alias"):
        read_spec_file(str(bomb))
