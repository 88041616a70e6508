"""The generator against real loopback servers: rate, stalls (no coordinated omission), errors, windows."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlchaos.load import LoadReport, LoadRunner, LoadSpec, run_load


def test_constant_rate_accuracy(http_server: Callable[..., str]) -> None:
    url = http_server()
    rep = run_load(LoadSpec(rate="1000/s", duration="5s", processes=1), url)
    assert rep.scheduled == 5000
    assert rep.sent == rep.completed == 5000
    assert abs(rep.achieved_rate - 1000) / 1000 < 0.01
    assert rep.errors == {"status": 0, "timeout": 0, "connection": 0}
    assert rep.validity.achieved == 1.0
    assert len(rep.series) >= 5 and sum(s["sent"] for s in rep.series) == 5000


def test_poisson_rate_accuracy(http_server: Callable[..., str]) -> None:
    # the inter-arrival law itself is KS-tested on the plan in test_schedule.py
    url = http_server()
    rep = run_load(LoadSpec(rate="1000/s", duration="5s", arrivals="poisson", seed=11, processes=1), url)
    assert abs(rep.scheduled - 5000) < 4 * 5000**0.5  # the plan is Poisson(5000)
    assert rep.sent == rep.scheduled  # every planned request went out
    assert abs(rep.achieved_rate - rep.scheduled_rate) / rep.scheduled_rate < 0.01


def test_stall_is_reported_in_p99(http_server: Callable[..., str]) -> None:
    """The issue's test: a 200 ms stall every second must show in p99 (≥ 150 ms) at 1 k req/s."""
    url = http_server(stall_every=1.0, stall_for=0.2)
    rep = run_load(LoadSpec(rate="1000/s", duration="5s", processes=1), url)
    p99 = rep.latency.quantile(0.99)
    assert p99 is not None and p99 >= 0.150, rep.to_dict()["latency"]
    # ground truth: 20 % of requests wait U(0, 200 ms): p90 ≈ 100 ms, p99 ≈ 190 ms
    assert 0.05 < (rep.latency.quantile(0.9) or 0) < 0.15
    assert rep.sent == rep.scheduled == 5000
    # the server's service time hides nothing either: it is a real stall, not generator lag
    assert (rep.lag.quantile(0.5) or 1) < 0.005


def test_error_kinds(http_server: Callable[..., str], free_port: int) -> None:
    url = http_server()
    rep = run_load(LoadSpec(rate="500/s", duration="2s", path="/err"), url)
    assert rep.errors["status"] == rep.codes[500] == 100
    assert rep.error_rate == pytest.approx(0.1)
    refused = run_load(LoadSpec(rate="200/s", duration="1s"), f"http://127.0.0.1:{free_port}")
    assert refused.errors["connection"] == refused.completed == 200
    stalled_url = http_server(stall_every=0.5, stall_for=0.3)
    slow = run_load(LoadSpec(rate="200/s", duration="2s", timeout="50ms"), stalled_url)
    assert slow.errors["timeout"] > 20
    assert (slow.latency.max or 0) >= 0.05  # timed-out requests count at their age


def test_connection_close_and_body_file(http_server: Callable[..., str], tmp_path: Path) -> None:
    url = http_server()
    f = tmp_path / "req.jsonl"
    f.write_text('{"amount": 1}\n{"amount": 2}\n\n{"amount": 3}\n')
    rep = run_load(LoadSpec(rate="300/s", duration="1s", path="/close", body_file=str(f)), url)
    assert rep.codes == {200: 300} and rep.validity.dispatched == 300


@contextlib.contextmanager
def stdlib_server(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Python's own http.server on loopback: the simplest model server a user writes."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/"
    finally:
        srv.shutdown()
        srv.server_close()


class _Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_close_delimited_responses_count_as_answers() -> None:
    """http.server's default answers HTTP/1.0 with no Content-Length and closes: each body ends at the close,
    and a generator that called that a connection error would fail a healthy model server."""

    class Handler(_Quiet):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"prediction": 0.5}')

    with stdlib_server(Handler) as url:
        rep = run_load(LoadSpec(rate="100/s", duration="1s", processes=1), url)
    assert rep.codes == {200: 100} and rep.errors == {"status": 0, "timeout": 0, "connection": 0}
    assert rep.latency.count == 100


