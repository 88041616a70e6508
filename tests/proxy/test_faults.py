"""Every fault kind on real sockets, both modes, plus the HTTP data path's edge cases."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from mlchaos.proxy import ProxyHandle

from .conftest import request, run
from .upstream import DOC


def connect(h: ProxyHandle, timeout: float = 5.0) -> socket.socket:
    host, port = h.listen_addr.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout)


def recv_all(s: socket.socket) -> bytes:
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return out
        out += chunk


GET = b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n"
GET_CLOSE = b"GET /json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


# -- HTTP mode -----------------------------------------------------------------------------------------

def test_http_timeout_holds_and_close_after(http_proxy: ProxyHandle) -> None:
    http_proxy.client.add({"kind": "timeout"}, ttl=30)
    with connect(http_proxy, timeout=0.5) as s:
        s.sendall(GET)
        with pytest.raises(TimeoutError):
            s.recv(100)
    http_proxy.client.clear()
    http_proxy.client.add({"kind": "timeout", "close_after": "200ms"}, ttl=30)
    with connect(http_proxy) as s:
        t0 = time.monotonic()
        s.sendall(GET)
        assert s.recv(100) == b""
        assert time.monotonic() - t0 >= 0.2


@pytest.mark.parametrize("kind", ["reset", "refuse"])
def test_http_reset_and_refuse_give_econnreset(http_proxy: ProxyHandle, kind: str) -> None:
    http_proxy.client.add({"kind": kind}, ttl=30)
    with connect(http_proxy) as s:
        s.sendall(GET)
        with pytest.raises(ConnectionResetError):
            s.recv(100)


def test_http_abort_truncates_the_body(http_proxy: ProxyHandle) -> None:
    http_proxy.client.add({"kind": "abort", "fraction": 0.5}, ttl=30)
    with connect(http_proxy) as s:
        s.sendall(GET)
        data = b""
        with pytest.raises(ConnectionResetError):
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200") and body == DOC[: len(DOC) // 2]


def test_http_slow_close(http_proxy: ProxyHandle) -> None:
    http_proxy.client.add({"kind": "slow-close", "delay": "300ms"}, ttl=30)
    with connect(http_proxy) as s:
        t0 = time.monotonic()
        s.sendall(GET)
        data = recv_all(s)
        assert data.endswith(DOC) and time.monotonic() - t0 >= 0.3


def test_http_bandwidth(http_proxy: ProxyHandle) -> None:
    http_proxy.client.add({"kind": "bandwidth", "rate": "50KB"}, ttl=30)
    (t, status, raw), = run(request(http_proxy.listen_addr, "/big?n=25000"))
    assert status == 200 and raw.endswith(b"x" * 25000)
    assert 0.45 <= t <= 1.5  # 25 kB at 50 kB/s


@pytest.mark.exclusive  # an upper bound on latency: other tests' load would be in it
def test_http_response_latency_and_jitter_bounds(http_proxy: ProxyHandle) -> None:
    http_proxy.client.add({"kind": "latency", "delay": "50ms", "jitter": "20ms", "direction": "response",
                           "seed": 1}, ttl=30)
    times = [t for t, _, _ in run(request(http_proxy.listen_addr, n=20))]
    assert min(times) >= 0.030 and max(times) < 0.2
    assert max(times) - min(times) > 0.005  # jitter actually varies


def test_http_matchers(http_proxy: ProxyHandle) -> None:
    http_proxy.client.add({"kind": "http-error", "status": 503,
                           "match": {"method": "POST", "path": "/echo*", "headers": {"x-tenant": "blue"}}}, ttl=30)
    hit = run(request(http_proxy.listen_addr, "/echo", "POST", b"{}", {"X-Tenant": "blue"}))
    miss_header = run(request(http_proxy.listen_addr, "/echo", "POST", b"{}", {"X-Tenant": "red"}))
    miss_method = run(request(http_proxy.listen_addr, "/echo", "GET", b"", {"X-Tenant": "blue"}))
    miss_path = run(request(http_proxy.listen_addr, "/json", "POST", b"{}", {"X-Tenant": "blue"}))
    assert [r[0][1] for r in (hit, miss_header, miss_method, miss_path)] == [503, 200, 200, 200]


def test_http_pipelined_requests_and_bodies(http_proxy: ProxyHandle) -> None:
    body = b'{"x": 1}'
    post = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
    chunked = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    with connect(http_proxy) as s:
        s.sendall(post + GET + chunked + GET_CLOSE)  # four requests in one write
        data = recv_all(s)
    assert data.count(b"HTTP/1.1 200 OK") == 4
    assert data.index(body) < data.index(DOC) < data.index(b"abcde") < data.rindex(DOC)


def read_response(s: socket.socket) -> tuple[int, bytes]:
    """(status, body) of one Content-Length response on a keep-alive socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(ln.split(b":")[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")))
    while len(body) < length:
        chunk = s.recv(65536)
        assert chunk
        body += chunk
    assert len(body) == length, "bytes beyond the response: the exchange is out of sync"
    return int(head.split()[1]), body


def test_http_relay_path_edges_on_one_connection(http_proxy: ProxyHandle) -> None:
    """With no fault active, whole single requests take the relay path; every other read must still work."""
    body = b'{"x": 1}'
    post = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
    with connect(http_proxy) as s:
        s.sendall(GET)
        assert read_response(s) == (200, DOC)
        s.sendall(post)  # body in the same read
        assert read_response(s) == (200, body)
        s.sendall(post[:20])  # one request over two reads: the full parser takes over mid-request
        time.sleep(0.05)
        s.sendall(post[20:])
        assert read_response(s) == (200, body)
        s.sendall(GET + GET[:10])  # one and a bit: the bit must not be lost
        assert read_response(s) == (200, DOC)
        time.sleep(0.05)
        s.sendall(GET[10:])
        assert read_response(s) == (200, DOC)
        fid = http_proxy.client.add({"kind": "http-error", "status": 503}, ttl=30)
        s.sendall(GET)  # a fault added between requests applies to the next one on the same connection
        assert read_response(s)[0] == 503
        http_proxy.client.remove(fid)
        s.sendall(GET)
        assert read_response(s) == (200, DOC)
        fid = http_proxy.client.add({"kind": "http-error", "status": 503, "match": {"headers": {"x-t": "b"}}}, ttl=30)
        s.sendall(b"GET /json HTTP/1.1\r\nHost: x\r\nX-T: b\r\n\r\n")  # a matcher needs the full parser
        assert read_response(s)[0] == 503
        s.sendall(GET)
        assert read_response(s) == (200, DOC)
        http_proxy.client.remove(fid)
        s.sendall(b"HEAD /json HTTP/1.1\r\nHost: x\r\n\r\n")  # no body follows a HEAD response
        head = s.recv(65536)
        assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n")
        s.sendall(GET)
        assert read_response(s) == (200, DOC)
    with connect(http_proxy) as s:
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n")
        assert recv_all(s).startswith(b"HTTP/1.1 501")
    with connect(http_proxy) as s:
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert recv_all(s).startswith(b"HTTP/1.1 400")


@pytest.mark.parametrize("fault", [None, {"kind": "latency", "delay": "20ms"},
                                   {"kind": "json-corrupt", "fields": ["x"]}])
def test_http_expect_100_continue(http_proxy: ProxyHandle, fault: dict | None) -> None:
    """curl and many Java clients send large bodies only after '100 Continue': the interim answer must reach
    the client at once, and the final response must still end the exchange (also when a fault buffers it)."""
    if fault:
        http_proxy.client.add(fault, ttl=30)
    body = b'{"x": 1, "y": 2}'
    with connect(http_proxy) as s:
        for _ in range(2):  # and the connection stays usable
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n"
                      % len(body))
            interim = b""
            while not interim.endswith(b"\r\n\r\n"):
                interim += s.recv(1)
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            s.sendall(body)
            status, got = read_response(s)
            assert status == 200
            assert got == (b'{"x": null, "y": 2}' if fault and fault["kind"] == "json-corrupt" else body)


@pytest.mark.parametrize("mode", ["http", "tcp"])
@pytest.mark.parametrize("fault", [None, {"kind": "latency", "delay": "30ms"}])
def test_half_closed_request_still_gets_its_answer(http_proxy: ProxyHandle, tcp_proxy: ProxyHandle, mode: str,
                                                   fault: dict | None) -> None:
    """`nc -N` and HTTP/1.0 tools shut their sending side after the request; the answer must still arrive.

    On uvloop the client's bytes and EOF can arrive before the upstream is dialled, and the EOF again
    after: the TCP path once closed both sides on that second EOF and lost the answer."""
    h = http_proxy if mode == "http" else tcp_proxy
    if fault:
        h.client.add(fault, ttl=30)
    for _ in range(3):
        with connect(h) as s:
            s.sendall(b"GET /json HTTP/1.0\r\n\r\n")
            s.shutdown(socket.SHUT_WR)
            data = recv_all(s)
        assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(DOC)


@pytest.mark.parametrize("mode", ["http", "tcp"])
def test_half_close_of_a_held_request_closes_it(http_proxy: ProxyHandle, tcp_proxy: ProxyHandle, mode: str) -> None:
    """A timeout fault never answers, so a client that gives up (FIN) must not leave its connection behind."""
    h = http_proxy if mode == "http" else tcp_proxy
    h.client.add({"kind": "timeout"}, ttl=30)
    with connect(h, timeout=2) as s:
        s.sendall(GET)
        s.shutdown(socket.SHUT_WR)
        assert s.recv(100) == b""


def test_http_large_upload_streams(http_proxy: ProxyHandle) -> None:
    body = b"y" * 300_000
    (_, status, raw), = run(request(http_proxy.listen_addr, "/echo", "POST", body))
    assert status == 200 and raw.endswith(body)


def test_http_head(http_proxy: ProxyHandle) -> None:
    res = run(request(http_proxy.listen_addr, "/json", "HEAD", n=3))
    assert [st for _, st, _ in res] == [200, 200, 200]


def test_http_combined_latency_and_corruption(http_proxy: ProxyHandle) -> None:
    http_proxy.client.add({"kind": "latency", "delay": "100ms"}, ttl=30)
    http_proxy.client.add({"kind": "json-corrupt", "fields": ["amount"]}, ttl=30)
    (t, _, raw), = run(request(http_proxy.listen_addr))
    assert t >= 0.1 and b'"amount": null' in raw


# -- TCP mode ------------------------------------------------------------------------------------------

def test_tcp_passthrough_and_latency(tcp_proxy: ProxyHandle) -> None:
    (_t0, st, raw), = run(request(tcp_proxy.listen_addr))
    assert st == 200 and raw.endswith(DOC)
    tcp_proxy.client.add({"kind": "latency", "delay": "100ms", "direction": "both"}, ttl=30)
    times = [t for t, _, _ in run(request(tcp_proxy.listen_addr, n=3))]
    assert all(t >= 0.2 for t in times)


@pytest.mark.parametrize("kind", ["reset", "refuse"])
def test_tcp_reset_refuse(tcp_proxy: ProxyHandle, kind: str) -> None:
    tcp_proxy.client.add({"kind": kind}, ttl=30)
    with pytest.raises((ConnectionResetError, BrokenPipeError)), connect(tcp_proxy) as s:
        # refuse resets right after accept (even connect() may already see it); reset on the first byte
        s.sendall(GET)
        time.sleep(0.05)
        s.sendall(GET)
        s.recv(100)


def test_tcp_timeout_then_lease_lapse_restores_the_connection(tcp_proxy: ProxyHandle) -> None:
    tcp_proxy.client.add({"kind": "timeout"}, ttl=0.3)
    with connect(tcp_proxy, timeout=0.2) as s:
        s.sendall(GET)
        with pytest.raises(TimeoutError):
            s.recv(100)
        time.sleep(0.3)  # the lease lapsed: the same connection now passes through
        s.settimeout(5)
        s.sendall(GET)
        assert s.recv(100).startswith(b"HTTP/1.1 200")


def test_tcp_bandwidth_and_slow_close(tcp_proxy: ProxyHandle) -> None:
    tcp_proxy.client.add({"kind": "bandwidth", "rate": "50KB"}, ttl=30)
    (t, st, _), = run(request(tcp_proxy.listen_addr, "/big?n=25000"))
    assert st == 200 and 0.45 <= t <= 1.5
    tcp_proxy.client.clear()
    tcp_proxy.client.add({"kind": "slow-close", "delay": "300ms"}, ttl=30)
    with connect(tcp_proxy) as s:
        t0 = time.monotonic()
        s.sendall(GET_CLOSE)
        data = recv_all(s)
    assert data.endswith(DOC) and time.monotonic() - t0 >= 0.3


def test_tcp_probability_is_per_connection(tcp_proxy: ProxyHandle) -> None:
    fid = tcp_proxy.client.add({"kind": "latency", "delay": "0ms", "probability": "50%", "seed": 7}, ttl=30)

    async def go() -> None:
        await asyncio.gather(*(request(tcp_proxy.listen_addr, n=3) for _ in range(40)))

    run(go())
    st = tcp_proxy.client.stats(fid)
    assert st["seen"] == 40 and 5 <= st["affected"] <= 35
