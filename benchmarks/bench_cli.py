"""Benchmark: start-up cost of the CLI, and abort latency.

1. Whole-process wall time and peak RSS of ``mlchaos --help``, ``mlchaos --version`` and
   ``mlchaos validate`` on an example, against Chaos Toolkit's ``chaos --version`` and
   ``chaos validate`` on an equivalent experiment.  Chaos Toolkit is installed into a
   separate venv (benchmarks/.venv-ctk): 1.19.0 / lib 1.44.0, the newest pair that still
   supports Python 3.11.  Commands alternate run by run so machine noise hits both alike;
   the figures are medians and the goal is a ratio (mlchaos ≤ 0.8× Chaos Toolkit).
2. Abort latency: the time from the moment a fault breaks the probed service to every
   fault removed, over N trials of a real experiment (tiny service paused, abort
   condition on its health endpoint, default 250 ms interval).  Goal: p99 ≤ 0.5 s.

Run: ``python benchmarks/bench_cli.py [--trials 50] [--runs 15]``; prints a Markdown
section for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / ".venv-ctk"
OURS = HERE / ".venv-mlchaos"

CTK_EXPERIMENT = {
    "title": "A paused single replica breaks the latency hypothesis",
    "description": "Equivalent of src/mlchaos/examples/tiny-pause.yaml",
    "steady-state-hypothesis": {
        "title": "health answers",
        "probes": [
            {"type": "probe", "name": "health answers", "tolerance": 200,
             "provider": {"type": "http", "url": "http://127.0.0.1:18080/health", "timeout": 0.3}},
        ],
    },
    "method": [
        {"type": "action", "name": "pause the replica",
         "provider": {"type": "process", "path": "kill", "arguments": ["-STOP", "1"]}},
        {"type": "action", "name": "resume the replica", "pauses": {"before": 2},
         "provider": {"type": "process", "path": "kill", "arguments": ["-CONT", "1"]}},
    ],
    "rollbacks": [
        {"type": "action", "name": "resume", "provider": {"type": "process", "path": "kill", "arguments": ["-CONT", "1"]}},
    ],
}


def ensure_ctk() -> Path | None:
    chaos = VENV / "bin" / "chaos"
    if chaos.exists():
        return chaos
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "chaostoolkit==1.19.0", "chaostoolkit-lib==1.44.0"],
                       check=True)
    except subprocess.CalledProcessError as exc:
        print(f"could not install Chaos Toolkit: {exc}", file=sys.stderr)
        return None
    return chaos


def ensure_ours() -> str:
    """mlchaos installed the way a user gets it (``pip install .``, not editable) in its own venv.

    Both tools then start from an interpreter whose site-packages holds only their own
    dependencies; the shared development interpreter has every test extra and sandbox
    ``.pth`` hooks that would charge their start-up cost to whichever tool runs there.
    """
    exe = OURS / "bin" / "mlchaos"
    if not OURS.exists():
        subprocess.run([sys.executable, "-m", "venv", str(OURS)], check=True)
    subprocess.run([str(OURS / "bin" / "pip"), "install", "-q", "--force-reinstall", "--no-deps", str(ROOT)],
                   check=True)  # the code under test, refreshed on every run
    subprocess.run([str(OURS / "bin" / "pip"), "install", "-q", str(ROOT)], check=True)  # its dependencies
    return str(exe)


def measure(cmd: list[str]) -> tuple[float, float, int]:
    """(wall s, cpu s, peak RSS KiB) of one whole process, from wait4's rusage of that child alone."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tempfile.gettempdir())
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss


def startup(runs: int) -> list[dict[str, object]]:
    chaos = ensure_ctk()
    mlchaos = ensure_ours()
    tmp = Path(tempfile.mkdtemp())
    ctk_exp = tmp / "exp.json"
    ctk_exp.write_text(json.dumps(CTK_EXPERIMENT))
    example = ROOT / "src" / "mlchaos" / "examples" / "tiny-pause.yaml"
    pairs = [
        ("--version", [mlchaos, "--version"], [str(chaos), "--no-version-check", "--version"] if chaos else None),
        ("--help", [mlchaos, "--help"], [str(chaos), "--no-version-check", "--help"] if chaos else None),
        ("validate", [mlchaos, "validate", str(example)],
         [str(chaos), "--no-version-check", "validate", str(ctk_exp)] if chaos else None),
    ]
    rows = []
    for name, ours, theirs in pairs:
        for cmd in (ours, theirs):  # warm-up
            if cmd:
                measure(cmd)
        a: list[tuple[float, float, int]] = []
        b: list[tuple[float, float, int]] = []
        for _ in range(runs):
            a.append(measure(ours))
            if theirs:
                b.append(measure(theirs))
        row: dict[str, object] = {"command": name}
        for label, data in (("mlchaos", a), ("ctk", b)):
            if data:
                row[f"{label}_wall"] = statistics.median(x[0] for x in data)
                row[f"{label}_cpu"] = statistics.median(x[1] for x in data)
                row[f"{label}_rss_mib"] = statistics.median(x[2] for x in data) / 1024
        rows.append(row)
    return rows


