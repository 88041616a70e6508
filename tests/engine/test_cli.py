"""CLI surface: fast start (no heavy imports for help/version), version, plugins, journal."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ["numpy", "pandas", "sklearn", "httpx", "pydantic", "yaml", "rich.table", "pyarrow", "uvloop"]


def test_help_and_version_do_not_import_heavy_modules() -> None:
    code = (
        "import sys\n"
        "from mlchaos.cli import main\n"
        "for argv in (['--help'], ['--version']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print('LOADED=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    loaded = r.stdout.strip().splitlines()[-1].removeprefix("LOADED=")
    assert loaded == "", f"--help/--version imported: {loaded}"


def test_version() -> None:
    import mlchaos

    r = subprocess.run([sys.executable, "-m", "mlchaos", "--version"], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == f"mlchaos {mlchaos.__version__}"


def test_help_lists_commands() -> None:
    r = subprocess.run([sys.executable, "-m", "mlchaos", "--help"], capture_output=True, text=True, timeout=60)
    for cmd in ("run", "validate", "schema", "journal", "stop", "demo", "lab", "proxy", "load"):
        assert cmd in r.stdout


def test_plugins_lists_builtins() -> None:
    r = subprocess.run([sys.executable, "-m", "mlchaos", "plugins"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert "process-pause" in r.stdout and "http" in r.stdout


def test_bad_flag_is_a_usage_error() -> None:
    r = subprocess.run([sys.executable, "-m", "mlchaos", "run", "--no-such-flag", "x.yaml"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "no-such-flag" in r.stderr
