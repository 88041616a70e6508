"""A small server that speaks the Open Inference Protocol (KServe v2), for tests.

Why a stand-in: Triton, KServe and MLServer need container images, a Kubernetes
cluster or GPUs that the test machines do not have, and the probes under test
read only the protocol's JSON.  This server implements the parts of the v2
REST protocol the probes read, as the spec words them: ``GET /v2/health/ready``,
``GET /v2/models/{name}`` (metadata: ``name``, ``versions``, ``platform``,
``inputs``, ``outputs``) and ``POST /v2/models/{name}/infer`` (``inputs`` →
``outputs`` with ``name``, ``shape``, ``datatype`` and row-major ``data``).

Its model is fixed and deterministic: one input tensor ``[N, k]`` (FP64), the
class is 1 when the first feature is above 0.5, and two outputs: ``label``
``[N]`` (INT64) and ``probabilities`` ``[N, 2]`` (FP64, P(0) then P(1)).

    python -m tests.stacks.oip_server --port 8000 --model fraud --version 1
"""

from __future__ import annotations

import argparse
import json
import math
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def predict(rows: list[list[float]]) -> tuple[list[int], list[float]]:
    labels, probs = [], []
    for r in rows:
        p1 = 1.0 / (1.0 + math.exp(-8.0 * (float(r[0]) - 0.5)))
        labels.append(int(r[0] > 0.5))
        probs.extend([1.0 - p1, p1])
    return labels, probs


class Server(ThreadingHTTPServer):
    daemon_threads = True
    model: str
    version: str


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"  # keep-alive, as the load generator expects of a real server

    def log_message(self, format: str, *args: object) -> None:
        return

    def _send(self, code: int, doc: Any) -> None:
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        s = self.server
        if self.path in ("/v2/health/ready", "/v2/health/live"):
            self._send(200, {})
        elif self.path == f"/v2/models/{s.model}":
            self._send(200, {
                "name": s.model, "versions": [s.version], "platform": "mlchaos-test",
                "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, -1]}],
                "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]},
                            {"name": "probabilities", "datatype": "FP64", "shape": [-1, 2]}],
            })
        else:
            self._send(404, {"error": f"unknown path {self.path}"})

    def do_POST(self) -> None:
        s = self.server
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        m = re.fullmatch(r"/v2/models/([^/]+)/infer", self.path)
        if not m or m.group(1) != s.model:
            self._send(404, {"error": f"unknown model path {self.path}"})
            return
        try:
            tensor = json.loads(raw)["inputs"][0]
            n, k = tensor["shape"]
            flat = tensor["data"]
            rows = [flat[i * k:(i + 1) * k] for i in range(n)]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            self._send(400, {"error": f"bad inference request: {exc}"})
            return
        labels, probs = predict(rows)
        self._send(200, {
            "model_name": s.model, "model_version": s.version, "id": "",
            "outputs": [
                {"name": "label", "shape": [n], "datatype": "INT64", "data": labels},
                {"name": "probabilities", "shape": [n, 2], "datatype": "FP64", "data": probs},
            ],
        })


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--model", default="fraud")
    ap.add_argument("--version", default="1")
    a = ap.parse_args(argv)
    srv = Server(("127.0.0.1", a.port), Handler)
    srv.model, srv.version = a.model, a.version
    srv.serve_forever()


if __name__ == "__main__":
    main()
