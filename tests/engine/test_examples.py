"""Every shipped experiment validates, with `mlchaos validate` and against the JSON Schema editors use."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from mlchaos.spec.loader import json_schema, load_file

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p for p in (ROOT / "examples").rglob("*.yaml") if "ci" not in p.parts)
PACKAGED = sorted((ROOT / "src" / "mlchaos" / "examples").rglob("*.yaml"))


@pytest.fixture(scope="module")
def schema() -> dict:
    return json_schema()


@pytest.mark.parametrize("path", EXAMPLES + PACKAGED, ids=lambda p: str(p.relative_to(ROOT)))
def test_example_validates(path: Path, schema: dict) -> None:
    load_file(path)
    jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 7 and len(PACKAGED) >= 7
