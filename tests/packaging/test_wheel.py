"""mlchaos installed the way a user installs it: a built wheel, a fresh venv, another directory.

Everything else in the suite runs against the editable install of the checkout, where every
file of the source tree is importable and readable whether the wheel ships it or not: the
demo once crashed for every ``pip install .`` user (the request logs, ``*.jsonl``, were not
package data) while CI was green. So this module builds the wheel from a copy of the
sources, installs it into venvs that see nothing of the checkout or of the development
interpreter (no system site-packages, no ``PYTHONPATH``), and runs the commands a user runs,
from a directory outside the checkout:

* the ``[lab]`` install (the README's first quick-start command): ``--version``, ``validate``
  of every packaged experiment and of their ``examples copy``, ``run --dry-run`` and a real
  ``demo --only replica-kill`` whose verdicts must be the expected ones;
* the core install (``pip install mlchaos``): ``--help``, ``validate`` and a real ``run`` of a
  process experiment, and ``mlchaos demo`` refused with the one line naming ``[lab]``.

pip resolves the dependencies from whatever indexes the machine is configured with (the
local wheel cache here, PyPI in CI); installing the lab takes ≈40 s, the whole module ≈2
minutes on 2 cores, hence ``slow``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "mlchaos"
BUILD_OUTPUTS = (".so", ".pyd", ".pyc", ".pyo")
"""Suffixes the build makes, not the sources: never expected as package data."""

# installing a venv and a real demo run take minutes on a loaded 2-core box: more than the suite's 300 s
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _data_files() -> list[str]:
    """Every non-Python file of the source package, as a wheel member name (mlchaos/...)."""
    out = []
    for p in SRC.rglob("*"):
        if not p.is_file() or "__pycache__" in p.parts or p.suffix in (".py", *BUILD_OUTPUTS):
            continue
        out.append(p.relative_to(SRC.parent).as_posix())
    return sorted(out)


def _clean_env(venv: Path | None = None) -> dict[str, str]:
    """The caller's environment minus anything that would let the checkout leak into a venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV",
                                                             "PYTHONSTARTUP", "PIP_REQUIRE_VIRTUALENV")}
    env["PYTHONNOUSERSITE"] = "1"
    env["NO_COLOR"] = "1"
    if venv is not None:
        env["VIRTUAL_ENV"] = str(venv)
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def _sh(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _ok(proc: subprocess.CompletedProcess[str], code: int = 0) -> str:
    assert proc.returncode == code, (
        f"{' '.join(map(str, proc.args))} exited {proc.returncode} (expected {code})\n"
        f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    )
    return proc.stdout


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("packaging")


@pytest.fixture(scope="module")
def wheel(work: Path) -> Path:
    """The wheel, built from a copy of the sources so the build never writes into the checkout
    (other processes may be using it) and stale in-place build outputs cannot slip in."""
    copy = work / "source"
    copy.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, copy / name)
    shutil.copytree(ROOT / "src", copy / "src", ignore=shutil.ignore_patterns(
        "__pycache__", "*.egg-info", *(f"*{s}" for s in BUILD_OUTPUTS)))
    dist = work / "dist"
    _ok(_sh([sys.executable, "-m", "pip", "wheel", str(copy), "--no-deps", "-q", "-w", str(dist)], work, _clean_env()))
    (built,) = dist.glob("mlchaos-*.whl")
    return built


