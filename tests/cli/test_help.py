"""``-h`` everywhere ``--help`` works, in plain words; ``mlchaos plugins`` describes every plugin."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from mlchaos.registry import BUILTIN

COMMANDS = [
    [], ["run"], ["validate"], ["schema"], ["journal"], ["report"], ["stop"], ["demo"], ["init"], ["plugins"],
    ["proxy"], ["load"], ["lab"], ["lab", "up"], ["lab", "status"], ["lab", "down"], ["lab", "logs"],
    ["lab", "variant"], ["lab", "model"], ["lab", "batch"], ["lab", "manifests"], ["k8s"], ["k8s", "render"],
    ["k8s", "cleanup"],
]
# reST literals and roles, typer's <bool>/<list[str]> placeholders, {required} usage braces
NOT_PLAIN = re.compile(r"``|:[a-z]+:`|<(bool|str|int|float|path|list\[[^\]]*\])>|\{[a-z_]+\}", re.I)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlchaos", *args], capture_output=True, text=True, timeout=60)


def _help_commands() -> list[list[str]]:
    """The table above must name every command: a new one gets its -h checked too."""
    from mlchaos.cli import COMMANDS as TABLE

    named = {c[0] for c in COMMANDS if c}
    return COMMANDS + [[n] for n in sorted(set(TABLE) - named)]


@pytest.mark.parametrize("argv", _help_commands(), ids=lambda a: " ".join(a) or "root")
def test_short_help_is_long_help_in_plain_words(argv: list[str]) -> None:
    short, long = _cli(*argv, "-h"), _cli(*argv, "--help")
    assert short.returncode == 0, short.stderr
    assert short.stdout == long.stdout
    assert "Usage: mlchaos" in short.stdout
    bad = NOT_PLAIN.findall(short.stdout)
    assert not bad, f"mlchaos {' '.join(argv)} -h shows markup/placeholders {bad}:\n{short.stdout}"
    assert "╭" not in short.stdout  # no rich boxes cut at 80 columns when piped


def test_every_builtin_plugin_has_a_description() -> None:
    r = _cli("plugins", "--json")
    assert r.returncode == 0, r.stderr
    listing = json.loads(r.stdout)
    for kind, names in BUILTIN.items():
        rows = {row["name"]: row for row in listing[kind + "s"]}
        for name in names:
            desc = rows[name]["description"]
            assert desc and not NOT_PLAIN.search(desc), f"{kind} {name}: {desc!r}"
    text = _cli("plugins").stdout
    assert "process" in text and "Local processes" in text
