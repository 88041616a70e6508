"""Load balancer in front of replicas: naive round-robin, or readiness-gated with passive ejection.

- ``naive``: round-robin over every configured backend, healthy or not; a
  refused connection becomes a 502 to the client.  (What a static upstream
  list gives you.)
- ``mitigated``: a backend is in rotation only while its ``/ready`` answers
  200 (polled every ``probe_interval``) and it is not ejected; a connection
  failure or a 5xx ejects it for ``eject_for`` seconds (passive outlier
  detection), and a request whose connection failed is retried once on
  another backend (safe: predictions are idempotent).

``GET /lb/status`` shows the balancer's view (which backends are in
rotation); ``PUT /lb/backends`` replaces the backend list (the autoscaler
uses it); ``POST /lb/mode`` switches naive/mitigated at run time.
Run: ``python -m mlchaos.lab.services.balancer --port P --backend name=url ... --mode naive``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from prometheus_client import Counter, Gauge

from mlchaos.lab import observability as obs
from mlchaos.lab.services import scaffold
from mlchaos.lab.upstream import CONNECT_ERRORS, Upstream

IN_ROTATION = Gauge(
    "mlchaos_lb_backend_in_rotation", "1 when the backend receives traffic.", ["lb", "backend"]
)
UPSTREAM_ERRORS = Counter(
    "mlchaos_lb_upstream_errors_total", "Failed upstream attempts.", ["lb", "backend", "kind"]
)
EJECTIONS = Counter("mlchaos_lb_ejections_total", "Passive ejections.", ["lb", "backend"])
RETRIES = Counter("mlchaos_lb_retries_total", "Requests retried on another backend.", ["lb"])

_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"host", b"upgrade"}


@dataclass
class Backend:
    name: str
    url: str
    ready: bool = False
    ejected_until: float = 0.0
    requests: int = 0
    errors: int = 0
    failures: int = 0  # consecutive
    last_error: str | None = None

    def in_rotation(self, mode: str, now: float) -> bool:
        return True if mode == "naive" else (self.ready and now >= self.ejected_until)


@dataclass
class Balancer:
    name: str
    mode: str
    backends: list[Backend]
    probe_interval: float = 0.5
    eject_for: float = 5.0
    upstream_timeout: float = 10.0
    consecutive: int = 3
    _rr: int = 0
    log: obs.JsonLog = field(init=False)

    def __post_init__(self) -> None:
        self.log = obs.JsonLog(self.name)

    def pick(self, exclude: set[str]) -> Backend | None:
        now = time.monotonic()
        pool = [b for b in self.backends if b.name not in exclude and b.in_rotation(self.mode, now)]
        if not pool:
            return None
        self._rr += 1
        return pool[self._rr % len(pool)]

    def eject(self, b: Backend, why: str, definitive: bool) -> None:
        """Passive outlier detection (mitigated only).

        A refused or reset connection (``definitive``) ejects at once; timeouts and
        5xx only after ``consecutive`` in a row.  Never eject the last backend in
        rotation: with none left every request fails anyway (Envoy's "panic mode").
        """
        if self.mode != "mitigated":
            return
        b.failures += 1
        if not definitive and b.failures < self.consecutive:
            return
        now = time.monotonic()
        others = [o for o in self.backends if o is not b and o.in_rotation(self.mode, now)]
        if not others:
            self.log(
                "eject_skipped", level="warning", backend=b.name, reason=why, why="last backend in rotation"
            )
            return
        if now >= b.ejected_until:
            EJECTIONS.labels(self.name, b.name).inc()
            self.log("ejected", level="warning", backend=b.name, reason=why, seconds=self.eject_for)
        b.ejected_until = time.monotonic() + self.eject_for
        b.ready = False

    def view(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "lb": self.name,
            "mode": self.mode,
            "backends": [
                {
                    "name": b.name,
                    "url": b.url,
                    "ready": b.ready,
                    "ejected": now < b.ejected_until,
                    "in_rotation": b.in_rotation(self.mode, now),
                    "requests": b.requests,
                    "errors": b.errors,
                    "last_error": b.last_error,
                }
                for b in self.backends
            ],
            "in_rotation": [b.name for b in self.backends if b.in_rotation(self.mode, now)],
        }

    def export(self) -> None:
        now = time.monotonic()
        IN_ROTATION.clear()
        for b in self.backends:
            IN_ROTATION.labels(self.name, b.name).set(1 if b.in_rotation(self.mode, now) else 0)


def create_app(lb: Balancer) -> obs.ASGIApp:
    client = Upstream()
    probe_client = Upstream(limit=50)

    async def probe_loop() -> None:
        while True:

            async def one(b: Backend) -> None:
                try:
                    status, _ = await probe_client.get_json(b.url + "/ready", 0.4)
                    ok = status == 200
                except Exception:  # any failure to answer is "not ready"
                    ok = False
                if ok != b.ready:
                    lb.log("readiness", backend=b.name, ready=ok)
                b.ready = ok

            await asyncio.gather(*(one(b) for b in list(lb.backends)))
            lb.export()
            await asyncio.sleep(lb.probe_interval)

    async def json(send: obs.Send, status: int, body: Any) -> None:
        payload = orjson.dumps(body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def read_body(receive: obs.Receive) -> bytes:
        chunks = []
        while True:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body"):
                return b"".join(chunks)

    async def proxy(scope: obs.Scope, body: bytes, send: obs.Send) -> None:
        headers = [
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"] if k.lower() not in _HOP
        ]
        path = scope["path"] + (("?" + scope["query_string"].decode()) if scope["query_string"] else "")
        tried: set[str] = set()
        attempts = 2 if lb.mode == "mitigated" else 1
        last_err = "no backend in rotation"
        for attempt in range(attempts):
            b = lb.pick(tried)
            if b is None:
                break
            tried.add(b.name)
            b.requests += 1
            try:
                status, rheaders, content = await client.request(
                    scope["method"], b.url + path, body, headers, lb.upstream_timeout
                )
            except CONNECT_ERRORS as exc:
                b.errors += 1
                b.last_error = type(exc).__name__
                last_err = f"{b.name}: {type(exc).__name__}"
                UPSTREAM_ERRORS.labels(lb.name, b.name, "connect").inc()
                lb.eject(b, last_err, definitive=True)
                if attempt + 1 < attempts:
                    RETRIES.labels(lb.name).inc()
                continue
            except TimeoutError:
                b.errors += 1
                b.last_error = "timeout"
                UPSTREAM_ERRORS.labels(lb.name, b.name, "timeout").inc()
                lb.eject(b, "timeout", definitive=False)
                await json(send, 504, {"error": "upstream timeout", "backend": b.name, "fallback": False})
                return
            if status >= 500:
                b.errors += 1
                b.last_error = f"http {status}"
                UPSTREAM_ERRORS.labels(lb.name, b.name, "5xx").inc()
                lb.eject(b, f"http {status}", definitive=False)
                if status == 503 and attempt + 1 < attempts:
                    RETRIES.labels(lb.name).inc()
                    last_err = f"{b.name}: 503"
                    continue
            else:
                b.failures = 0
            out = [(k.encode(), v.encode()) for k, v in rheaders if k.encode().lower() not in _HOP]
            out.append((b"x-backend", b.name.encode()))
            out.append((b"content-length", str(len(content)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": out})
            await send({"type": "http.response.body", "body": content})
            return
        lb.log("no_upstream", level="error", reason=last_err)
        await json(send, 502, {"error": "upstream unavailable", "reason": last_err, "fallback": False})

    async def app(scope: obs.Scope, receive: obs.Receive, send: obs.Send) -> None:
        if scope["type"] == "lifespan":
            task: asyncio.Task[None] | None = None
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    task = asyncio.create_task(probe_loop())
                    lb.log("starting", mode=lb.mode, backends=[b.name for b in lb.backends])
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    if task:
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
                    await client.close()
                    await probe_client.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        body = await read_body(receive)
        if path == "/lb/status":
            await json(send, 200, lb.view())
        elif path in ("/health", "/ready"):
            now = time.monotonic()
            n = sum(b.in_rotation(lb.mode, now) and b.ready for b in lb.backends)
            await json(send, 200 if (n or path == "/health") else 503, {"ready": n > 0, "backends_ready": n})
        elif path == "/metrics":
            payload, ctype = obs.metrics_response()
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", ctype.encode())]}
            )
            await send({"type": "http.response.body", "body": payload})
        elif path == "/lb/backends" and method == "PUT":
            try:
                spec = _backends(body)
            except ValueError as exc:  # a bad list is refused whole: the rotation stays as it was
                await json(send, 422, {"error": f"backends: {exc}"})
                return
            old = {b.name: b for b in lb.backends}
            lb.backends = [old.get(d["name"]) or Backend(d["name"], d["url"]) for d in spec]
            for b, d in zip(lb.backends, spec, strict=True):
                b.url = d["url"]
            lb.log("backends", backends=[b.name for b in lb.backends])
            await json(send, 200, lb.view())
        elif path == "/lb/mode" and method == "POST":
            try:
                mode = orjson.loads(body).get("mode")
            except (ValueError, AttributeError):
                mode = None
            if mode not in ("naive", "mitigated"):
                await json(send, 422, {"error": "mode: expected {\"mode\": \"naive\" | \"mitigated\"}"})
                return
            lb.mode = mode
            lb.log("mode", mode=lb.mode)
            await json(send, 200, lb.view())
        else:
            await proxy(scope, body, send)

    return app


def _backends(body: bytes) -> list[dict[str, str]]:
    """``PUT /lb/backends``: a JSON list of ``{"name", "url"}`` with http(s) URLs, else ValueError."""
    spec = orjson.loads(body)
    if not isinstance(spec, list):
        raise ValueError("expected a JSON list of {name, url}")
    for d in spec:
        if not (isinstance(d, dict) and isinstance(d.get("name"), str)
                and isinstance(d.get("url"), str) and d["url"].startswith(("http://", "https://"))):
            raise ValueError(f"expected {{name, url: http(s)://...}}, got {d!r}"[:300])
    return spec


def main(argv: list[str] | None = None) -> None:
    p = scaffold.parser(__doc__, "lb")
    p.add_argument("--backend", action="append", default=[], help="name=url (repeatable)")
    p.add_argument("--mode", choices=["naive", "mitigated"], default="naive")
    p.add_argument("--eject-for", type=float, default=5.0)
    p.add_argument("--probe-interval", type=float, default=0.5)
    a = p.parse_args(argv)
    backends = [Backend(*spec.split("=", 1)) for spec in a.backend]
    lb = Balancer(a.name, a.mode, backends, probe_interval=a.probe_interval, eject_for=a.eject_for)
    scaffold.serve(create_app(lb), a.name, a.port)


if __name__ == "__main__":
    main()