def _venv(work: Path, name: str, requirement: str) -> Path:
    venv = work / name
    _ok(_sh([sys.executable, "-m", "venv", str(venv)], work, _clean_env()))
    _ok(_sh([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", requirement], work, _clean_env(venv)))
    return venv


@pytest.fixture(scope="module")
def lab_venv(work: Path, wheel: Path) -> Path:
    return _venv(work, "venv-lab", f"{wheel}[lab]")


@pytest.fixture(scope="module")
def core_venv(work: Path, wheel: Path) -> Path:
    return _venv(work, "venv-core", str(wheel))


@pytest.fixture
def user_dir(tmp_path: Path) -> Iterator[Path]:
    """A working directory outside the checkout, as a user's would be."""
    d = tmp_path / "user"
    d.mkdir()
    assert ROOT not in d.parents
    yield d


def _package_dir(venv: Path, cwd: Path) -> Path:
    out = _ok(_sh([str(venv / "bin" / "python"), "-c", "import mlchaos, os; print(os.path.dirname(mlchaos.__file__))"],
                  cwd, _clean_env(venv)))
    pkg = Path(out.strip())
    assert venv in pkg.parents, f"mlchaos imported from {pkg}, not from the venv {venv}"
    return pkg


def test_the_wheel_holds_every_data_file_of_the_source_tree(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = _data_files()
    assert any(n.endswith(".jsonl") for n in expected), "the scan found no request logs: is SRC right?"
    missing = [f for f in expected if f not in names]
    assert not missing, f"in src/mlchaos but not in the wheel (package-data in pyproject.toml): {missing}"


def test_the_lab_install_runs_the_demo(lab_venv: Path, user_dir: Path) -> None:
    env = _clean_env(lab_venv)
    mlchaos = str(lab_venv / "bin" / "mlchaos")
    pkg = _package_dir(lab_venv, user_dir)
    assert _ok(_sh([mlchaos, "--version"], user_dir, env)).strip() == "mlchaos 0.1.0"

    experiments = sorted(str(p) for p in pkg.rglob("*.yaml"))
    assert len(experiments) >= 13, experiments  # 7 scenarios, tiny-pause, 5 Kubernetes experiments
    _ok(_sh([mlchaos, "examples", "copy", "ex"], user_dir, env))
    copied = sorted(str(p) for p in (user_dir / "ex").rglob("*.yaml"))
    assert len(copied) == len(experiments)
    out = _ok(_sh([mlchaos, "validate", *experiments, *copied], user_dir, env))
    assert out.count(": ok") == 2 * len(experiments)

    plan = _ok(_sh([mlchaos, "run", "--dry-run", "ex/scenarios/replica-kill.yaml"], user_dir, env))
    assert "replica" in plan

    out = _ok(_sh([mlchaos, "demo", "--only", "replica-kill", "--quiet", "--out", "report"], user_dir, env))
    summary = json.loads((user_dir / "report" / "summary.json").read_text())
    assert sorted(r["status"] for r in summary["runs"]) == ["failed", "passed"], out


def test_the_core_install_runs_experiments_and_names_the_extras(core_venv: Path, user_dir: Path) -> None:
    env = _clean_env(core_venv)
    mlchaos = str(core_venv / "bin" / "mlchaos")
    pkg = _package_dir(core_venv, user_dir)
    installed = _ok(_sh([str(core_venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"], user_dir, env))
    names = {d["name"].lower() for d in json.loads(installed)}
    assert not names & {"pandas", "pyarrow", "fastapi", "uvicorn", "scikit-learn", "pandera", "aiohttp"}, names

    assert "Usage" in _ok(_sh([mlchaos, "--help"], user_dir, env))

    http = user_dir / "http.yaml"
    http.write_text(
        "title: my own service answers\n"
        "target: {platform: http, url: 'http://127.0.0.1:18081'}\n"
        "steady_state:\n"
        "  - {name: health, probe: http, url: /health, equals: 200}\n"
        "method:\n"
        "  - {name: slow upstream, fault: latency, delay: 100ms, at: 1s, duration: 2s}\n"
    )
    tiny = pkg / "examples" / "tiny-pause.yaml"
    _ok(_sh([mlchaos, "validate", str(http), str(tiny)], user_dir, env))

    # a real run with the core only: the paused replica breaks the latency hypothesis
    run = _sh([mlchaos, "run", str(tiny), "--quiet"], user_dir, env, timeout=120)
    _ok(run, 1)
    assert "FAILED" in run.stdout.upper() + run.stderr.upper()

    demo = _sh([mlchaos, "demo"], user_dir, env)
    _ok(demo, 2)
    assert demo.stderr.strip() == "error: the demo needs the lab: pip install 'mlchaos[lab]'"
    assert "Traceback" not in demo.stdout + demo.stderr

    scenario = _sh([mlchaos, "validate", str(pkg / "examples" / "scenarios" / "replica-kill.yaml")], user_dir, env)
    _ok(scenario, 2)
    assert "target 'lab' needs the lab: pip install 'mlchaos[lab]'" in scenario.stderr

    data = user_dir / "data.yaml"
    data.write_text(http.read_text().replace(
        "{name: slow upstream, fault: latency, delay: 100ms, at: 1s, duration: 2s}",
        "{name: zeros, fault: file-corrupt, path: data.parquet, kind: zeros, column: x}"))
    refused = _sh([mlchaos, "run", str(data)], user_dir, env)
    _ok(refused, 2)
    assert f"{data}:6:" in refused.stderr + refused.stdout
    assert "fault 'file-corrupt' needs the data tools: pip install 'mlchaos[data]'" in refused.stderr + refused.stdout
    assert "Traceback" not in refused.stderr + refused.stdout