def test_head_requests_end_at_their_headers() -> None:
    """A HEAD answer announces a Content-Length it does not send; waiting for that body times every request out."""

    class Handler(_Quiet):
        protocol_version = "HTTP/1.1"  # keep-alive, so a connection must be reusable after each HEAD

        def do_HEAD(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "19")
            self.end_headers()

    with stdlib_server(Handler) as url:
        rep = run_load(LoadSpec(rate="200/s", duration="1s", processes=1, method="HEAD", timeout="1s"), url)
    assert rep.codes == {200: 200} and rep.errors == {"status": 0, "timeout": 0, "connection": 0}
    assert (rep.latency.quantile(0.5) or 1) < 0.1


def test_two_processes_split_the_rate_and_merge(http_server: Callable[..., str]) -> None:
    url = http_server()
    rep = run_load(LoadSpec(rate="2000/s", duration="2s", processes=2), url)
    assert rep.processes == 2
    assert rep.scheduled == rep.sent == rep.completed == 4000
    assert rep.latency.count == 4000


def test_runner_window_samples_and_stop(http_server: Callable[..., str]) -> None:
    url = http_server()

    async def go() -> tuple[list[dict[str, object]], LoadReport]:
        spec = LoadSpec(rate="1000/s", path="/json", sample="5%")  # no duration: until stopped
        runner = LoadRunner(spec, url)
        await runner.start()
        seen = []
        for _ in range(8):
            await asyncio.sleep(0.25)
            seen.append(runner.window(1.0).to_dict())
        w = runner.window(1.0)
        assert w.count > 500 and w.error_rate == 0 and w.p99 is not None
        assert 500 < (w.throughput or 0) < 1500
        assert w.samples and w.samples[0]["json"]["model_version"] == "v3"
        assert len(w.samples) <= 200
        rep = await runner.stop()
        assert not runner.running
        return seen, rep

    seen, rep = asyncio.run(go())
    assert seen[-1]["count"] > 0
    assert rep.sent == rep.completed and rep.abandoned == 0
    assert 1.5 < rep.duration < 3.5


def test_invalid_when_budget_cannot_be_met(http_server: Callable[..., str]) -> None:
    url = http_server()
    rep = run_load(LoadSpec(rate="500/s", duration="1s", lag_budget="1us"), url)
    assert not rep.valid and "lag" in rep.invalid_reason
    d = rep.to_dict()
    assert d["validity"]["verdict"] == "INVALID"
    json.dumps(d)


def test_cli_json(http_server: Callable[..., str]) -> None:
    import subprocess
    import sys

    url = http_server()
    out = subprocess.run(
        [sys.executable, "-m", "mlchaos", "load", url + "/json", "--rate", "300/s", "--duration", "1s",
         "--arrivals", "poisson", "--json", "--lag-budget", "1s"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["validity"]["verdict"] == "VALID" and doc["codes"] == {"200": doc["completed"]}
    bad = subprocess.run([sys.executable, "-m", "mlchaos", "load", url, "--rate", "fast", "--sample", "200%"],
                         capture_output=True, text=True, timeout=60)
    # every bad flag by the name the user typed, no pydantic report, no traceback
    assert bad.returncode == 2
    assert "--rate: invalid rate 'fast'" in bad.stderr and "--sample: percentage must be" in bad.stderr
    assert "pydantic" not in bad.stderr and "Traceback" not in bad.stderr


def test_profiles_and_timer_only_pacer(http_server: Callable[..., str]) -> None:
    url = http_server()
    spike = run_load(LoadSpec(rate="600/s", duration="2s", spin=0,
                              profile={"type": "spike", "baseline": "100/s", "at": "1s", "length": "0.5s"}), url)
    assert abs(spike.scheduled - (1.5 * 100 + 0.5 * 600)) <= 2
    assert spike.validity.achieved == 1.0 and spike.completed == spike.scheduled
    by_sec = {row["t"]: row["sent"] for row in spike.series}
    assert by_sec.get(1, 0) > by_sec.get(0, 0)
