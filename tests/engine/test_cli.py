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


def test_validate_fast_path_skips_typer_and_asyncio_and_still_reports_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mlchaos.examples import path

    good = str(path("tiny-pause.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("title: x\ntarget: {platform: http, url: 'http://127.0.0.1:9'}\nmethd: []\n")
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['mlchaos', 'validate', {good!r}, {str(bad)!r}]\n"
        "import atexit, os\n"
        "real_exit = os._exit\n"
        "def spy(c):\n"
        "    print('LOADED=' + ','.join(m for m in ('typer', 'click', 'asyncio', 'httpx') if m in sys.modules),"
        " flush=True)\n"
        "    real_exit(c)\n"
        "os._exit = spy\n"
        "from mlchaos.entry import main\n"
        "main()\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert f"{good}: ok" in r.stdout
    assert f"{bad}:3:1: methd: unknown key" in r.stderr and "did you mean 'method'" in r.stderr
    assert r.stdout.strip().splitlines()[-1] == "LOADED=", r.stdout


def test_validate_options_other_than_quiet_go_to_typer() -> None:
    r = subprocess.run([sys.executable, "-m", "mlchaos", "validate", "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "FILE:LINE:COL" in r.stdout
    r = subprocess.run([sys.executable, "-m", "mlchaos", "validate", "-q", "--bogus", "x.yaml"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "bogus" in r.stderr
