"""The install commands people copy are the ones that are tested.

The README's quick start is exactly two commands: the first installs what the demo needs
(the ``[lab]`` extra: the core alone would refuse the demo) and runs it, the second is what
``.ci/run`` runs verbatim. The CI example installs mlchaos the way a user does, never
editable: an editable install reads files from the checkout that a wheel might not ship.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _quick_start() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "no sh block in the README's quick start"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_the_quick_start_is_two_commands_demo_then_the_ci_command() -> None:
    first, second = _quick_start()
    assert first.startswith("pip install '.[lab]'") and first.endswith("python -m mlchaos demo"), first
    ci = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()
          if ln.strip() and not ln.startswith("#") and not ln.startswith(("set ", "cd "))]
    assert ci == [second.replace("pip install -e", "pip install -q -e")], (ci, second)


def test_the_ci_example_installs_like_a_user() -> None:
    workflow = (ROOT / "examples" / "ci" / "github-actions.yml").read_text()
    installs = re.findall(r"run: (pip install .*)", workflow)
    assert installs, "the CI example installs nothing"
    assert not any(" -e " in f" {cmd} " or "--editable" in cmd for cmd in installs), installs
