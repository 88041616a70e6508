"""Every shipped experiment validates, with `mlchaos validate` and against the JSON Schema editors use.

The examples have one source, the package (examples/README.md); ``mlchaos examples copy``
writes them out, and a copy must validate where it lands (a load's request log is resolved
beside its experiment, so the layout of the copy matters).
"""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from mlchaos.examples import catalog
from mlchaos.spec.loader import json_schema, load_file

ROOT = Path(__file__).resolve().parents[2]
PACKAGED = sorted(p for p in catalog().values() if p.suffix == ".yaml")


@pytest.fixture(scope="module")
def schema() -> dict:
    return json_schema()


@pytest.mark.parametrize("path", PACKAGED, ids=lambda p: str(p.relative_to(ROOT)))
def test_example_validates(path: Path, schema: dict) -> None:
    load_file(path)
    jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_there_are_examples() -> None:
    assert len(PACKAGED) >= 13  # 7 scenarios, tiny-pause, 5 Kubernetes experiments
    assert not (ROOT / "examples" / "scenarios").exists(), "a second copy of the scenarios is back in examples/"


def test_examples_copy_writes_runnable_files_and_never_overwrites(tmp_path: Path) -> None:
    from mlchaos.cli.examples import app

    dest = tmp_path / "mine"
    result = CliRunner().invoke(app, ["copy", str(dest)])
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == sorted(catalog())
    for rel, src in catalog().items():
        assert (dest / rel).read_bytes() == src.read_bytes()
    load_file(dest / "scenarios" / "replica-kill.yaml")  # its request log sits beside it

    (dest / "tiny-pause.yaml").write_text("mine\n")
    again = CliRunner().invoke(app, ["copy", str(dest)])
    assert again.exit_code == 2 and "--force" in again.output
    assert (dest / "tiny-pause.yaml").read_text() == "mine\n"
    forced = CliRunner().invoke(app, ["copy", str(dest), "--force"])
    assert forced.exit_code == 0 and (dest / "tiny-pause.yaml").read_bytes() == catalog()["tiny-pause.yaml"].read_bytes()


def test_examples_list_names_every_file_with_its_title() -> None:
    from mlchaos.cli.examples import app

    result = CliRunner().invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [ln.split()[0] for ln in lines] == list(catalog())
    assert any("One of three model replicas dies under load" in ln for ln in lines)
