"""The package's layering holds by itself: no import goes in a forbidden direction.

The engine knows plugins only by name (the registry), the lab is a system
under test that knows nothing of the tool testing it, and plugins see the
engine only through the contract (:mod:`mlchaos.plugin`,
:mod:`mlchaos.contract`).  Written down once, these rules drift the moment
someone adds a convenient import; this test reads every module of
``src/mlchaos`` with :mod:`ast` (so imports inside functions and under
``if TYPE_CHECKING:`` count too: a lazy import is still a dependency) and
fails naming the file, the line and the rule.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import mlchaos

SRC = Path(mlchaos.__file__).resolve().parent

#: subpackage → the subpackages it must never import (directly or lazily), and why.
RULES: dict[str, tuple[tuple[str, ...], str]] = {
    "engine": (("faults", "probes", "lab", "load", "targets", "platforms"),
               "the engine knows plugins and run services only by name (mlchaos.registry)"),
    "lab": (("engine",), "the lab is a system under test; running experiments on it is the CLI's job"),
    "spec": (("engine", "load"), "validation must not pull in the runner or the load generator"),
    "proxy": (("engine",), "the fault proxy is a standalone data plane"),
    "load": (("engine",), "the load generator is a standalone tool the engine lends to probes"),
    "faults": (("engine", "probes"),
               "plugins see the engine only through mlchaos.plugin and mlchaos.contract; a fault never needs a probe"),
    "probes": (("engine", "faults"),
               "plugins see the engine only through mlchaos.plugin and mlchaos.contract; a probe measures, "
               "what it shares with faults lives with the target (e.g. targets.lab.lab_dir_for)"),
    "targets": (("engine", "faults", "probes"),
                "plugins see the engine only through mlchaos.plugin and mlchaos.contract; faults and probes "
                "use targets, not the other way"),
    "platforms": (("engine", "faults", "probes"),
                  "a platform (Kubernetes client, manifests) is what faults build on, never the other way"),
}

#: Imports that break a rule on purpose: (file relative to src/mlchaos, imported module) → reason.
#: Empty: every violation found so far was fixed in the code.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of everything ``path`` imports, wherever the import statement is.

    ``from a.b import c`` yields both ``a.b`` and ``a.b.c`` (``c`` may be a
    submodule); relative imports are resolved against the module's package.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def violations(root: Path) -> list[str]:
    """Every forbidden import under ``root`` (the ``mlchaos`` package directory), as ``file:line: ...``."""
    found: set[str] = set()
    for path in sorted(root.rglob("*.py")):
        parts = _module_name(path, root).split(".")
        if len(parts) < 2 or parts[1] not in RULES:
            continue
        forbidden, why = RULES[parts[1]]
        rel = path.relative_to(root).as_posix()
        for line, module in imported_modules(path, root):
            mp = module.split(".")
            if len(mp) >= 2 and mp[0] == root.name and mp[1] in forbidden:
                target = ".".join(mp[:2])
                if (rel, target) in EXCEPTIONS:
                    continue
                found.add(f"src/mlchaos/{rel}:{line}: {parts[1]} imports {target} ({why})")
    return sorted(found)


def test_no_import_goes_in_a_forbidden_direction() -> None:
    bad = violations(SRC)
    assert not bad, "forbidden imports:\n" + "\n".join(bad)


def test_exceptions_are_still_needed() -> None:
    """An exception whose import is gone must go too, or it silently allows the next one."""
    for (rel, target), reason in EXCEPTIONS.items():
        assert reason, (rel, target)
        mods = {m for _, m in imported_modules(SRC / rel, SRC)}
        assert any(m == target or m.startswith(target + ".") for m in mods), f"stale exception {rel} → {target}"


@pytest.mark.parametrize("source", [
    "from mlchaos.engine.runner import run_experiment\n",
    "def f():\n    from mlchaos.engine import runner\n",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mlchaos.engine.lease import LeaseStore\n",
    "import mlchaos.engine.state\n",
    "from mlchaos import engine\n",
    "from ...engine import runner\n",
])
def test_the_checker_sees_every_form_of_import(tmp_path: Path, source: str) -> None:
    """The rule test is only as good as its parser: a lazy, typed, aliased or relative import is caught."""
    pkg = tmp_path / "mlchaos"
    (pkg / "lab" / "sub").mkdir(parents=True)
    (pkg / "lab" / "sub" / "mod.py").write_text(source)
    assert len(violations(pkg)) == 1, violations(pkg)


def test_the_checker_allows_the_contract(tmp_path: Path) -> None:
    pkg = tmp_path / "mlchaos"
    (pkg / "faults").mkdir(parents=True)
    (pkg / "faults" / "x.py").write_text(
        "from mlchaos.contract.blast import select_count\nfrom mlchaos.plugin import Fault\n"
        "def f():\n    from mlchaos.lab import Lab\n"
    )
    assert violations(pkg) == []
