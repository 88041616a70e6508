"""Practice project 2: nulls injected right after extraction; naive writes wrong predictions, mitigated halts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from mlchaos.lab import Lab

failpoint = pytest.importorskip("mlchaos.failpoints")


def test_batch_corrupted_extraction(
    make_lab: Callable[..., Lab], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fp_dir = tmp_path / "failpoints"
    monkeypatch.setenv("MLCHAOS_FAILPOINT_DIR", str(fp_dir))
    lab = make_lab()
    status = lab.up(["batch"], variant="naive")
    assert [s.name for s in status] == ["batch"] and status[0].ready

    clean = lab.run_batch("naive")
    assert clean["status"] == "ok"
    clean_df = pd.read_parquet(clean["output"])
    mitigated_clean = lab.run_batch("mitigated")
    assert mitigated_clean["status"] == "ok" and mitigated_clean["validation"]["ok"] is True

    failpoint.arm("batch.after_extract", "nulls", columns="amount", fraction=0.05, seed=7, ttl=120)
    try:
        naive = lab.run_batch("naive")
        assert naive["status"] == "ok", naive
        bad_df = pd.read_parquet(naive["output"])
        assert len(bad_df) == len(clean_df)
        changed = (bad_df["score"] - clean_df["score"]).abs() > 1e-12
        assert changed.sum() >= 0.04 * len(clean_df), "nulled amounts must silently change predictions"

        runs_before = sorted(p.name for p in (lab.paths.batch / "runs").iterdir())
        halted = lab.run_batch("mitigated")
        assert halted["status"] == "halted" and halted["exit_code"] == 1
        assert halted["output"] is None and halted["manifest"] is None
        assert sorted(p.name for p in (lab.paths.batch / "runs").iterdir()) == runs_before, "nothing written"
        report = json.loads(Path(halted["report"]).read_text())
        fails = report["validation"]["failures"]
        assert any(f["column"] == "amount" and "null" in f["check"] for f in fails), fails
        assert "amount" in halted["summary"]
    finally:
        failpoint.disarm("batch.after_extract")

    # re-run after the fault is gone: the gate lets clean data through again
    again = lab.run_batch("mitigated")
    assert again["status"] == "ok"
    pd.testing.assert_series_equal(pd.read_parquet(again["output"])["score"], clean_df["score"])
