"""Failpoints: disarmed passthrough and cost, armed behaviour, leases that expire when the runner dies."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlchaos
from mlchaos import failpoints as fp_module
from mlchaos.failpoints import FailpointError, arm, disarm, effects, failpoint, failpoint_dir, renew, status


@pytest.fixture
def df() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"amount": rng.normal(100, 10, 1000), "city": rng.choice(["a", "b"], 1000)})


def test_directory_from_env(state_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert failpoint_dir() == state_dir / "failpoints"
    monkeypatch.setenv("MLCHAOS_FAILPOINT_DIR", str(tmp_path / "fp"))
    assert failpoint_dir() == tmp_path / "fp"
    monkeypatch.delenv("MLCHAOS_FAILPOINT_DIR")
    monkeypatch.delenv("MLCHAOS_STATE_DIR")
    assert failpoint_dir() == Path.home() / ".local" / "state" / "mlchaos" / "failpoints"


def test_disarmed_returns_same_object(df: pd.DataFrame) -> None:
    assert failpoint("batch.after_extract", df) is df
    assert mlchaos.failpoint("batch.after_extract", df) is df
    assert effects("batch.after_extract") == []


def test_disarmed_overhead_is_tiny(df: pd.DataFrame) -> None:
    arm("other.point", "nulls", columns="amount", ttl=60)  # a directory with a record in it
    time.sleep(1.1)  # past the window in which a fresh directory mtime is not trusted
    n = 20000
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(n):
            failpoint("batch.after_extract", df)
        best = min(best, (time.perf_counter() - t) / n)
    assert best < 50e-6, f"{best * 1e6:.1f} µs per disarmed call"


def test_armed_corrupts_and_records(df: pd.DataFrame) -> None:
    rec = arm("batch.after_extract", "nulls", columns="amount", fraction=0.05, seed=1, ttl=30)
    assert status("batch.after_extract")["lease_id"] == rec["lease_id"]
    out = failpoint("batch.after_extract", df)
    assert out is not df and out["amount"].isna().sum() == 50
    assert df["amount"].isna().sum() == 0
    out2 = failpoint("batch.after_extract", df)  # a second batch: other rows, same count
    assert out2["amount"].isna().sum() == 50
    assert not (out2["amount"].isna() == out["amount"].isna()).all()
    log = effects("batch.after_extract")
    assert [e["hit"] for e in log] == [1, 2]
    assert log[0]["rows"] == 1000 and log[0]["cells_changed"] == 50 and log[0]["lease_id"] == rec["lease_id"]
    assert effects("batch.after_extract", lease_id="other") == []
    assert disarm("batch.after_extract") is True
    assert disarm("batch.after_extract") is False
    assert failpoint("batch.after_extract", df) is df


def test_decorator_and_context_forms(df: pd.DataFrame) -> None:
    @failpoint("load.features")
    def load() -> pd.DataFrame:
        return df

    assert load() is df
    with failpoint("load.features") as fp:
        assert fp(df) is df and not fp.armed
    arm("load.features", "scale", columns="amount", fraction=0.1, seed=3)
    assert (load()["amount"] > 10_000).sum() == 100
    with failpoint("load.features") as fp:
        assert fp.armed and (fp(df)["amount"] > 10_000).sum() == 100
    assert (fp_module.failpoint("load.features", df)["amount"] > 10_000).sum() == 100


def test_raise_kind(df: pd.DataFrame) -> None:
    arm("fetch", "raise", message="feature store down")
    with pytest.raises(FailpointError, match="feature store down"):
        failpoint("fetch", df)
    assert effects("fetch")[0]["raised"] is True


def test_misdeclared_fault_is_logged_not_raised(df: pd.DataFrame) -> None:
    arm("p", "nulls", columns="no_such_column")
    assert failpoint("p", df) is df
    assert "columns" in effects("p")[0]["error"]


def test_arm_validates() -> None:
    with pytest.raises(ValueError, match="kind"):
        arm("p", "bogus")
    with pytest.raises(ValueError, match="fraction"):
        arm("p", "nulls", fraction=2)
    with pytest.raises(ValueError, match="ttl"):
        arm("p", "nulls", ttl=0)
    with pytest.raises(ValueError, match="name"):
        arm("../escape", "nulls")
    with pytest.raises(ValueError, match="factr"):
        arm("p", "scale", factr=3)
    with pytest.raises(ValueError, match="name"):
        renew("never.armed", 5)


def test_lease_expires_and_renews(df: pd.DataFrame) -> None:
    arm("p", "nulls", columns="amount", fraction=0.1, ttl=0.5)
    assert failpoint("p", df) is not df
    renew("p", 1.0)
    time.sleep(0.6)
    assert failpoint("p", df) is not df  # renewed past the first expiry
    time.sleep(0.6)
    assert failpoint("p", df) is df and status("p") is None


ARMER = r"""
import sys, time
from mlchaos.failpoints import arm, renew
arm("batch.after_extract", "nulls", columns="amount", fraction=0.05, ttl=1.0)
print("armed", flush=True)
while True:
    time.sleep(0.2)
    renew("batch.after_extract")
