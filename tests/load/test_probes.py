"""Load probes (latency, error-rate, throughput) on a running load, and the Prometheus probe on a real server."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlchaos.load import LoadRunner, LoadSpec
from mlchaos.plugin import Context, Measurement, Probe, ProbeError, Target
from mlchaos.probes.load import ErrorRateProbe, LatencyProbe, ThroughputProbe
from mlchaos.probes.prometheus import PrometheusProbe


class Ctx(Context):
    def __init__(self, services: dict[str, Any] | None = None) -> None:
        self._services = services or {}
        self.run_id = "test"
        self.state_dir = None
        self.lease_ttl = 5.0

    def target(self, name: str) -> Target:
        raise KeyError(name)

    def log(self, event: str, **fields: Any) -> None:
        pass

    @property
    def services(self) -> Mapping[str, Any]:
        return self._services


def probe(cls: type[Probe], ctx: Context, **spec: Any) -> Probe:
    return cls(cls.Spec.model_validate(spec), ctx)


def measure(p: Probe) -> Measurement:
    return asyncio.run(p.measure())


def test_load_probes(http_server: Callable[..., str]) -> None:
    url = http_server()

    async def go() -> None:
        runner = LoadRunner(LoadSpec(rate="1000/s", path="/err"), url)
        ctx = Ctx({"load": runner})
        lat = probe(LatencyProbe, ctx, probe="latency", percentile=99, window="2s")
        p50 = probe(LatencyProbe, ctx, probe="latency", percentile=50, window="2s")
        err = probe(ErrorRateProbe, ctx, probe="error-rate", window="2s", max="15%")
        tput = probe(ThroughputProbe, ctx, probe="throughput", window="1s")
        await runner.start()
        try:
            await asyncio.sleep(0.3)
            early = await lat.measure()
            assert early.value is None and early.insufficient and "needs" in early.insufficient
            await asyncio.sleep(2.0)
            m = await lat.measure()
            assert m.insufficient is None and m.value is not None and 0 < m.value < 1.0
            assert m.samples is not None and m.samples >= 1000
            m50 = await p50.measure()
            assert m50.value is not None and m50.value <= m.value
            e = await err.measure()
            assert e.value == pytest.approx(0.1, abs=0.03)
            t = await tput.measure()
            assert t.value == pytest.approx(1000, rel=0.25)  # loose: the test machine is shared
        finally:
            await runner.stop(drain=1.0)

    asyncio.run(go())


def test_load_probe_without_load() -> None:
    with pytest.raises(ProbeError, match="no 'load:'"):
        measure(probe(ErrorRateProbe, Ctx(), probe="error-rate"))


# -- Prometheus -------------------------------------------------------------------------------------


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ensure_prometheus() -> str:
    exe = shutil.which("prometheus")
    if exe:
        return exe
    if os.geteuid() != 0:
        pytest.skip("prometheus is not installed and apt-get needs root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, capture_output=True, env=env, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "prometheus"], check=True,
                   capture_output=True, env=env, timeout=900)
    exe = shutil.which("prometheus")
    assert exe, "apt-get installed prometheus but it is not on PATH"
    return exe


_SERVICE = """
import sys, time
from prometheus_client import Counter, Gauge, start_http_server
start_http_server(int(sys.argv[1]), addr="127.0.0.1")
Gauge("mlchaos_test_queue_depth", "queue depth").set(42)
c = Counter("mlchaos_test_requests", "requests", ["code"])
c.labels("200").inc(90); c.labels("500").inc(10)
sys.stdin.read()
"""


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus on 127.0.0.1 scraping a small prometheus_client service every second."""
    exe = _ensure_prometheus()
    d: Path = tmp_path_factory.mktemp("prom")
    svc_port, prom_port = _port(), _port()
    svc = subprocess.Popen([sys.executable, "-c", _SERVICE, str(svc_port)], stdin=subprocess.PIPE)
    (d / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: svc\n    static_configs: [{{targets: ['127.0.0.1:{svc_port}']}}]\n"
    )
    prom = subprocess.Popen(
        [exe, f"--config.file={d / 'prometheus.yml'}", f"--storage.tsdb.path={d / 'data'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{prom_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(url + "/api/v1/query", params={"query": "mlchaos_test_queue_depth"}, timeout=1)
                if r.status_code == 200 and r.json()["data"]["result"]:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or prom.poll() is not None:
                raise RuntimeError("Prometheus did not start or scrape the service")
            time.sleep(0.3)
        yield url
    finally:
        prom.terminate()
        try:
            prom.wait(10)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait()
        assert svc.stdin is not None
        svc.stdin.close()
        svc.wait(5)


def test_prometheus_value_and_tolerance(prometheus: str) -> None:
    from mlchaos.engine.verdict import within

    p = probe(PrometheusProbe, Ctx(), probe="prometheus", server=prometheus,
              query="mlchaos_test_queue_depth", max=50)
    m = measure(p)
    assert m.value == 42.0 and m.insufficient is None
    assert within(p.spec, m.value)[0]
    tight = PrometheusProbe.Spec.model_validate({"probe": "prometheus", "query": "x", "max": 40})
    assert not within(tight, m.value)[0]
    ratio = measure(probe(PrometheusProbe, Ctx(), probe="prometheus", server=prometheus,
                          query='sum(mlchaos_test_requests_total{code="500"}) / sum(mlchaos_test_requests_total)'))
    assert ratio.value == pytest.approx(0.1)
    many = probe(PrometheusProbe, Ctx(), probe="prometheus", server=prometheus, query="mlchaos_test_requests_total")
    with pytest.raises(ProbeError, match="2 series"):
        measure(many)
    summed = probe(PrometheusProbe, Ctx(), probe="prometheus", server=prometheus,
                   query="mlchaos_test_requests_total", reduce="sum")
    assert measure(summed).value == 100.0
    none = measure(probe(PrometheusProbe, Ctx(), probe="prometheus", server=prometheus, query="no_such_metric"))
    assert none.value is None and none.insufficient


def test_prometheus_invalid_query(prometheus: str) -> None:
    p = probe(PrometheusProbe, Ctx(), probe="prometheus", server=prometheus, query="sum(rate(x[1m]")
    with pytest.raises(ProbeError, match="invalid PromQL"):
        measure(p)


def test_prometheus_unreachable() -> None:
    p = probe(PrometheusProbe, Ctx(), probe="prometheus", server=f"http://127.0.0.1:{_port()}", query="up")
    with pytest.raises(ProbeError, match="unreachable"):
        measure(p)
