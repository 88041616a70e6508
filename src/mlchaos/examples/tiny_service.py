"""A tiny prediction service (stdlib only) for the built-in demo and the engine's tests.

It scores ``POST /predict`` with a fixed logistic model and answers
``GET /health``; ``--stall-every``/``--stall`` make it stall periodically and
``--fail-rate`` makes it answer 500 to a share of requests, so tests can
produce every verdict against a real process and a real socket.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, format: str, *args: object) -> None:
        return

    def _send(self, code: int, doc: object) -> None:
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.server.maybe_stall()
        if self.path.startswith("/health"):
            self._send(200, {"status": "ok", "model_version": self.server.version})
        elif self.path.startswith("/stats"):
            self._send(200, {"requests": self.server.requests, "model_version": self.server.version})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        self.server.maybe_stall()
        self.server.requests += 1
        n = int(self.headers.get("Content-Length") or 0)
        try:
            doc = json.loads(self.rfile.read(n) or b"{}")
            amount = float(doc.get("amount", 0.0))
        except (ValueError, TypeError, AttributeError):
            self._send(400, {"error": "invalid JSON body"})
            return
        if random.random() < self.server.fail_rate:
            self._send(500, {"error": "injected failure"})
            return
        p = 1 / (1 + math.exp(-(amount - 500) / 100))
        self._send(200, {"prediction": int(p > 0.5), "score": p, "model_version": self.server.version,
                         "fallback": False})


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr: tuple[str, int], *, version: str, fail_rate: float, stall: float, every: float) -> None:
        super().__init__(addr, Handler)
        self.version = version
        self.fail_rate = fail_rate
        self.stall = stall
        self.every = every
        self.requests = 0
        self._lock = threading.Lock()

    def handle_error(self, request: object, client_address: object) -> None:
        # a client that gave up (a probe's timeout) is normal under chaos: no traceback spam
        return

    def maybe_stall(self) -> None:
        if self.stall > 0 and self.every > 0:
            phase = time.monotonic() % self.every
            if phase < self.stall:
                time.sleep(self.stall - phase)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="tiny_service")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--version", default="v1")
    ap.add_argument("--fail-rate", type=float, default=0.0)
    ap.add_argument("--stall", type=float, default=0.0, help="seconds of stall")
    ap.add_argument("--stall-every", type=float, default=0.0, help="period of stalls in seconds")
    a = ap.parse_args(argv)
    srv = Server((a.host, a.port), version=a.version, fail_rate=a.fail_rate, stall=a.stall, every=a.stall_every)
    with contextlib.suppress(KeyboardInterrupt):
        srv.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    main()
