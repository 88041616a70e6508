"""The control API: a small JSON-over-HTTP server to add, list, renew and remove faults.

Endpoints (all JSON; ``Authorization: Bearer <token>`` required when a token is set):

===========================  =================================================================
``GET /health``              mode, addresses, worker count, number of active faults
``GET /kinds``               fault kinds with their parameter JSON Schemas
``GET /faults``              active faults with counters
``POST /faults``             add a fault (201 ``{"id": ...}``); ``?dry_run=1`` validates only
``POST /faults/validate``    validate a fault without adding it (200 or 400)
``GET /faults/{id}``         one fault with ``seen``/``affected`` (also after it expired)
``POST /faults/{id}/renew``  body ``{"ttl": "30s"}`` (optional) -> extends the lease
``DELETE /faults/{id}``      remove (404 when unknown or already gone)
``DELETE /faults``           remove all
``GET /metrics``             Prometheus text format
===========================  =================================================================

Bad input gets a 4xx with ``{"error": ..., "details": [...]}``; a handler bug
gets a 500 with a message, never a traceback and never a crash of the data
path, which runs in the same event loop but shares nothing with a request
here except the fault table.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import urllib.parse
from collections.abc import Callable
from typing import Any, cast

import httptools
from pydantic import ValidationError

from mlchaos.proxy import metrics
from mlchaos.proxy.faults import KINDS
from mlchaos.proxy.rules import Common, Rule, RuleError, TableFull, parse_rule
from mlchaos.proxy.stats import Stats
from mlchaos.proxy.table import FaultTable

log = logging.getLogger("mlchaos.proxy")
MAX_BODY = 1 << 20
MAX_HEAD = 64 << 10
"""Request line + headers of one control call (431 above): no call needs more than a few hundred bytes."""
IDLE = 60.0
"""A control connection silent this long is closed (slowloris on the control port)."""
MAX_QUEUED = 32
"""Pipelined calls waiting for their answer before the connection stops being read."""


class ApiError(Exception):
    def __init__(self, status: int, message: str, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.details = details


class Control:
    """Request handlers; independent of the transport so they are easy to test and reuse."""

    def __init__(
        self,
        table: FaultTable,
        mode: str,
        listen: str,
        upstream: tuple[str, int],
        token: str | None,
        stats: Callable[[], Stats],
        workers: int = 1,
    ) -> None:
        self.table = table
        self.mode = mode
        self.listen = listen
        self.upstream = upstream
        self.token = token
        self.stats = stats
        self.workers = workers

    def authorised(self, header: bytes | None) -> bool:
        if not self.token:
            return True
        expected = b"Bearer " + self.token.encode()
        return header is not None and hmac.compare_digest(header.strip(), expected)

    async def upstream_reachable(self) -> str | None:
        """None when a TCP connect to the upstream succeeds within 1 s, else the reason."""
        host, port = self.upstream
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
        except (TimeoutError, OSError) as exc:
            return f"upstream {host}:{port} unreachable: {getattr(exc, 'strerror', None) or exc or 'timeout'}"
        writer.close()
        return None

    async def handle(self, method: str, target: str, body: bytes) -> tuple[int, Any]:
        url = urllib.parse.urlsplit(target)
        query = urllib.parse.parse_qs(url.query)
        parts = [p for p in url.path.split("/") if p]
        match (method, parts):
            case ("GET", ["health"]):
                st = self.stats()
                return 200, {
                    "connections_active": st.connections_active, "upstream_idle": st.upstream_idle,
                    "requests_total": st.requests_total,
                    "ok": True, "mode": self.mode, "listen": self.listen,
                    "upstream": f"{self.upstream[0]}:{self.upstream[1]}", "workers": self.workers,
                    "faults": len(self.table.rules),
                }
            case ("GET", ["kinds"]):
                return 200, {
                    k: {"http_only": c.http_only, "directions": list(c.directions), "params": c.params_model.model_json_schema()}
                    for k, c in sorted(KINDS.items())
                }
            case ("GET", ["metrics"]):
                return 200, metrics.render(self.table, self.stats())
            case ("GET", ["faults"]):
                return 200, {"faults": [r.view() for r in self.table.rules]}
            case ("POST", ["faults", "validate"]):
                rule = self._parse(body)
                return 200, {"valid": True, "fault": rule.view() | {"seen": 0, "affected": 0}}
            case ("POST", ["faults"]):
                rule = self._parse(body)
                if query.get("dry_run", ["0"])[0] not in ("0", "false", ""):
                    return 200, {"valid": True, "fault": rule.view()}
                if query.get("force", ["0"])[0] in ("0", "false", ""):
                    reason = await self.upstream_reachable()
                    if reason is not None:
                        raise ApiError(424, reason + " (add ?force=1 to inject anyway)")
                try:
                    self.table.add(rule)
                except TableFull as exc:
                    raise ApiError(429, str(exc)) from None
                log.info("fault %s added: %s ttl=%.3fs", rule.id, rule.kind, rule.ttl)
                return 201, {"id": rule.id, "fault": rule.view()}
            case ("DELETE", ["faults"]):
                return 200, {"removed": self.table.clear()}
            case ("GET", ["faults", fid]):
                rule_obj = self.table.by_id.get(fid)
                if rule_obj is not None:
                    return 200, rule_obj.view() | {"state": "active"}
                if fid in self.table.retired:
                    return 200, self.table.retired[fid]
                raise ApiError(404, f"no fault with id {fid!r}")
            case ("POST", ["faults", fid, "renew"]):
                ttl = self._ttl(body)
                renewed = self.table.renew(fid, ttl)
                if renewed is None:
                    raise ApiError(404, f"no active fault with id {fid!r} (expired or removed)")
                return 200, renewed.view()
            case ("DELETE", ["faults", fid]):
                view = self.table.remove(fid)
                if view is None:
                    raise ApiError(404, f"no active fault with id {fid!r}")
                log.info("fault %s removed", fid)
                return 200, view
            case (_, ["health" | "kinds" | "metrics" | "faults", *_]):
                raise ApiError(405, f"method {method} not allowed on {url.path}")
        raise ApiError(404, f"no endpoint {url.path}; see GET /health, /faults, /kinds, /metrics")

    def _json(self, body: bytes) -> Any:
        if not body.strip():
            raise ApiError(400, "expected a JSON body")
        try:
            return json.loads(body, parse_constant=_no_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"body is not valid JSON: {exc}") from None
        except RecursionError:
            raise ApiError(400, "body is nested too deeply (no fault is more than a few levels deep)") from None

    def _parse(self, body: bytes) -> Rule:
        try:
            return parse_rule(self._json(body), self.mode)
        except RuleError as exc:
            raise ApiError(400, str(exc), exc.errors) from None

    def _ttl(self, body: bytes) -> float | None:
        if not body.strip():
            return None
        data = self._json(body)
        if not isinstance(data, dict) or set(data) - {"ttl"}:
            raise ApiError(400, 'renew takes {"ttl": "30s"} or an empty body')
        if "ttl" not in data:
            return None
        try:
            return Common.model_validate({"kind": "latency", "ttl": data["ttl"]}).ttl
        except ValidationError as exc:
            raise ApiError(400, f"bad ttl: {exc.errors()[0]['msg']}") from None
        except ArithmeticError as exc:  # a 401-digit number: not a ValueError, so not a ValidationError
            raise ApiError(400, f"bad ttl: out of range ({exc})") from None


class ControlProtocol(asyncio.Protocol):
    """HTTP/1.1 framing for :class:`Control` (keep-alive, one request at a time)."""

    def __init__(self, control: Control) -> None:
        self.control = control
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.auth: bytes | None = None
        self.body: list[bytes] = []
        self.size = 0
        self.keep_alive = True
        self.queue: asyncio.Queue[tuple[str, str, bytes, bytes | None, bool] | None] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.head: int | None = None
        """Bytes read since the current call began while its headers are incomplete (None: not in headers)."""
        self.paused = False
        self.idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        loop = asyncio.get_running_loop()
        self.task = loop.create_task(self._serve())
        self.idle = loop.call_later(IDLE, self.transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.idle is not None:
            self.idle.cancel()
        self.queue.put_nowait(None)

    def data_received(self, data: bytes) -> None:
        if self.idle is not None:
            self.idle.cancel()
            self.idle = asyncio.get_running_loop().call_later(IDLE, self.transport.close)  # type: ignore[union-attr]
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._write(400, {"error": f"malformed HTTP request: {exc}"}, False)
            if self.transport is not None:
                self.transport.close()
            return
        if self.head is not None:
            self.head += len(data)
            if self.head > MAX_HEAD and self.transport is not None:
                self._write(431, {"error": f"request headers exceed {MAX_HEAD} bytes"}, False)
                self.transport.close()

    def on_message_begin(self) -> None:
        self.url, self.auth, self.body, self.size = b"", None, [], 0
        self.head = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"authorization":
            self.auth = value

    def on_headers_complete(self) -> None:
        self.head = None
        self.keep_alive = self.parser.should_keep_alive()  # llhttp forgets it once the message completes

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size <= MAX_BODY:
            self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method().decode()
        body = b"" if self.size > MAX_BODY else b"".join(self.body)
        self.queue.put_nowait((method, self.url.decode("latin-1"), body, self.auth, self.keep_alive))
        if self.queue.qsize() >= MAX_QUEUED and not self.paused and self.transport is not None:
            self.paused = True  # a client pipelining calls faster than they are answered waits
            self.transport.pause_reading()

    async def _serve(self) -> None:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            if self.paused and self.queue.qsize() < MAX_QUEUED // 4 and self.transport is not None:
                self.paused = False
                self.transport.resume_reading()
            method, target, body, auth, keep = item
            try:
                if not self.control.authorised(auth):
                    raise ApiError(401, "missing or wrong bearer token (Authorization: Bearer <token>)")
                status, payload = await self.control.handle(method, target, body)
            except ApiError as exc:
                status, payload = exc.status, {"error": str(exc), **({"details": exc.details} if exc.details else {})}
            except Exception as exc:  # a bug in a handler must not take the proxy down
                log.exception("control API error")
                status, payload = 500, {"error": f"internal error: {type(exc).__name__}: {exc}"}
            self._write(status, payload, keep)
            if not keep and self.transport is not None:
                self.transport.close()
                return

    def _write(self, status: int, payload: Any, keep: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if isinstance(payload, str):
            body, ctype = payload.encode(), metrics.CONTENT_TYPE
        else:
            body, ctype = json.dumps(payload, indent=None, default=str).encode(), "application/json"
        head = (
            f"HTTP/1.1 {status} {_reason(status)}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: {'keep-alive' if keep else 'close'}\r\n\r\n"
        )
        self.transport.write(head.encode() + body)


def _no_constant(name: str) -> Any:
    """``json.loads`` hook: NaN and Infinity are not JSON, and no fault field means them."""
    raise ValueError(f"{name} is not a valid JSON number (non-finite numbers are refused)")


def _reason(status: int) -> str:
    import http

    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Status"
