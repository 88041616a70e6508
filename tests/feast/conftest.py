"""A real Feast feature repository (parquet FileSource, SQLite online store) and a real ``feast serve``.

The repository is built with Feast's own SDK in a temporary directory (``apply`` +
``materialize``): nothing is downloaded, every row is generated here.  The server is the
``feast serve`` command the Feast docs give, on a free loopback port, stopped (its whole
process group) when the module's tests end, also on failure.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import reserve_port

feast = pytest.importorskip("feast", reason="the Feast tests need the feast extra")

VIEW = "driver_hourly_stats"
DRIVERS = list(range(1001, 1009))
AGE_S = 60.0
"""How old the materialised rows are when the repository is built (their event time is now - 60 s)."""

FEATURE_STORE_YAML = """\
project: mlchaos_test
registry: data/registry.db
provider: local
online_store:
  type: sqlite
  path: data/online.db
entity_key_serialization_version: 3
"""

FEATURES_PY = '''\
from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float32, Int64

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
driver_stats = FileSource(path="data/driver_stats.parquet", timestamp_field="event_timestamp")
driver_hourly_stats = FeatureView(
    name="driver_hourly_stats",
    entities=[driver],
    ttl=timedelta(days=1),
    schema=[Field(name="conv_rate", dtype=Float32), Field(name="trips", dtype=Int64)],
    source=driver_stats,
    online=True,
)
'''


@dataclass
class FeastRepo:
    path: Path
    conv_rate: dict[int, float]
    """Each driver's conv_rate as written (float32 values)."""


def build_repo(root: Path) -> FeastRepo:
    """Write the repository, apply it and materialise the parquet rows into the SQLite online store."""
    import importlib.util

    import numpy as np
    import pandas as pd

    (root / "data").mkdir(parents=True)
    (root / "feature_store.yaml").write_text(FEATURE_STORE_YAML)
    (root / "features.py").write_text(FEATURES_PY)
    now = datetime.now(UTC).replace(microsecond=0)
    conv = {d: float(np.float32((d - 1000) / 10)) for d in DRIVERS}
    frame = pd.DataFrame({
        "driver_id": DRIVERS,
        "event_timestamp": [now - timedelta(seconds=AGE_S)] * len(DRIVERS),
        "conv_rate": np.array([conv[d] for d in DRIVERS], dtype=np.float32),
        "trips": np.arange(len(DRIVERS), dtype=np.int64),
    })
    frame.to_parquet(root / "data" / "driver_stats.parquet")
    spec = importlib.util.spec_from_file_location("mlchaos_test_feast_repo", root / "features.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    cwd = os.getcwd()
    os.chdir(root)  # the FileSource path is relative to the repository, as with `feast apply`
    try:
        spec.loader.exec_module(module)
        store = feast.FeatureStore(repo_path=str(root))
        store.apply([module.driver, module.driver_hourly_stats])
        store.materialize(start_date=now - timedelta(hours=1), end_date=now + timedelta(seconds=1))
    finally:
        os.chdir(cwd)
    return FeastRepo(root, conv)


@contextlib.contextmanager
def feast_serve(repo: Path) -> Iterator[str]:
    """``feast serve`` on a free loopback port; its process group is stopped on the way out."""
    import httpx

    port = reserve_port()
    log = open(repo / "serve.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        ["feast", "serve", "-h", "127.0.0.1", "-p", str(port), "--no-access-log", "--max-requests", "1000000"],
        cwd=repo, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"feast serve did not start: {(repo / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(2)  # a graceful stop waits for keep-alive clients; the test needs none of that
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        with contextlib.suppress(ProcessLookupError):  # a worker that outlived its master
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
