"""``mlchaos init --dependency``: the fault goes on what the service calls, end to end, on real processes.

A small service (stdlib HTTP server) answers ``POST /predict`` by calling its dependency; the scaffold
starts the fault proxy in front of the dependency at a fixed address and the service is pointed there.
The proxy answers 503 to 10 % of the dependency calls, the service turns those into its own 503s, and
the error-rate SLO measured on the service breaks: the fault reached the service through its dependency.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

SERVER = textwrap.dedent('''
    import json, sys, urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    role, port, dep = sys.argv[1], int(sys.argv[2]), (sys.argv[3] if len(sys.argv) > 3 else "")

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

        def log_message(self, *a):
            pass

        def _send(self, code, doc):
            body = json.dumps(doc).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if self.headers.get("Connection", "").lower() == "close":
                self.send_header("Connection", "close")  # say so when closing: a proxy must not pool this one
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if role == "dependency":
                self._send(200, {"feature": 0.5})
            else:
                self._send(200, {"ok": True})

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                with urllib.request.urlopen(dep + "/features", timeout=2) as r:
                    feature = json.load(r)["feature"]
            except Exception as exc:
                print("dependency call failed:", repr(exc), file=sys.stderr, flush=True)
                self._send(503, {"error": f"dependency failed: {exc}"})
                return
            self._send(200, {"score": feature * 2})

    class S(ThreadingHTTPServer):
        request_queue_size = 256
        daemon_threads = True

    S(("127.0.0.1", port), H).serve_forever()
''')


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, timeout: float = 15.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


@pytest.fixture
def service_with_dependency(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """(service URL, dependency URL, proxy listen address the service is pointed at)."""
    code = tmp_path / "server.py"
    code.write_text(SERVER)
    dep_port, svc_port, proxy = _port(), _port(), f"127.0.0.1:{_port()}"
    procs = [subprocess.Popen([sys.executable, str(code), "dependency", str(dep_port)]),
             subprocess.Popen([sys.executable, str(code), "service", str(svc_port), f"http://{proxy}"])]
    try:
        _wait(f"http://127.0.0.1:{dep_port}/")
        _wait(f"http://127.0.0.1:{svc_port}/")
        yield f"http://127.0.0.1:{svc_port}", f"http://127.0.0.1:{dep_port}", proxy
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)


@pytest.mark.slow
def test_init_dependency_puts_the_fault_on_the_dependency(tmp_path: Path, service_with_dependency) -> None:  # type: ignore[no-untyped-def]
    svc, dep, proxy = service_with_dependency
    exp = tmp_path / "exp.yaml"
    r = subprocess.run([sys.executable, "-m", "mlchaos", "init", "-o", str(exp), "--url", svc, "--path", "/predict",
                        "--method", "POST", "--body", '{"amount": 12.5}', "--rate", "150", "--p99", "500ms",
                        "--error-rate", "1%", "--fault", "errors", "--dependency", dep, "--dependency-listen", proxy],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"point your service at http://{proxy}" in r.stdout
    data = yaml.safe_load(exp.read_text())
    assert data["targets"]["dependency"] == {"platform": "http", "url": dep, "proxy": True, "proxy_listen": proxy}
    assert data["method"][0]["target"] == "dependency" and data["target"]["proxy"] is False

    j = tmp_path / "j.jsonl"
    run = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(exp), "-j", str(j), "--json"],
                         capture_output=True, text=True, timeout=240)
    s = json.loads(run.stdout)
    # 10 % of the dependency calls answered 503 by its proxy: the service's own error rate breaks its 1 % SLO
    assert s["status"] == "failed", s["reason"] + run.stderr
    assert run.returncode == 1
    assert "error rate" in s["reason"]
    assert s["faults"][0]["observed"]["affected"] > 0
    events = [json.loads(line) for line in j.read_text().splitlines() if line.strip()]
    started = [e for e in events if e["event"] == "proxy-started"]
    assert [e["listen"] for e in started] == [proxy]  # one proxy, in front of the dependency, where the service calls


def test_init_without_a_terminal_refuses_pure_defaults(tmp_path: Path) -> None:
    out = tmp_path / "e.yaml"
    r = subprocess.run([sys.executable, "-m", "mlchaos", "init", "-o", str(out)], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and "--yes" in r.stderr and not out.exists()
    r = subprocess.run([sys.executable, "-m", "mlchaos", "init", "-o", str(out), "--yes"], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and out.exists(), r.stderr
    r = subprocess.run([sys.executable, "-m", "mlchaos", "init", "-o", str(tmp_path / "d.yaml"), "--yes",
                        "--dependency-listen", "127.0.0.1:1"], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and "--dependency-listen needs --dependency" in r.stderr
