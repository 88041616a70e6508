"""Benchmark: data corruption (mlchaos vs badgers) and drift (mlchaos vs scipy vs Evidently).

Usage::

    python benchmarks/bench_data.py [--repeats 5] [--out benchmarks/results/data.md]

badgers and Evidently run in their own venv (``benchmarks/.venv-evidently``;
Evidently 0.7.23 needs ``pandas<3``)::

    python -m venv benchmarks/.venv-evidently
    benchmarks/.venv-evidently/bin/pip install "evidently==0.7.23" "pandas<3" scipy badgers

Both sides build the same data from the same seed.  Corruption timings are
in-process (data generation excluded), median of ``--repeats``; drift timings
are whole processes (start to exit, data generation included for everyone)
with peak RSS from ``wait4``, run round-robin so the implementations share
the machine's load; median of the repeats.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENV_PY = HERE / ".venv-evidently" / "bin" / "python"
N_CORRUPT = 5_000_000
N_DRIFT = 1_000_000
FRACTION = 0.1


# -- shared data ------------------------------------------------------------------------------
def corrupt_data() -> tuple[Any, Any]:
    """5M floats N(50, 10) and 5M ASCII words of 4-12 letters from a 10k vocabulary (object array)."""
    import numpy as np

    rng = np.random.default_rng(12345)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype="S1")
    lengths = rng.integers(4, 13, 10_000)
    vocab = np.array([b"".join(rng.choice(letters, n)).decode() for n in lengths], dtype=object)
    x = rng.normal(50, 10, N_CORRUPT)
    s = vocab[rng.integers(0, vocab.size, N_CORRUPT)]
    return x, s


def drift_data() -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(777)
    return rng.normal(0, 1, N_DRIFT), rng.normal(0.1, 1, N_DRIFT)


def timed(fn: Any, repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


# -- workers ----------------------------------------------------------------------------------
def worker_mlchaos_corrupt(repeats: int) -> dict[str, float]:
    import pandas as pd
    import pyarrow as pa

    from mlchaos.data import corrupt

    x, s = corrupt_data()
    table = pa.table({"x": x, "s": pa.array(s, type=pa.string())})
    frame = pd.DataFrame({"x": x, "s": s})  # numpy float64 + object strings
    frame_str = pd.DataFrame({"x": x, "s": pd.array(s, dtype="str")})  # pandas 3 default: Arrow-backed str
    out: dict[str, float] = {}
    for label, data in (("arrow", table), ("pandas", frame)):
        out[f"{label}:nulls float"] = timed(lambda d=data: corrupt(d, "nulls", "x", FRACTION, seed=1), repeats)
        out[f"{label}:outliers float"] = timed(lambda d=data: corrupt(d, "outliers", "x", FRACTION, seed=1), repeats)
        out[f"{label}:scale float"] = timed(lambda d=data: corrupt(d, "scale", "x", FRACTION, seed=1), repeats)
        out[f"{label}:nulls string"] = timed(lambda d=data: corrupt(d, "nulls", "s", FRACTION, seed=1), repeats)
        out[f"{label}:typos string"] = timed(lambda d=data: corrupt(d, "typos", "s", FRACTION, seed=1), repeats)
    out["pandas-str:nulls string"] = timed(lambda: corrupt(frame_str, "nulls", "s", FRACTION, seed=1), repeats)
    out["pandas-str:typos string"] = timed(lambda: corrupt(frame_str, "typos", "s", FRACTION, seed=1), repeats)
    return out


def worker_badgers_corrupt(repeats: int) -> dict[str, float]:
    import numpy as np
    import pandas as pd
    from badgers.generators.tabular_data.missingness import MissingCompletelyAtRandom
    from badgers.generators.tabular_data.outliers.distribution_sampling import ZScoreSamplingGenerator
    from badgers.generators.text.typos import SwapLettersGenerator

    x, s = corrupt_data()
    k = int(FRACTION * N_CORRUPT)
    fx = pd.DataFrame({"x": x})
    fs = pd.DataFrame({"s": s})

    def nulls(frame: Any) -> None:
        MissingCompletelyAtRandom(np.random.default_rng(1)).generate(frame.copy(), None, percentage_missing=FRACTION)

    def outliers() -> None:
        # badgers appends generated outlier rows; scatter them into the column to compare like with like
        rng = np.random.default_rng(1)
        gen, _ = ZScoreSamplingGenerator(rng).generate(fx.copy(), None, n_outliers=k, scale=1.0)
        vals = np.asarray(gen).reshape(-1)[-k:]
        col = x.copy()
        col[rng.choice(N_CORRUPT, k, replace=False)] = vals

    def typos() -> None:
        SwapLettersGenerator(np.random.default_rng(1)).generate(list(s), None, swap_proba=FRACTION)

    return {
        "nulls float": timed(lambda: nulls(fx), repeats),
        "outliers float": timed(outliers, repeats),
        "nulls string": timed(lambda: nulls(fs), repeats),
        "typos string": timed(typos, min(repeats, 3)),
    }


def worker_drift(impl: str) -> dict[str, Any]:
    """One whole-process drift computation; prints the value."""
    t0 = time.perf_counter()
    if impl.startswith("mlchaos"):
        from mlchaos import drift

        r, c = drift_data()
        value = drift.psi(r, c, bins="sturges") if impl == "mlchaos-psi" else (
            drift.psi(r, c) if impl == "mlchaos-psi-deciles" else drift.ks(r, c))
    elif impl == "scipy-ks":
        from scipy import stats

        r, c = drift_data()
        value = float(stats.ks_2samp(r, c).statistic)
    else:
        import pandas as pd
        from evidently import DataDefinition, Dataset, Report
        from evidently.metrics import ValueDrift

        r, c = drift_data()
        dd = DataDefinition(numerical_columns=["x"])
        method = "psi" if impl == "evidently-psi" else "ks"
        snap = Report([ValueDrift(column="x", method=method)]).run(
            current_data=Dataset.from_pandas(pd.DataFrame({"x": c}), data_definition=dd),
            reference_data=Dataset.from_pandas(pd.DataFrame({"x": r}), data_definition=dd),
        )
        value = float(snap.dict()["metrics"][0]["value"])
    return {"value": value, "in_process": time.perf_counter() - t0}


def worker_window(repeats: int) -> dict[str, float]:
    import numpy as np

    from mlchaos import drift

    r, c = drift_data()
    t = time.perf_counter()
    ref = drift.Reference(r)
    prep = time.perf_counter() - t
    w = c[:10_000]
    n = max(50, repeats * 40)
    out = {"prepare reference (1M)": prep}
    for name, fn in (("psi", ref.psi), ("ks", ref.ks), ("wasserstein", ref.wasserstein)):
        ts = []
        for _ in range(n):
            t = time.perf_counter()
            fn(w)
            ts.append(time.perf_counter() - t)
        out[f"10k window {name}"] = float(np.median(ts))
    return out


def worker_failpoint(repeats: int) -> dict[str, float]:
    """Per-call cost of a disarmed failpoint: no directory, and a directory holding another armed record."""
    import tempfile

    import pandas as pd

    from mlchaos.failpoints import arm, failpoint

    df = pd.DataFrame({"x": [1.0, 2.0]})
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLCHAOS_FAILPOINT_DIR"] = os.path.join(tmp, "absent")
        for label in ("no failpoint directory", "directory with another armed failpoint"):
            if label.startswith("directory"):
                os.environ["MLCHAOS_FAILPOINT_DIR"] = tmp
                arm("other", "nulls", ttl=600)
                time.sleep(1.2)  # past the fresh-mtime window
            n = 100_000
            ts = []
            for _ in range(repeats):
                t = time.perf_counter()
                for _ in range(n):
                    failpoint("batch.after_extract", df)
                ts.append((time.perf_counter() - t) / n)
            out[label] = statistics.median(ts)
    return out


# -- orchestration ----------------------------------------------------------------------------
def run_worker(python: str, *args: str, timeout: float = 1800) -> tuple[dict[str, Any], float, float]:
    """Run ``bench_data.py --worker ...``; return (its JSON, wall seconds, peak RSS MB)."""
    env = {**os.environ, "DO_NOT_TRACK": "1", "PYTHONHASHSEED": "0"}
    t = time.perf_counter()
    proc = subprocess.Popen([python, str(Path(__file__).resolve()), "--worker", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=str(HERE.parent))
    out_b, err_b = proc.communicate(timeout=timeout)
    wall = time.perf_counter() - t
    rss = 0.0
    try:
        import resource

        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # max over children so far
    except ImportError:
        pass
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args} failed: {err_b.decode()[-2000:]}")
    return json.loads(out_b.decode().strip().splitlines()[-1]), wall, rss


def run_drift(python: str, impl: str) -> tuple[dict[str, Any], float, float]:
    """Whole-process run with its own peak RSS (``os.wait4``)."""
    env = {**os.environ, "DO_NOT_TRACK": "1"}
    t = time.perf_counter()
    proc = subprocess.Popen([python, str(Path(__file__).resolve()), "--worker", "drift", impl],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=str(HERE.parent))
    assert proc.stdout is not None
    out_b = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"drift worker {impl} failed")
    return json.loads(out_b.decode().strip().splitlines()[-1]), wall, usage.ru_maxrss / 1024


def machine() -> dict[str, str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy
    import pandas
    import pyarrow

    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cpu}, {os.cpu_count()} vCPU",
        "os": platform.platform(),
        "python": platform.python_version(),
        "libs": f"numpy {numpy.__version__}, pandas {pandas.__version__}, pyarrow {pyarrow.__version__}",
        "load": "load average at start: " + " ".join(f"{v:.2f}" for v in os.getloadavg()),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--drift-repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="write a markdown report here")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        what = args.worker[0]
        if what == "mlchaos-corrupt":
            res: dict[str, Any] = worker_mlchaos_corrupt(args.repeats)
        elif what == "badgers-corrupt":
            res = worker_badgers_corrupt(args.repeats)
        elif what == "drift":
            res = worker_drift(args.worker[1])
        elif what == "window":
            res = worker_window(args.repeats)
        elif what == "failpoint":
            res = worker_failpoint(args.repeats)
        else:
            raise SystemExit(f"unknown worker {what}")
        print(json.dumps(res))
        return 0

    info = machine()
    have_venv = VENV_PY.exists()
    me = sys.executable
    print(json.dumps(info, indent=1), file=sys.stderr)

    # corruption: mlchaos, badgers, mlchaos again (load drifts on a shared machine)
    ml1, _, _ = run_worker(me, "mlchaos-corrupt", "--repeats", str(args.repeats))
    bad = run_worker(str(VENV_PY), "badgers-corrupt", "--repeats", str(args.repeats))[0] if have_venv else {}
    ml2, _, _ = run_worker(me, "mlchaos-corrupt", "--repeats", str(args.repeats))
    ml = {k: statistics.median([ml1[k], ml2[k]]) for k in ml1}

    # drift, whole process, round-robin
    impls = ["mlchaos-psi", "mlchaos-psi-deciles", "mlchaos-ks", "scipy-ks"]
    if have_venv:
        impls += ["evidently-psi", "evidently-ks"]
    runs: dict[str, list[tuple[dict[str, Any], float, float]]] = {i: [] for i in impls}
    for _ in range(args.drift_repeats):
        for impl in impls:
            py = str(VENV_PY) if impl.startswith("evidently") else me
            runs[impl].append(run_drift(py, impl))
    window, _, _ = run_worker(me, "window", "--repeats", str(args.repeats))
    fpoint, _, _ = run_worker(me, "failpoint", "--repeats", str(args.repeats))

    lines = [
        "# Data benchmarks (issue 6)",
        "",
        f"- Date: {info['date']}; machine: {info['cpu']}; {info['os']}; Python {info['python']}; {info['libs']}.",
        f"- The 2 vCPUs were **shared with other engineers' jobs** during the run ({info['load']}); every figure "
        f"is a median ({args.repeats} in-process repeats per corruption, run twice around the badgers block "
        f"and the median of both taken; {args.drift_repeats} whole-process runs per drift implementation, "
        "round-robin). Ratios come from the same run.",
        f"- Command: `python benchmarks/bench_data.py --repeats {args.repeats} --drift-repeats {args.drift_repeats}`; "
        "badgers 0.0.15 and Evidently 0.7.23 (pandas 2.3.3) in `benchmarks/.venv-evidently`.",
        "",
        f"## Corrupt 10 % of a {N_CORRUPT:,}-row column (in-process, data generation excluded)",
        "",
        "| fault | mlchaos, Arrow table | mlchaos, pandas (float64 / object) | mlchaos, pandas `str` (Arrow-backed) "
        "| badgers 0.0.15 | mlchaos Arrow vs badgers |",
        "|---|---|---|---|---|---|",
    ]

    def rate(sec: float) -> str:
        return f"{sec:.3f} s ({N_CORRUPT / sec / 1e6:.0f} M rows/s)"

    for fault in ("nulls float", "outliers float", "scale float", "nulls string", "typos string"):
        a, p = ml[f"arrow:{fault}"], ml[f"pandas:{fault}"]
        b = bad.get(fault)
        ps = ml.get(f"pandas-str:{fault}")
        lines.append(f"| {fault} | {rate(a)} | {rate(p)} | {rate(ps) if ps else '–'} | {rate(b) if b else 'n/a'} | "
                     f"{f'{b / a:.1f}x' if b else 'n/a'} |")
    lines += [
        "",
        "badgers notes: nulls = `MissingCompletelyAtRandom` on a one-column DataFrame (it converts to an "
        "ndarray); outliers = `ZScoreSamplingGenerator` generating 500k rows, scattered into the column (badgers "
        "appends rows rather than replacing values); typos = `SwapLettersGenerator(swap_proba=0.1)` on a list of "
        "5M words (it loops in Python over every word); no unit/scale fault exists in badgers.",
        "",
        f"## Drift, {N_DRIFT:,} reference vs {N_DRIFT:,} current rows, N(0,1) vs N(0.1,1), whole process",
        "",
        "| implementation | value | whole process wall (median) | peak RSS | in-process (import + data + compute) |",
        "|---|---|---|---|---|",
    ]
    med: dict[str, float] = {}
    for impl in impls:
        vals = runs[impl]
        wall = statistics.median(v[1] for v in vals)
        med[impl] = wall
        rss = statistics.median(v[2] for v in vals)
        value = vals[0][0]["value"]
        inproc = statistics.median(v[0]["in_process"] for v in vals)
        lines.append(f"| {impl} | {value:.12g} | {wall:.2f} s | {rss:.0f} MB | {inproc:.2f} s |")
    lines.append("")
    if "evidently-psi" in med:
        lines.append(f"- PSI (Sturges, Evidently's binning): mlchaos {med['mlchaos-psi']:.2f} s vs Evidently "
                     f"{med['evidently-psi']:.2f} s whole process = **{med['evidently-psi'] / med['mlchaos-psi']:.1f}x**; "
                     f"values equal: {abs(runs['mlchaos-psi'][0][0]['value'] - runs['evidently-psi'][0][0]['value']):.1e} apart.")
        lines.append(f"- KS: mlchaos {med['mlchaos-ks']:.2f} s vs Evidently {med['evidently-ks']:.2f} s "
                     f"(**{med['evidently-ks'] / med['mlchaos-ks']:.1f}x**) vs scipy {med['scipy-ks']:.2f} s "
                     f"({med['scipy-ks'] / med['mlchaos-ks']:.1f}x). Evidently reports only the p-value "
                     f"({runs['evidently-ks'][0][0]['value']:.3g}); D from mlchaos equals scipy's "
                     f"({abs(runs['mlchaos-ks'][0][0]['value'] - runs['scipy-ks'][0][0]['value']):.1e} apart).")
    lines += [
        "",
        "## Window against a precomputed reference (`mlchaos.drift.Reference`, 1M-row reference)",
        "",
        "| step | median |",
        "|---|---|",
    ]
    for k, v in window.items():
        lines.append(f"| {k} | {v * 1000:.3f} ms |")
    lines += ["", "## Disarmed failpoint, per call (`failpoint(name, df)` returning `df`)", "",
              "| situation | median per call |", "|---|---|"]
    for k, v in fpoint.items():
        lines.append(f"| {k} | {v * 1e6:.2f} µs |")
    lines += ["", "## Goals of issue 6", "", "| goal | measured | met? |", "|---|---|---|"]

    def goal(name: str, value: str, ok: bool) -> None:
        lines.append(f"| {name} | {value} | {'met' if ok else '**not met**'} |")

    for fault in ("nulls float", "outliers float", "scale float"):
        r = N_CORRUPT / ml[f"arrow:{fault}"] / 1e6
        goal(f"numeric ≥ 50 M rows/s ({fault}, Arrow)", f"{r:.0f} M rows/s", r >= 50)
        rp = N_CORRUPT / ml[f"pandas:{fault}"] / 1e6
        goal(f"numeric ≥ 50 M rows/s ({fault}, pandas)", f"{rp:.0f} M rows/s", rp >= 50)
    for fault in ("nulls string", "typos string"):
        for label, name in (("arrow", "Arrow"), ("pandas", "pandas object"), ("pandas-str", "pandas str")):
            r = N_CORRUPT / ml[f"{label}:{fault}"] / 1e6
            goal(f"strings ≥ 10 M rows/s ({fault}, {name})", f"{r:.0f} M rows/s", r >= 10)
    if bad.get("typos string"):
        ratio = bad["typos string"] / ml["arrow:typos string"]
        goal("≥ 10x badgers on string typos", f"{ratio:.0f}x", ratio >= 10)
    if "evidently-psi" in med:
        for stat in ("psi", "ks"):
            ratio = med[f"evidently-{stat}"] / med[f"mlchaos-{stat}"]
            goal(f"drift {stat.upper()} ≥ 10x faster than Evidently, whole process", f"{ratio:.1f}x", ratio >= 10)
        same = abs(runs["mlchaos-psi"][0][0]["value"] - runs["evidently-psi"][0][0]["value"]) <= 1e-9
        goal("equal PSI values (Sturges) to Evidently", "equal to 1e-9" if same else "differ", same)
    w = window["10k window psi"] * 1000
    goal("10k window against precomputed reference bins ≤ 1 ms (PSI)", f"{w:.2f} ms", w <= 1.0)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
