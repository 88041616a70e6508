"""Docs true to the code: every shell and Python snippet in README.md and docs/*.md runs as written.

A fenced ``sh``/``bash``/``console``/``python`` block either runs here (in a scratch directory, with its own
mlchaos state directory) or is marked, on the line before its fence:

* ``<!-- fragment: why -->``: an excerpt that needs a cluster, a running lab or a variable from the
  surrounding text.  It is still checked: Python must parse, shell must pass ``bash -n``.
* ``<!-- slow -->``: it runs, but takes more than a few seconds (an experiment run): marked ``slow``.

A new unmarked block that does not run fails this test, so the docs cannot drift from the code unseen.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGS = {"sh": "sh", "bash": "sh", "shell": "sh", "console": "console", "python": "python", "py": "python"}
FENCE = re.compile(r"^\s*```\s*([\w-]*)\s*$")
MARK = re.compile(r"^\s*<!--\s*(fragment|slow)\b.*-->\s*$")
#: Blocks owned elsewhere and run for real there (first line → where): no marker needed.
RUN_ELSEWHERE = {
    "pip install '.[lab]' && python -m mlchaos demo": "the README quick start: the wheel test installs and runs it",
}


@dataclasses.dataclass(frozen=True)
class Block:
    file: Path
    line: int
    lang: str
    code: str
    mark: str  # "", "fragment" or "slow"

    @property
    def id(self) -> str:
        return f"{self.file.name}:{self.line}"


def blocks() -> list[Block]:
    out = []
    for path in DOCS:
        lines = path.read_text().splitlines()
        i = 0
        while i < len(lines):
            m = FENCE.match(lines[i])
            if not m:
                i += 1
                continue
            end = next(j for j in range(i + 1, len(lines)) if FENCE.match(lines[j]))
            lang = LANGS.get(m.group(1).lower())
            if lang:
                prev = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
                mark = MARK.match(prev)
                out.append(Block(path, i + 1, lang, "\n".join(lines[i + 1:end]) + "\n", mark.group(1) if mark else ""))
            i = end + 1
    return out


ALL = blocks()


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "MLCHAOS_STATE_DIR": str(tmp / "state"), "MLCHAOS_LAB_DIR": str(tmp / "lab"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def _run(b: Block, tmp: Path) -> None:
    if re.search(r"\bpip install\b", b.code):  # a test never changes the environment it runs in
        pytest.fail(f"{b.id}: installs packages; mark it <!-- fragment: why -->")
    if b.lang == "console":
        pytest.fail(f"{b.id}: a console transcript (prompts and output) cannot run; mark it <!-- fragment: why -->")
    if b.lang == "python":
        script = tmp / "snippet.py"
        script.write_text(b.code)
        cmd = [sys.executable, str(script)]
    else:
        cmd = ["bash", "-euo", "pipefail", "-c", b.code]
    r = subprocess.run(cmd, cwd=tmp, env=_env(tmp), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{b.id} ({b.lang}) failed with exit {r.returncode}:\n{b.code}\n{r.stdout}\n{r.stderr}"


def _params(marks: set[str]) -> list[object]:
    return [pytest.param(b, id=b.id, marks=[pytest.mark.slow] if b.mark == "slow" else [])
            for b in ALL if b.mark in marks and not _run_elsewhere(b)]


def _run_elsewhere(b: Block) -> bool:
    return any(b.code.lstrip().startswith(first) for first in RUN_ELSEWHERE)


def test_the_docs_have_snippets() -> None:
    assert len(ALL) > 20 and any(b.mark == "" for b in ALL)


@pytest.mark.parametrize("block", _params({"", "slow"}))
def test_snippet_runs_as_written(block: Block, tmp_path: Path) -> None:
    _run(block, tmp_path)


@pytest.mark.parametrize("block", _params({"fragment"}))
def test_fragment_is_at_least_well_formed(block: Block) -> None:
    if block.lang == "python":
        try:
            compile(block.code, block.id, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT | ast.PyCF_ONLY_AST)
        except SyntaxError as exc:
            pytest.fail(f"{block.id}: does not parse: {exc}")
    elif block.lang == "sh":
        r = subprocess.run(["bash", "-n", "-c", block.code], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, f"{block.id}: {r.stderr}"