def abort_latency(trials: int, breach: list[float] | None = None) -> list[float]:
    """Inject → removed (what the goal was first set on), and, into ``breach``, the abort itself:
    the tripping evaluation's stop request → every fault removed (journal ``removed-all``)."""
    sys.path.insert(0, str(ROOT / "src"))
    import yaml

    lat: list[float] = []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    svc = subprocess.Popen([sys.executable, "-m", "mlchaos.examples.tiny_service", "--port", str(port)])
    tmp = Path(tempfile.mkdtemp())
    env = {**os.environ, "MLCHAOS_STATE_DIR": str(tmp / "state")}
    try:
        time.sleep(1.0)
        exp = {
            "title": "abort latency",
            "target": {"platform": "http", "url": f"http://127.0.0.1:{port}", "health": "/health"},
            "steady_state": [{"probe": "http", "url": "/health", "equals": 200, "timeout": "2s"}],
            "method": [{"name": "pause", "fault": "process-pause", "pids": [svc.pid], "at": "100ms", "duration": "20s"}],
            "abort": [{"name": "down", "probe": "http", "url": "/health", "equals": 200, "timeout": "100ms"}],
            "phases": {"baseline": "100ms", "recovery": "100ms"},
        }
        path = tmp / "exp.yaml"
        path.write_text(yaml.safe_dump(exp))
        for i in range(trials):
            j = tmp / f"j{i}.jsonl"
            r = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(path), "-j", str(j), "-q"], env=env,
                               capture_output=True, text=True, timeout=120)
            if not j.exists():
                raise SystemExit(f"trial {i}: no journal (exit {r.returncode}): {r.stderr[-2000:]}")
            ev = [json.loads(line) for line in j.read_text().splitlines()]
            inj = next(e["t"] for e in ev if e["event"] == "fault-inject")
            rem = next(e["t"] for e in ev if e["event"] == "fault-remove")
            lat.append(rem - inj)
            stop = next((e["t"] for e in ev if e["event"] == "stop-requested"), None)
            done = next((e["t"] for e in ev if e["event"] == "removed-all"), None)
            if breach is not None and stop is not None and done is not None:
                breach.append(done - stop)
    finally:
        svc.kill()
        svc.wait()
    return lat


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--trials", type=int, default=50)
    a = ap.parse_args()
    rows = startup(a.runs) if a.runs > 0 else []  # --runs 0: abort latency only
    breach: list[float] = []
    lat = abort_latency(a.trials, breach)
    print(f"## Engine CLI start-up and abort latency ({time.strftime('%Y-%m-%d')})\n")
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.platform()}. Medians of {a.runs} alternating runs after a warm-up.\n")
    print("| command | mlchaos wall s | CTK wall s | ratio | mlchaos CPU s | CTK CPU s | ratio | mlchaos RSS MiB | CTK RSS MiB | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        def f(k: str, r: dict[str, object] = r) -> float:
            return float(r.get(k, float("nan")))  # type: ignore[arg-type]
        print(f"| {r['command']} | {f('mlchaos_wall'):.3f} | {f('ctk_wall'):.3f} | {f('mlchaos_wall') / f('ctk_wall'):.2f} "
              f"| {f('mlchaos_cpu'):.3f} | {f('ctk_cpu'):.3f} | {f('mlchaos_cpu') / f('ctk_cpu'):.2f} "
              f"| {f('mlchaos_rss_mib'):.1f} | {f('ctk_rss_mib'):.1f} | {f('mlchaos_rss_mib') / f('ctk_rss_mib'):.2f} |")
    print(f"\nAbort latency (fault injected → every fault removed, abort probe timeout 100 ms, interval 250 ms), "
          f"{len(lat)} trials: p50 {pct(lat, 0.5) * 1000:.0f} ms, p99 {pct(lat, 0.99) * 1000:.0f} ms, "
          f"max {max(lat) * 1000:.0f} ms. Goal p99 ≤ 500 ms.")
    if breach:
        print(f"Abort itself (the tripping evaluation's stop request → every fault removed), {len(breach)} trials: "
              f"p50 {pct(breach, 0.5) * 1000:.1f} ms, p99 {pct(breach, 0.99) * 1000:.1f} ms, "
              f"max {max(breach) * 1000:.1f} ms.")


if __name__ == "__main__":
    main()