"""


def test_runner_killed_failpoint_disarms_after_ttl(df: pd.DataFrame) -> None:
    proc = subprocess.Popen([sys.executable, "-c", ARMER], stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "armed"
        time.sleep(1.3)  # longer than the TTL: only renewals keep it armed
        assert failpoint("batch.after_extract", df)["amount"].isna().sum() == 50
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        killed_at = time.time()
        deadline = killed_at + 3.0
        while time.time() < deadline and failpoint("batch.after_extract", df) is not df:
            time.sleep(0.05)
        assert failpoint("batch.after_extract", df) is df
        assert time.time() - killed_at <= 1.5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


# -- corrupted arming records: disarmed and logged once, never an exception in the user's job -----------
_GOOD = {"name": "p", "kind": "nulls", "columns": ["amount"], "fraction": 0.1, "seed": 1, "params": {},
         "ttl": 30.0, "lease_id": "abc123", "armed_by": 1}

CORRUPT_RECORDS: dict[str, bytes] = {
    "non-utf8": b'{"kind": "nulls", "expires_at": 9e9, "columns": ["\xff\xfe"]}',
    "expires-text": json.dumps({**_GOOD, "expires_at": "abc"}).encode(),
    "expires-null": json.dumps({**_GOOD, "expires_at": None}).encode(),
    "expires-nan": b'{"kind": "nulls", "columns": ["amount"], "fraction": 0.1, "expires_at": NaN}',
    "expires-inf": b'{"kind": "nulls", "columns": ["amount"], "fraction": 0.1, "expires_at": Infinity}',
    "expires-bool": json.dumps({**_GOOD, "expires_at": True}).encode(),
    "expires-missing": json.dumps(_GOOD).encode(),
    "kind-missing": json.dumps({k: v for k, v in _GOOD.items() if k != "kind"} | {"expires_at": 9e9}).encode(),
    "kind-number": json.dumps({**_GOOD, "kind": 3, "expires_at": 9e9}).encode(),
    "params-list": json.dumps({**_GOOD, "kind": "raise", "params": ["x"], "expires_at": 9e9}).encode(),
    "fraction-text": json.dumps({**_GOOD, "fraction": "lots", "expires_at": 9e9}).encode(),
    "list": json.dumps([_GOOD]).encode(),
    "truncated": b'{"kind": "nulls", "expires_at": 9',
    "empty": b"",
}


@pytest.mark.parametrize("shape", sorted(CORRUPT_RECORDS))
def test_corrupted_record_is_disarmed_and_logged(
    shape: str, df: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    path = failpoint_dir() / "p.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(CORRUPT_RECORDS[shape])
    fp_module._cache.invalidate()
    with caplog.at_level(logging.WARNING, logger="mlchaos.failpoint"):
        assert failpoint("p", df) is df
        assert failpoint("p")(df) is df
        assert not failpoint("p").armed
        assert status("p") is None
        fp_module._cache.invalidate()  # read again: still disarmed, and not logged a second time
        assert failpoint("p", df) is df
    assert effects("p") == []
    warned = [r for r in caplog.records if r.name == "mlchaos.failpoint"]
    assert len(warned) == 1, [r.getMessage() for r in warned]
    assert "p.json" in warned[0].getMessage() and "disarmed" in warned[0].getMessage()


def test_non_finite_ttl_is_refused() -> None:
    for ttl in (float("inf"), float("nan")):
        with pytest.raises(ValueError, match="ttl"):
            arm("p", "nulls", ttl=ttl)
    arm("p", "nulls", ttl=5)
    with pytest.raises(ValueError, match="ttl"):
        renew("p", float("inf"))
