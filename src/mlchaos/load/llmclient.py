"""The client pool for LLM APIs: every Server-Sent Event timestamped, every request judged in tokens.

It is :class:`mlchaos.load.client.ClientPool` (same keep-alive pool, same open-loop accounting: a
request's times run from its *intended* send time, and a stalled stream holds its own connection only,
never the next arrival) with a connection that parses the response body as SSE as it arrives.

Per request, the definitions of vLLM's serving benchmark (``vllm/benchmarks/lib/endpoint_request_func.py``
and ``calculate_metrics`` in ``vllm/benchmarks/serve.py``) and of the DistServe paper (Zhong et al., OSDI
2024), measured from the intended send time instead of the actual one (the open-loop rule of this package):

* **TTFT**: first *content* event (a non-empty ``delta.content`` or ``text``) − intended send time.  vLLM
  stamps the first chunk that has ``choices`` even when its content is empty (a role-only chunk); a user
  sees nothing then, so here it does not count.  A request that stalls or times out before any token is
  counted at its age then (a lower bound: the user waited at least that long), as a timed-out request is
  in the plain latency.
* **ITL**: the gap between two consecutive content events of a stream, every gap of every stream
  (including streams that later fail: a client saw them).  Events that arrived in one TCP read share one
  timestamp, as they do for any client.
* **TPOT**: (last token − first token) / (output tokens − 1), for completed streams with more than one
  token; vLLM's ``(latency − ttft) / (output_len − 1)`` with its latency ending at the last token chunk.
* **e2e**: end of the response − intended send time, for every request that ended, failed ones at their
  age (so a stall shows in the tail, as a timeout does in the latency).
* **output tokens**: ``usage.completion_tokens`` when the server sends it, else the content events.
* **completed**: a 2xx stream that ended with ``data: [DONE]`` and no error; non-streaming: a 2xx JSON
  answer without an ``error`` (TTFT = e2e there, the first token reaches the user with the last; no ITL).
  A server that answers a streaming request with JSON (not ``text/event-stream``) is judged the same way.
* **errors by kind**: ``status`` (HTTP ≥ 400), ``error_event`` (an in-band ``{"error": ...}`` event),
  ``malformed`` (an event whose data is not JSON), ``cut`` (the connection closed, or the body ended,
  without ``[DONE]``), ``stall`` (this client's ``stall_timeout`` between two ``data`` events, or before
  the first, fired; the connection is then dropped; SSE comments, e.g. keep-alive pings, are not
  progress: a server that pings while its generation loop is dead is stalled to its user),
  ``timeout`` (the whole-request timeout), ``connection``.
* **good** (goodput): completed and within every SLO given (ttft, tpot, e2e), vLLM's ``--goodput``.

Hot path: one ``orjson.loads`` per event (≈ 1 µs for a chunk) and a few attribute stores; the per-request
work is done once, at its end.
"""

from __future__ import annotations

import ssl as ssl_
from array import array
from typing import Any

import orjson

from mlchaos.load.client import ClientPool, Outcomes, _Conn, _mono

__all__ = ["LLM_KINDS", "LLMOutcomes", "LLMPool"]

LLM_KINDS = ("status", "error_event", "malformed", "cut", "stall", "timeout", "connection")
_INF = float("inf")


class LLMOutcomes(Outcomes):
    """The interval's token-level records, next to the plain ones (``latency`` is e2e for every end)."""

    __slots__ = ("completed", "done_marker", "e2e", "ended", "good", "itl", "kinds", "tokens", "tpot", "ttft")

    def __init__(self) -> None:
        super().__init__()
        self.e2e: array[float] = array("d")
        self.ttft: array[float] = array("d")
        self.itl: array[float] = array("d")
        self.tpot: array[float] = array("d")
        self.kinds: dict[str, int] = {}
        self.ended = 0
        self.completed = 0
        self.done_marker = 0
        self.good = 0
        self.tokens = 0


