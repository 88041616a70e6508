"""An upstream that closes idle keep-alive connections: the proxy retries, it does not answer 502.

Servers close a keep-alive connection after an idle time (Python's ``ThreadingHTTPServer`` with a
handler ``timeout``, nginx ``keepalive_timeout``).  A request the proxy writes on such a pooled
connection just as the server gives up on it meets EOF or RST before any response byte.  The
upstream below makes that race deterministic: it notices its idle timer only when it next wakes,
so a request arriving after ``IDLE`` seconds of silence is met by the close, never answered (as
when the timer fires while the request is in flight).  Connections idle longer than ``HARD_IDLE``
are closed by the timer itself, the ordinary case the pool must skip.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import re
import select
import socket
import threading
import time
from collections.abc import Iterator

from mlchaos.proxy import ProxyHandle, spawn
from mlchaos.proxy.limits import Limits

IDLE = 0.02
HARD_IDLE = 0.3


class ClosingUpstream:
    """A threaded HTTP/1.1 upstream on 127.0.0.1 that closes idle keep-alive connections.

    ``mode``: ``"idle"`` (close a connection whose request comes after ``IDLE`` s of silence),
    ``"drop"`` (close every connection on its first request, never answering), ``"once"``
    (answer the very first request it gets, then close every connection on its next request).
    The close comes as soon as a request's head is in, or with ``late`` once its body is in too.
    """

    def __init__(self, mode: str = "idle", late: bool = False) -> None:
        self.mode = mode
        self.late = late
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.answered = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._stop = False
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        last: float | None = None  # when the last response went out on this connection
        with contextlib.suppress(OSError), conn:
            while True:
                ready, _, _ = select.select([conn], [], [], HARD_IDLE)
                if not ready:
                    return  # the idle timer fired by itself
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    head, _, rest = buf.partition(b"\r\n\r\n")
                    m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                    n = int(m.group(1)) if m else 0
                    if (len(rest) >= n or not self.late) and self._close_now(last):
                        with self._lock:
                            self.dropped += 1
                        return
                    if len(rest) < n:
                        break
                    body, buf = rest[:n], rest[n:]
                    with self._lock:
                        self.answered += 1
                    out = b"echo:" + body
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(out), out))
                    last = time.monotonic()

    def _close_now(self, last: float | None) -> bool:
        if self.mode == "drop":
            return True
        if self.mode == "once":
            return self.answered > 0
        return last is not None and time.monotonic() - last > IDLE

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        for c in self._conns:
            with contextlib.suppress(OSError):
                c.close()


@contextlib.contextmanager
def proxied(
    mode: str, limits: Limits | None = None, late: bool = False
) -> Iterator[tuple[ClosingUpstream, ProxyHandle]]:
    up = ClosingUpstream(mode, late)
    h = spawn(upstream=f"127.0.0.1:{up.port}", mode="http", limits=limits)
    try:
        yield up, h
    finally:
        h.stop()
        up.close()


def metric(h: ProxyHandle, name: str) -> float:
    for line in h.client.metrics().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


def test_reused_connection_closed_by_upstream_is_retried_not_502() -> None:
    rng = random.Random(7)
    statuses: list[int] = []
    with proxied("idle") as (up, h):
        conn: http.client.HTTPConnection | None = None
        for i in range(300):
            if conn is None or i % 25 == 0:  # new client connections take pooled upstream connections
                if conn is not None:
                    conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=10)
            body = f"req-{i}".encode() if i % 2 else b""
            conn.request("POST" if body else "GET", "/x", body=body)
            resp = conn.getresponse()
            data = resp.read()
            statuses.append(resp.status)
            assert resp.status != 200 or data == b"echo:" + body, (i, data)
            if rng.random() < 0.4:
                time.sleep(IDLE * 1.5)  # long enough for the upstream to close this connection when it wakes
        assert conn is not None
        conn.close()
        retries = metric(h, "mlchaos_proxy_upstream_retries_total")
    assert statuses.count(502) == 0, f"{statuses.count(502)} spurious 502 of {len(statuses)}"
    assert statuses == [200] * 300
    assert up.dropped > 20  # the race really happened, many times
    assert retries == up.dropped


def test_failure_on_fresh_connection_is_still_502() -> None:
    with proxied("drop") as (_, h):
        conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=10)
        conn.request("GET", "/x")
        resp = conn.getresponse()
        assert resp.status == 502
        assert b"closed the connection before responding" in resp.read()
        conn.close()
        assert metric(h, "mlchaos_proxy_upstream_retries_total") == 0


def test_retry_happens_once() -> None:
    """The retry's fresh connection failing too is the upstream's real failure: 502."""
    with proxied("once") as (up, h):
        conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=10)
        conn.request("GET", "/x")
        assert conn.getresponse().read() == b"echo:"
        conn.request("GET", "/x")
        resp = conn.getresponse()
        assert resp.status == 502
        conn.close()
        assert metric(h, "mlchaos_proxy_upstream_retries_total") == 1
        assert up.dropped == 2


def _two_part_post(h: ProxyHandle) -> bytes:
    """A keep-alive GET, a pause the upstream takes as idle, then a POST whose body comes 0.2 s after its head."""
    s = socket.create_connection(("127.0.0.1", h.port), timeout=10)
    data = b""
    with s:
        s.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        assert s.recv(65536).endswith(b"echo:")
        time.sleep(IDLE * 3)
        s.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nabc")
        time.sleep(0.2)  # the head went upstream, met the close, and the retry is under way
        with contextlib.suppress(OSError):
            s.sendall(b"def")
        with contextlib.suppress(OSError):
            while not data.endswith(b"echo:abcdef") and (chunk := s.recv(65536)):
                data += chunk
    return data


def test_body_still_arriving_streams_on_to_the_retry() -> None:
    with proxied("idle") as (up, h):
        data = _two_part_post(h)
        assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"echo:abcdef"), data
        assert metric(h, "mlchaos_proxy_upstream_retries_total") == 1
        assert up.dropped == 1


def test_streamed_body_over_the_buffer_limit_is_not_replayed() -> None:
    """No copy is kept of a streamed body beyond --max-body-buffer: the loss reaches the client."""
    with proxied("idle", Limits(max_body_buffer=8), late=True) as (up, h):
        data = _two_part_post(h)
        assert b" 200 " not in data
        assert metric(h, "mlchaos_proxy_upstream_retries_total") == 0
        assert up.dropped == 1


def test_streamed_body_is_replayed_whole() -> None:
    """The upstream closes once the whole streamed body is in: the retry carries head and body."""
    with proxied("idle", late=True) as (up, h):
        data = _two_part_post(h)
        assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"echo:abcdef"), data
        assert metric(h, "mlchaos_proxy_upstream_retries_total") == 1
        assert up.dropped == 1
