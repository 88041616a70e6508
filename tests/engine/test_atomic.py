"""mlchaos.atomic: the one atomic writer (readers never see half a file, failures leave no litter)."""

from __future__ import annotations

import ast
import json
import os
import stat
from pathlib import Path

import pytest

from mlchaos import atomic
from mlchaos.atomic import replacing, write_bytes_atomic, write_json_atomic, write_text_atomic

SRC = Path(atomic.__file__).parent


def test_writes_replace_and_leave_no_temp(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    p.write_text("old")
    write_json_atomic(p, {"b": 1, "a": 2}, sort_keys=True, indent=1)
    assert p.read_text() == json.dumps({"a": 2, "b": 1}, indent=1)
    write_text_atomic(p, "text", durable=True)
    assert p.read_text() == "text"
    write_bytes_atomic(tmp_path / "sub" / "b.bin", b"\x00\x01", mkdir=True)
    assert (tmp_path / "sub" / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(q.name for q in tmp_path.iterdir()) == ["sub", "x.json"]


def test_failure_keeps_the_old_content_and_removes_the_temp(tmp_path: Path) -> None:
    p = tmp_path / "x"
    p.write_text("old")
    with pytest.raises(RuntimeError), replacing(p) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer died")
    assert p.read_text() == "old"
    assert [q.name for q in tmp_path.iterdir()] == ["x"]


def test_mode_is_exact_whatever_the_umask_and_default_follows_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "secret", "s", mode=0o600)
        write_text_atomic(tmp_path / "plain", "p")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o644


def test_staging_name_is_the_callers(tmp_path: Path) -> None:
    """A fault's write-ahead record knows the staging name before the write starts."""
    p, staged = tmp_path / "link", tmp_path / ".link.staged"
    os.symlink("a", p)
    with replacing(p, staging=staged) as tmp:
        assert tmp == staged
        os.symlink("b", tmp)
    assert os.readlink(p) == "b" and not staged.exists()


def test_no_other_module_hand_writes_temp_then_rename() -> None:
    """One way to write a file atomically: ``os.replace`` and ``mkstemp`` appear only where named here.

    The data faults rename a backup back over a file or a directory tree (a restore, not a write).
    """
    allowed = {"atomic.py": {"replace"}, "faults/swap.py": {"replace"}}
    found: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            f = node.func
            if isinstance(f.value, ast.Name) and f.value.id == "os" and f.attr in {"replace", "rename"}:
                name = "replace" if f.attr == "replace" else "rename"
            elif isinstance(f.value, ast.Name) and f.value.id == "tempfile" and f.attr in {"mkstemp",
                                                                                       "NamedTemporaryFile"}:
                name = f.attr
            else:
                continue
            found.setdefault(rel, set()).add(name)
    for rel, names in found.items():
        if rel in {"faults/swap.py", "faults/models.py"}:
            names.discard("rename")  # a directory swap: rename(2) of a tree, no file written
        assert names <= allowed.get(rel, set()), f"{rel} writes files by hand ({names}); use mlchaos.atomic"
