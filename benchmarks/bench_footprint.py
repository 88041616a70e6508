"""Benchmark: what an install costs (disk, packages) and how fast the core install starts.

1. Footprint. Each install is made the way its user makes it, into a fresh venv of its own
   (``python -m venv``, then pip from the machine's configured indexes):

   * ``core``: ``pip install .``, the light core (``pip install mlchaos``);
   * ``quick-start 1``: ``pip install '.[lab]'``, what the README's demo command installs;
   * ``quick-start 2``: ``pip install -e '.[test]'``, what the README's test command (and CI)
     installs;
   * ``empty venv``: nothing, the baseline pip and setuptools put in every venv.

   Size two ways, in MiB, symlinks not followed, the byte-code pip compiles at install
   included: *disk* is what ``du -s`` reports (allocated blocks: how the issue measured
   642 MB), *apparent* the bytes of every file (``du --apparent-size``). Packages: the lines
   of ``pip list`` (pip and setuptools included, as the issue counted them). Goal: core
   ≤ 150 MB.
2. Start-up of the core install against Chaos Toolkit (``--help``, ``--version``,
   ``validate``): :func:`bench_cli.startup`, the same measurement as the CLI benchmark (its
   ``benchmarks/.venv-mlchaos`` is ``pip install .``, so since issue #15 it *is* the core).

Run: ``python benchmarks/bench_footprint.py [--installs core,lab,test] [--runs 15]``; prints a
Markdown section for benchmarks/RESULTS.md and writes its JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

INSTALLS: dict[str, tuple[str, list[str]]] = {
    "empty": ("empty venv (pip, setuptools)", []),
    "core": ("core: `pip install .`", [str(ROOT)]),
    "lab": ("quick-start 1: `pip install '.[lab]'`", [f"{ROOT}[lab]"]),
    "test": ("quick-start 2: `pip install -e '.[test]'`", ["-e", f"{ROOT}[test]"]),
}


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def du_mib(path: Path) -> tuple[float, float]:
    """(disk, apparent) size of ``path`` in MiB: allocated blocks as ``du -s`` counts them
    (directories included), and the bytes of every regular file; symlinks not followed."""
    blocks = os.lstat(path).st_blocks
    size = 0
    for dirpath, dirs, files in os.walk(path):
        for name in dirs + files:
            st = os.lstat(os.path.join(dirpath, name))
            blocks += st.st_blocks
            if name in files and not os.path.islink(os.path.join(dirpath, name)):
                size += st.st_size
    return blocks * 512 / 2**20, size / 2**20


def _f(row: dict[str, object], key: str) -> float:
    return float(row[key])  # type: ignore[arg-type]


def footprint(key: str, work: Path) -> dict[str, object]:
    label, args = INSTALLS[key]
    venv = work / f"venv-{key}"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=_env())
    t0 = time.perf_counter()
    if args:
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *args], check=True, env=_env(),
                       cwd=work)
    took = time.perf_counter() - t0
    listed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"], check=True,
                            env=_env(), capture_output=True, text=True, cwd=work).stdout
    packages = sorted(d["name"] for d in json.loads(listed))
    disk, apparent = du_mib(venv)
    row: dict[str, object] = {"install": key, "label": label, "disk_mib": disk, "apparent_mib": apparent,
                              "packages": len(packages), "install_s": took, "names": packages}
    shutil.rmtree(venv)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--installs", default="empty,core,lab,test", help="comma-separated: " + ",".join(INSTALLS))
    ap.add_argument("--runs", type=int, default=15, help="start-up runs per command (0: skip start-up)")
    a = ap.parse_args()
    keys = [k for k in a.installs.split(",") if k]
    unknown = [k for k in keys if k not in INSTALLS]
    if unknown:
        ap.error(f"--installs: unknown {', '.join(unknown)} (known: {', '.join(INSTALLS)})")
    work = Path(tempfile.mkdtemp(prefix="mlchaos-footprint-"))
    try:
        rows = [footprint(k, work) for k in keys]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    startup: list[dict[str, object]] = []
    if a.runs:
        sys.path.insert(0, str(HERE))
        from bench_cli import startup as cli_startup

        startup = cli_startup(a.runs)

    day = time.strftime("%Y-%m-%d")
    load = os.getloadavg()[0]
    print(f"## Footprint of an install, and start-up of the core ({day})\n")
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.platform()}, load average {load:.1f}.\n")
    print("| install | venv disk MiB (du) | venv apparent MiB | packages | install s |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['label']} | {_f(r, 'disk_mib'):.0f} | {_f(r, 'apparent_mib'):.0f} | {r['packages']} "
              f"| {_f(r, 'install_s'):.0f} |")
    core = next((r for r in rows if r["install"] == "core"), None)
    if core:
        for k, how in (("disk_mib", "disk"), ("apparent_mib", "apparent")):
            mb = _f(core, k) * 2**20 / 1e6
            print(f"\nGoal core ≤ 150 MB ({how}): **{'met' if mb <= 150 else 'not met'}** ({mb:.0f} MB).")
    if startup:
        print(f"\nStart-up of the core install (medians of {a.runs} alternating runs, `bench_cli.startup`):\n")
        print("| command | mlchaos wall s | CTK wall s | ratio | mlchaos CPU s | CTK CPU s | ratio | mlchaos RSS MiB | CTK RSS MiB |")
        print("|---|---|---|---|---|---|---|---|---|")
        for s in startup:
            def f(k: str, s: dict[str, object] = s) -> float:
                return float(s.get(k, float("nan")))  # type: ignore[arg-type]
            print(f"| {s['command']} | {f('mlchaos_wall'):.3f} | {f('ctk_wall'):.3f} | {f('mlchaos_wall') / f('ctk_wall'):.2f} "
                  f"| {f('mlchaos_cpu'):.3f} | {f('ctk_cpu'):.3f} | {f('mlchaos_cpu') / f('ctk_cpu'):.2f} "
                  f"| {f('mlchaos_rss_mib'):.1f} | {f('ctk_rss_mib'):.1f} |")
    out = HERE / "results" / f"footprint-{day}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"date": day, "load": load, "installs": rows, "startup": startup}, indent=1))
    print(f"\nRaw: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
