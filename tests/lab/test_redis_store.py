"""The Redis online store: same rows as SQLite, same answers from the feature service, clear errors.

A real ``redis-server`` runs on a free 127.0.0.1 port for each test that needs
one (installed with apt-get when missing and possible; otherwise the test is
skipped, saying why), with no persistence, and is stopped afterwards.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from mlchaos.lab import Lab, LabError
from mlchaos.lab import featurestore as fs
from mlchaos.lab.paths import LabPaths
from tests.conftest import reserve_port


def ensure_redis() -> str:
    """Path of ``redis-server`` (and the ``redis`` client importable), installing them if missing.

    Skips the calling test only when neither is available and cannot be installed.
    """
    if importlib.util.find_spec("redis") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "redis"], capture_output=True, timeout=300)
        importlib.invalidate_caches()
        if importlib.util.find_spec("redis") is None:
            pytest.skip("the 'redis' client is not installed and pip could not install it")
    server = shutil.which("redis-server")
    if server is None and shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], capture_output=True, timeout=900, env=env)
        server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed and could not be installed with apt-get")
    return server


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A throw-away redis-server on 127.0.0.1 (no persistence); returns the process and its URL."""
    server = ensure_redis()
    workdir.mkdir(parents=True, exist_ok=True)
    port = reserve_port()
    proc = subprocess.Popen(
        [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(workdir), "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            fs.open_store(url).close()
            return proc, url
        except fs.FeatureStoreError:
            if proc.poll() is not None:
                break
            time.sleep(0.02)
    stop_redis(proc)
    raise RuntimeError(f"redis-server did not start on port {port}")


def stop_redis(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    proc, url = start_redis(tmp_path / "redis")
    yield url
    stop_redis(proc)


def test_redis_reads_equal_sqlite(built_lab_dir: Path, redis_url: str) -> None:
    db = LabPaths(built_lab_dir).feature_db
    assert fs.load_redis(redis_url, db) == 2000
    sqlite = fs.open_store(None, db)
    redis = fs.open_store(redis_url)
    assert isinstance(redis, fs.RedisStore) and redis.backend == "redis" and sqlite.backend == "sqlite"
    try:
        ids = sqlite.ids()
        assert redis.ids() == ids and len(ids) == 2000
        for i in ids:
            a, b = sqlite.get(i), redis.get(i)
            assert a is not None and a == b  # exact floats, event_ts included
            assert set(a) == {*fs.ROW_FIELDS}
        assert redis.read_rows(ids) == sqlite.read_rows(ids)
        assert redis.get(999_999) is None and sqlite.get(999_999) is None
        raw = redis.raw(ids[0])
        assert raw[b"event_ts"] == repr(sqlite.get(ids[0])["event_ts"]).encode()  # type: ignore[index]
        # a reload replaces what is there (no stray rows from an earlier load)
        redis.write_rows({123_456: {f: 1.0 for f in fs.ROW_FIELDS}})
        fs.load_redis(redis_url, db)
        assert redis.get(123_456) is None
    finally:
        sqlite.close()
        redis.close()


def test_unreachable_redis_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ensure_redis()
    url = f"redis://127.0.0.1:{reserve_port()}/0"
    with pytest.raises(fs.FeatureStoreError, match="unreachable") as info:
        fs.open_store(url)
    assert url in str(info.value)
    with pytest.raises(LabError, match="feature store"):
        Lab(tmp_path / "lab", feature_store=url).up(["realtime"], timeout=10)
    assert not (tmp_path / "lab" / "state.json").exists()  # nothing was started
    monkeypatch.setenv(fs.ENV_REDIS_URL, url)
    with pytest.raises(LabError, match=str(url.split("//")[1])):
        Lab(tmp_path / "lab2").up(["realtime"], timeout=10)


def test_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(fs.ENV_REDIS_URL, raising=False)
    assert fs.configured_url() is None
    assert fs.configured_url("redis://127.0.0.1:1/0") == "redis://127.0.0.1:1/0"
    monkeypatch.setenv(fs.ENV_REDIS_URL, "redis://127.0.0.1:2/0")
    assert fs.configured_url() == "redis://127.0.0.1:2/0"
    assert fs.configured_url("sqlite") is None  # explicit SQLite wins over the variable
    with pytest.raises(fs.FeatureStoreError, match="expected 'sqlite'"):
        fs.configured_url("postgres://x")


def test_feature_service_answers_the_same_features_on_redis(
    make_lab: Callable[..., Lab], redis_url: str
) -> None:
    lab = make_lab(feature_store=redis_url)
    lab.up(["realtime"], variant="naive")
    assert lab.state()["feature_store"] == {"backend": "redis", "url": redis_url}
    sqlite = fs.open_store(None, lab.paths.feature_db)
    redis = fs.open_store(redis_url)
    ep = lab.endpoints()
    try:
        with httpx.Client(timeout=5) as c:
            for account in (0, 7, 123, 1999):
                want = sqlite.get(account)
                assert want is not None
                body = c.get(f"{ep['features']}/features/{account}").json()
                assert body["event_ts"] == want.pop("event_ts")
                assert body["features"] == want
            # it really reads Redis: a row deleted there is gone from the service, SQLite untouched
            redis.delete([7])
            assert c.get(f"{ep['features']}/features/7").status_code == 404
            assert sqlite.get(7) is not None
            # and the fraud model end to end on Redis features
            r = c.post(ep["realtime"] + "/predict",
                       json={"account_id": 123, "amount": 50.0, "merchant_category": "grocery", "hour": 12})
            assert r.status_code == 200 and r.json()["feature_source"] == "live"
    finally:
        sqlite.close()
        redis.close()
    lab.down()
