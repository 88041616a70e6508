"""A local Kubernetes API stand-in: replays recorded responses and records every request.

It listens on 127.0.0.1 only, on a free port, in a thread of the test process.
The real ``kubernetes`` client talks to it over HTTP (``server=`` connection),
so these tests check the requests the client really sends: method, path,
query (label selectors, grace periods) and JSON body.  No live cluster is
involved; the responses are the fixtures in data/recorded (SOURCE.txt).
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

RECORDED = Path(__file__).resolve().parent / "data" / "recorded"
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


def recorded(name: str) -> Any:
    return json.loads((RECORDED / name).read_text())


@dataclasses.dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str | None
    body: Any

    @property
    def mutating(self) -> bool:
        return self.method in MUTATING


Responder = Callable[[Request, re.Match[str]], tuple[int, Any]]


class ReplayServer:
    """Route table: (method, path regex) -> (status, JSON) or a function of the request."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Responder]] = []
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except json.JSONDecodeError:
                    body = raw.decode(errors="replace")
                req = Request(
                    self.command, parts.path, parse_qs(parts.query), self.headers.get("Content-Type"), body
                )
                with server._lock:
                    server.requests.append(req)
                status, payload = server._respond(req)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="k8s-replay", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def route(self, method: str, pattern: str, response: Responder | tuple[int, Any] | str) -> None:
        if isinstance(response, str):
            fixture = recorded(response)
            self.routes.append((method, re.compile(pattern), lambda r, m, f=fixture: (200, f)))
        elif isinstance(response, tuple):
            self.routes.append((method, re.compile(pattern), lambda r, m, t=response: t))
        else:
            self.routes.append((method, re.compile(pattern), response))

    def _respond(self, req: Request) -> tuple[int, Any]:
        for method, pattern, responder in self.routes:
            m = pattern.fullmatch(req.path)
            if method == req.method and m:
                return responder(req, m)
        return 404, {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "reason": "NotFound",
            "message": f"no recorded response for {req.method} {req.path}",
            "code": 404,
        }

    def mutations(self) -> list[Request]:
        return [r for r in self.requests if r.mutating]

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.requests]

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def echo_created(req: Request, m: re.Match[str]) -> tuple[int, Any]:
    """What the API server answers to a create: the object with server-set metadata."""
    obj = dict(req.body)
    meta = dict(obj.get("metadata") or {})
    meta.update(
        uid="f0000000-0000-4000-8000-0000000000aa",
        resourceVersion="1500",
        creationTimestamp="2026-11-26T21:10:00Z",
        generation=1,
    )
    obj["metadata"] = meta
    return 201, obj