class _LLMConn(_Conn):
    """A connection whose response body is read as SSE events (or kept whole when not streaming)."""

    __slots__ = ("act_t", "buf", "done_marker", "err", "first_t", "head", "last_t", "now", "ntok", "raw", "sse",
                 "status", "usage")

    def __init__(self, pool: ClientPool) -> None:
        super().__init__(pool)
        self._reset()
        self.now = 0.0

    def _reset(self) -> None:
        self.buf = b""
        self.raw: list[bytes] = []
        self.err: str | None = None
        self.head = False
        self.status = 0
        self.first_t = 0.0
        self.last_t = 0.0
        self.act_t = 0.0
        self.ntok = 0
        self.usage = 0
        self.done_marker = False
        self.sse = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-type":
            self.sse = value.lower().startswith(b"text/event-stream")

    def data_received(self, data: bytes) -> None:
        self.now = _mono()  # one timestamp per read: the events in it reached the client together
        super().data_received(data)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self.head = True
        self.status = self.parser.get_status_code()
        self.act_t = self.now

    def on_body(self, body: bytes) -> None:
        if self.status >= 300:
            return
        pool: LLMPool = self.pool  # type: ignore[assignment]
        if not (pool.stream and self.sse):  # a JSON answer (asked for, or sent instead of a stream)
            self.raw.append(body)
            return
        buf = self.buf + body if self.buf else body
        cr = b""
        if b"\r" in buf:  # SSE ends lines with \n, \r\n or \r; a final \r may be half of a \r\n: kept for later
            if buf.endswith(b"\r"):
                buf, cr = buf[:-1], b"\r"
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        start = 0
        while (i := buf.find(b"\n\n", start)) >= 0:
            self._event(buf[start:i], pool)
            start = i + 2
        self.buf = buf[start:] + cr

    def _event(self, raw: bytes, pool: LLMPool) -> None:
        data = b""
        for line in raw.split(b"\n"):
            if line.startswith(b"data:"):
                data = line[5:].strip() if not data else data + b"\n" + line[5:].strip()
            elif line.startswith(b"event:") and line[6:].strip() == b"error":
                self.err = self.err or "error_event"
        if not data:
            return  # a comment (keep-alive ping) or an event without data
        now = self.now
        self.act_t = now
        if data == b"[DONE]":
            self.done_marker = True
            return
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            self.err = self.err or "malformed"
            return
        if not isinstance(obj, dict):
            self.err = self.err or "malformed"
            return
        if obj.get("error"):
            self.err = self.err or "error_event"
            return
        choices = obj.get("choices")
        if choices and isinstance(choices, list) and isinstance(choices[0], dict):
            c = choices[0]
            d = c.get("delta")
            content = d.get("content") if isinstance(d, dict) else c.get("text")
            if content:
                if self.ntok:
                    pool.out.itl.append(now - self.last_t)
                else:
                    self.first_t = now
                self.last_t = now
                self.ntok += 1
                if self.body is not None and isinstance(content, str):
                    self.body.append(content.encode())
        usage = obj.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            self.usage = usage["completion_tokens"]


