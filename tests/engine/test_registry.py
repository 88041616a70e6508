"""Plugins by name: a third-party package adds a fault through an entry point; the engine imports only what is used."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PLUGIN = '''
from typing import Literal
from mlchaos.plugin import Applied, Fault, FaultSpec

class NoopSpec(FaultSpec):
    fault: Literal["noop"] = "noop"
    strength: int = 1

class Noop(Fault):
    """A third-party fault that does nothing, loudly."""
    Spec = NoopSpec

    async def inject(self, lease):
        return Applied(targets=["nothing"], undo={})

    async def remove(self):
        return None
'''


def _fake_dist(tmp: Path) -> dict[str, str]:
    pkg = tmp / "thirdparty_faults"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(PLUGIN)
    dist = tmp / "thirdparty_faults-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-faults\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[mlchaos.faults]\nnoop = thirdparty_faults:Noop\n")
    return {**os.environ, "PYTHONPATH": str(tmp) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_third_party_fault_via_entry_point(tmp_path: Path) -> None:
    env = _fake_dist(tmp_path)
    r = subprocess.run([sys.executable, "-m", "mlchaos", "plugins"], capture_output=True, text=True, env=env, timeout=60)
    assert "noop" in r.stdout and "third-party fault" in r.stdout
    exp = tmp_path / "e.yaml"
    exp.write_text("title: t\nmethod:\n  - fault: noop\n    strenght: 2\n    duration: 1s\n")
    r = subprocess.run([sys.executable, "-m", "mlchaos", "validate", str(exp)], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 2
    assert f"{exp}:4:5: method[0].strenght: unknown key 'strenght'; did you mean 'strength'?" in r.stderr


def test_validation_imports_only_the_plugins_named(tmp_path: Path) -> None:
    exp = tmp_path / "e.yaml"
    exp.write_text("title: t\ntarget: {platform: http, url: 'http://127.0.0.1:1'}\n"
                   "steady_state: [{probe: http, url: /, equals: 200}]\n")
    code = ("import sys\nfrom mlchaos.spec.loader import load_file\n"
            f"load_file({str(exp)!r})\n"
            "print(sorted(m for m in sys.modules if m.startswith('mlchaos.faults') or m in ('httpx', 'numpy', 'psutil')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
