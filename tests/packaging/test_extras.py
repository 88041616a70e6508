"""The light core's promise: a missing extra is one line naming it and exit 2, never a traceback.

These run in the development environment (every extra installed), so they hide an extra by
adding a module that cannot exist to its list in :mod:`mlchaos.extras`: the same code path a
core-only install takes (tests/packaging/test_wheel.py checks it for real in a fresh venv).
"""

from __future__ import annotations

import io
import sys
import tomllib
from pathlib import Path

import pytest

from mlchaos import extras, registry
from mlchaos.entry import main
from mlchaos.spec.check import validate_paths

ROOT = Path(__file__).resolve().parents[2]
GONE = "mlchaos_no_such_module_for_tests"


@pytest.fixture
def no_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(extras.EXTRAS, "lab", (*extras.EXTRAS["lab"], GONE))
    monkeypatch.setitem(extras.EXTRAS, "data", (GONE,))


def test_every_extra_named_is_declared_in_pyproject() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    used = set(extras.EXTRAS) | {e for e, _ in extras.COMMANDS.values()}
    used |= {e for table in extras.PLUGINS.values() for e in table.values()}
    assert used <= set(declared)
    assert {"all", "test"} <= set(declared)


def test_every_plugin_in_the_table_is_a_builtin() -> None:
    for kind, table in extras.PLUGINS.items():
        assert set(table) <= set(registry.BUILTIN[kind]), kind


def test_for_module_picks_the_smallest_extra() -> None:
    assert extras.for_module("pandas.core.frame") == "data"
    assert extras.for_module("sklearn") == "ml"
    assert extras.for_module("fastapi") == "lab"
    assert extras.for_module("kubernetes.client") == "kubernetes"
    assert extras.for_module("numpy") is None  # core


def test_the_message_is_plain_and_names_the_extra() -> None:
    assert extras.message("lab", "the demo", list(extras.EXTRAS["lab"])) == (
        "the demo needs the lab: pip install 'mlchaos[lab]'"
    )
    assert "(pandas not installed)" in extras.message("lab", "the demo", ["pandas"])


def test_demo_without_the_lab_is_one_line_and_exit_2(no_lab: None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--only", "replica-kill"])
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip().splitlines() == [
        f"error: the demo needs the lab ({GONE} not installed): pip install 'mlchaos[lab]'"
    ]


def test_help_needs_no_extra(no_lab: None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--help"])
    assert exc.value.code == 0
    assert "Usage" in capsys.readouterr().out


def test_a_command_reaching_a_missing_module_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fallback for a command the table does not list: its ModuleNotFoundError becomes the line."""
    import mlchaos.cli

    def boom(argv: list[str] | None = None) -> None:
        raise ModuleNotFoundError("No module named 'pyarrow'", name="pyarrow")

    monkeypatch.setattr(mlchaos.cli, "main", boom)
    with pytest.raises(SystemExit) as exc:
        main(["report", "x"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: mlchaos report needs the data tools (pyarrow not installed): pip install 'mlchaos[data]'"
    )


def test_a_plugin_without_its_extra_is_a_validation_error_at_its_line(no_lab: None, tmp_path: Path) -> None:
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        "title: corrupt a file\n"
        "target: {platform: process, command: [python, -c, 'import time; time.sleep(60)']}\n"
        "steady_state:\n"
        "  - {name: up, probe: http, url: http://127.0.0.1:9/health, equals: 200}\n"
        "method:\n"
        "  - {name: zeros, fault: file-corrupt, path: data.parquet, kind: zeros, column: x}\n"
    )
    out, err = io.StringIO(), io.StringIO()
    assert validate_paths([str(exp)], out=out, err=err) == 2
    text = err.getvalue()
    assert f"{exp}:6:" in text
    assert "fault 'file-corrupt' needs the data tools: pip install 'mlchaos[data]'" in text
    with pytest.raises(registry.PluginNeedsExtra):
        registry.get("target", "lab")


def test_a_plugin_module_failing_on_an_extra_module_is_reported_as_that_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(registry.BUILTIN["probe"], "needs-pandas", "mlchaos_fake_plugin:Probe")

    class Finder:
        def find_spec(self, name: str, path: object = None, target: object = None) -> None:
            if name == "mlchaos_fake_plugin":
                raise ModuleNotFoundError("No module named 'pandas'", name="pandas")

    monkeypatch.setattr(sys, "meta_path", [Finder(), *sys.meta_path])
    with pytest.raises(registry.PluginNeedsExtra, match=r"probe 'needs-pandas' needs the data tools"):
        registry.get("probe", "needs-pandas")


def test_a_predictions_file_without_the_data_extra_is_a_validation_error(no_lab: None, tmp_path: Path) -> None:
    """The predictions probe needs only the core on sampled responses, but pyarrow to read a file."""
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        "title: predictions from a file\n"
        "target: {platform: process, command: [python, -c, 'import time; time.sleep(60)']}\n"
        "steady_state:\n"
        "  - {name: fraud rate, probe: predictions, source: file, path: p.parquet, field: p, max: 0.1}\n"
    )
    err = io.StringIO()
    assert validate_paths([str(exp)], out=io.StringIO(), err=err) == 2
    assert f"{exp}:4:" in err.getvalue()
    assert "source: file needs the data tools: pip install 'mlchaos[data]'" in err.getvalue()
