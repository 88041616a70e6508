"""Daily batch prediction pipeline: extract → failpoint → (validate) → predict → write.

Extracts one day of transactions from the offline store (parquet), passes the
frame through the failpoint ``batch.after_extract`` (where an experiment
injects corruption), predicts with the current fraud model, and writes
``batch/runs/<run_id>/predictions.parquet`` plus ``manifest.json``.

- ``naive``: no validation; malformed numbers are coerced to NaN and the
  model's imputer fills them in, so bad data silently becomes plausible but
  wrong predictions (what teams ship first).
- ``mitigated``: a Pandera schema (:func:`fraud_schema`) runs through
  :class:`mlchaos.mitigations.ValidationGate`; on failure the run halts, writes
  its report to ``batch/reports/<run_id>.json`` and writes no predictions.

Outputs are written to a temporary directory and renamed into place, so a
run that dies half-way leaves nothing behind either.  The last line on stdout
is the run result as JSON; exit code 0 = written, 1 = halted by validation.
Run: ``python -m mlchaos.lab.batch --dir LAB_DIR [--variant mitigated] [--date YYYY-MM-DD]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from mlchaos.failpoints import failpoint
from mlchaos.lab import data, featurestore
from mlchaos.lab.models import load_fraud_model
from mlchaos.lab.paths import LabPaths
from mlchaos.mitigations import ValidationGate

FAILPOINT = "batch.after_extract"


def fraud_schema() -> Any:
    """What a valid extraction looks like: types, no nulls, plausible ranges, known categories."""
    import pandera.pandas as pa

    def num(lo: float, hi: float) -> pa.Column:
        return pa.Column(float, pa.Check.in_range(lo, hi), nullable=False, coerce=False)

    return pa.DataFrameSchema(
        {
            "tx_id": pa.Column(int, nullable=False, unique=True),
            "account_id": pa.Column(int, pa.Check.ge(0), nullable=False),
            "amount": num(0.01, 100_000.0),
            "merchant_category": pa.Column(
                str, pa.Check.isin(list(data.MERCHANT_CATEGORIES)), nullable=False
            ),
            "hour": pa.Column(int, pa.Check.in_range(0, 23), nullable=False),
            "account_age_days": num(0.0, 30_000.0),
            "txn_count_1h": num(0.0, 1_000.0),
            "txn_count_24h": num(0.0, 10_000.0),
            "amount_avg_7d": num(0.01, 100_000.0),
        },
        strict=False,
        name="fraud_batch_extract",
    )


def run(
    paths: LabPaths, variant: str = "naive", date: str | None = None, model: str = "current"
) -> dict[str, Any]:
    """Run the pipeline once; return the result record (also printed as the last stdout line)."""
    started = time.time()
    dates = featurestore.offline_dates(paths.offline)
    if not dates:
        raise SystemExit(f"no offline data under {paths.offline}; run `mlchaos lab up batch` first")
    date = date or dates[-1]
    if date not in dates:  # a day is a partition name: never a path a flag can point elsewhere
        raise ValueError(f"--date {date!r}: no offline data for that day (have {dates[0]} to {dates[-1]})")
    run_id = f"{date}-{variant}-{int(started * 1000)}"
    df = featurestore.read_offline(paths.offline, date)
    rows_in = len(df)
    df = failpoint(FAILPOINT, df)
    result: dict[str, Any] = {
        "run_id": run_id,
        "date": date,
        "variant": variant,
        "rows_in": rows_in,
        "failpoint": FAILPOINT,
    }
    if variant == "mitigated":
        report = ValidationGate(fraud_schema()).report(df)
        result["validation"] = report.to_dict()
        if not report.ok:
            reports = paths.batch / "reports"
            reports.mkdir(parents=True, exist_ok=True)
            rep_path = reports / f"{run_id}.json"
            rep_path.write_text(json.dumps({**result, "summary": report.summary()}, indent=2))
            return {
                **result,
                "status": "halted",
                "output": None,
                "manifest": None,
                "report": str(rep_path),
                "summary": report.summary(),
                "seconds": round(time.time() - started, 3),
            }
    m = load_fraud_model(paths.models, model)
    proba = m.predict_proba(df)
    out = pd.DataFrame(
        {
            "tx_id": df["tx_id"].to_numpy(),
            "account_id": df["account_id"].to_numpy(),
            "score": proba,
            "prediction": m.label(proba),
            "model_version": m.version,
        }
    )
    runs = paths.batch / "runs"
    tmp = runs / f".tmp-{run_id}"
    tmp.mkdir(parents=True, exist_ok=True)
    out.to_parquet(tmp / "predictions.parquet", index=False)
    manifest = {
        **result,
        "status": "ok",
        "model_version": m.version,
        "rows_out": len(out),
        "fraud_rate": float((out["prediction"] == "fraud").mean()) if len(out) else 0.0,
        "mean_score": float(out["score"].mean()) if len(out) else 0.0,
        "started_at": started,
        "finished_at": time.time(),
        "pid": os.getpid(),
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    final = runs / run_id
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    return {
        **manifest,
        "output": str(final / "predictions.parquet"),
        "manifest": str(final / "manifest.json"),
        "report": None,
        "seconds": round(time.time() - started, 3),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--variant", default="naive")
    p.add_argument("--date", default=None)
    p.add_argument("--model", default="current")
    a = p.parse_args(argv)
    variant = "mitigated" if a.variant == "mitigated" else "naive"
    try:
        res = run(LabPaths(a.dir), variant, a.date, a.model)
    except ValueError as exc:  # a bad --date or --model: bad input, exit 2
        sys.stderr.write(f"mlchaos.lab.batch: {exc}\n")
        return 2
    sys.stdout.write(json.dumps(res) + "\n")
    return 0 if res["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