class LLMPool(ClientPool):
    """A :class:`ClientPool` whose requests are LLM API calls, judged as described in the module docstring."""

    out: LLMOutcomes

    def __init__(
        self,
        host: str,
        port: int,
        requests: list[bytes],
        *,
        stream: bool = True,
        stall_timeout: float = 30.0,
        slo: dict[str, float | None] | None = None,
        timeout: float = 60.0,
        max_connections: int = 1024,
        sample_every: int = 0,
        max_samples: int = 50,
        ssl: ssl_.SSLContext | None = None,
    ) -> None:
        super().__init__(host, port, requests, timeout=timeout, max_connections=max_connections,
                         sample_every=sample_every, max_samples=max_samples, ssl=ssl)
        self.out = LLMOutcomes()
        self._conn_cls = _LLMConn
        self.stream = stream
        self.stall_timeout = stall_timeout
        slo = slo or {}
        self.slo_ttft = slo.get("ttft") or _INF
        self.slo_tpot = slo.get("tpot") or _INF
        self.slo_e2e = slo.get("e2e") or _INF

    def _write(self, conn: _Conn, intended: float, now: float | None = None) -> None:
        c: _LLMConn = conn  # type: ignore[assignment]
        c._reset()
        super()._write(conn, intended, now)
        c.act_t = c.sent_at

    def _kind(self, kind: str) -> None:
        kinds = self.out.kinds
        kinds[kind] = kinds.get(kind, 0) + 1

    def _completed(self, conn: _Conn, status: int, keep_alive: bool) -> None:
        if not conn.busy:
            return
        c: _LLMConn = conn  # type: ignore[assignment]
        now = _mono()
        out = self.out
        e2e = now - c.intended
        out.ended += 1
        out.e2e.append(e2e)
        kind: str | None = None
        ttft: float | None = None
        tokens = c.ntok
        tpot = 0.0
        if not 200 <= status < 300:
            kind = "status"
        elif self.stream and c.sse:
            if c.err:
                kind = c.err
            elif not c.done_marker:
                kind = "cut"
            if c.ntok:
                ttft = c.first_t - c.intended
            if c.usage:
                tokens = c.usage
            if kind is None and tokens > 1 and c.ntok:
                tpot = (c.last_t - c.first_t) / (tokens - 1)
                out.tpot.append(tpot)
        else:
            kind, tokens, text = _whole_answer(b"".join(c.raw))
            ttft = e2e
            if c.body is not None and text is not None:
                c.body = [text.encode()]
        if ttft is not None:
            out.ttft.append(ttft)
        out.tokens += tokens
        if kind is None:
            out.completed += 1
            if c.done_marker:
                out.done_marker += 1
            if (ttft is None or ttft <= self.slo_ttft) and tpot <= self.slo_tpot and e2e <= self.slo_e2e:
                out.good += 1
        else:
            self._kind(kind)
            c.body = None  # only completed answers are sampled (output-validity judges answers, not debris)
        c.raw = []
        super()._completed(conn, status, keep_alive)

    def _end_failed(self, c: _LLMConn, kind: str) -> None:
        """A request that ended without an answer: its kind, its e2e and (censored) TTFT at its age."""
        now = _mono()
        out = self.out
        out.ended += 1
        out.tokens += c.ntok
        self._kind(kind)
        if c.ntok:
            out.ttft.append(c.first_t - c.intended)
        elif kind in ("stall", "timeout"):
            out.ttft.append(now - c.intended)
        out.e2e.append(now - c.intended)
        c.body = None

    def _failed(self, conn: _Conn, kind: str) -> None:
        if conn.busy:
            c: _LLMConn = conn  # type: ignore[assignment]
            self._end_failed(c, kind if kind in ("timeout", "stall") else ("cut" if c.head else "connection"))
        super()._failed(conn, "timeout" if kind == "stall" else kind)

    def _lost(self, conn: _Conn) -> None:
        c: _LLMConn = conn  # type: ignore[assignment]
        if conn.busy:  # a close-delimited body that ended cleanly was completed before this (busy is off)
            self._end_failed(c, "cut" if c.head else "connection")
        super()._lost(conn)

    def sweep(self) -> None:
        """Fire the stall timeout of streams silent for ``stall_timeout``, then the base request timeout."""
        now = _mono()
        limit = now - self.stall_timeout
        for conn in [c for c in self.busy if c.act_t < limit]:  # type: ignore[attr-defined]
            self._failed(conn, "stall")
        out = self.out
        old = now - self.timeout
        for t in self.backlog:  # the base drops these as timeouts: they never got a connection nor a token
            if t >= old:
                break
            out.ended += 1
            self._kind("timeout")
            out.ttft.append(now - t)
            out.e2e.append(now - t)
        super().sweep()

    def swap(self) -> LLMOutcomes:
        """The interval's records; failed connects (counted by the base pool only) become 'connection' ends."""
        out, self.out = self.out, LLMOutcomes()
        kinds = out.kinds
        unseen = out.conn_errors - kinds.get("cut", 0) - kinds.get("connection", 0)
        if unseen > 0:
            kinds["connection"] = kinds.get("connection", 0) + unseen
            out.ended += unseen
        return out


def _whole_answer(body: bytes) -> tuple[str | None, int, str | None]:
    """(error kind or None, output tokens, answer text) of a non-streaming answer."""
    try:
        obj: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "malformed", 0, None
    if not isinstance(obj, dict):
        return "malformed", 0, None
    if obj.get("error"):
        return "error_event", 0, None
    text = None
    choices = obj.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        c = choices[0]
        msg = c.get("message")
        text = msg.get("content") if isinstance(msg, dict) else c.get("text")
    usage = obj.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
        tokens = usage["completion_tokens"]
    else:
        tokens = len(text.split()) if isinstance(text, str) else 0
    return None, tokens, text if isinstance(text, str) else None
