"""Hostile clients on real sockets (issue #17): nothing crashes, hangs, leaks or poisons the next client.

Each test attacks a real proxy process the way the issue's adversary did (slowloris, an endless
header, clients that vanish mid-request, broken bodies in front of a pooled upstream, response
splitting through fault headers, absurd control API input, a name that only looks like loopback)
and then checks that the proxy still serves a normal client and gave back what the attacker took.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from mlchaos.proxy import ProxyHandle, SpawnError, spawn
from mlchaos.proxy.limits import Limits
from mlchaos.proxy.sockets import is_loopback

from .conftest import fd_count, request, run
from .test_control import raw_call

LIMITS = Limits(header_timeout=1.0, idle_timeout=1.5, max_faults=20)


@pytest.fixture(scope="module")
def proxy(upstream: str) -> Iterator[ProxyHandle]:
    """An HTTP proxy with short timeouts (the defaults are 10 s and 300 s) and a small fault cap."""
    h = spawn(upstream=upstream, mode="http", limits=LIMITS)
    yield h
    h.stop()


@pytest.fixture(autouse=True)
def _no_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "proxy" in request.fixturenames:
        request.getfixturevalue("proxy").client.clear()


def connect(h: ProxyHandle) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", h.port), timeout=10)
    return s


def read_all(s: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything until the proxy closes (or ``timeout``)."""
    s.settimeout(timeout)
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return out


def served(h: ProxyHandle, n: int = 5) -> int:
    """How many of ``n`` fresh, ordinary clients get their 200 within 2 s each."""
    ok = 0
    for _ in range(n):
        try:
            (_, status, _), = run(request(h.listen_addr, "/json", timeout=2.0))
            ok += status == 200
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            pass
    return ok


def close_wait(pid: int) -> int:
    return sum(c.status == psutil.CONN_CLOSE_WAIT for c in psutil.Process(pid).net_connections(kind="tcp"))


def active(h: ProxyHandle) -> int:
    return int(h.client.health()["connections_active"])


def wait_until(cond, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return bool(cond())


# -- response splitting through fault headers ----------------------------------------------------

@pytest.mark.parametrize("fault", [
    {"kind": "http-error", "headers": {"X-A": "a\r\nSet-Cookie: evil=1"}},
    {"kind": "http-error", "headers": {"X-A": "a\nb"}},
    {"kind": "http-error", "headers": {"X-A": "a\x00b"}},
    {"kind": "http-error", "headers": {"X-A\r\nSet-Cookie": "x"}},
    {"kind": "http-error", "headers": {"Content-Length": "0"}},
    {"kind": "http-error", "content_type": "text/plain\r\n\r\nHTTP/1.1 200 OK"},
])
def test_crlf_and_control_chars_in_fault_headers_are_refused(proxy: ProxyHandle, fault: dict) -> None:
    code, payload = raw_call(proxy, "POST", "/faults?force=1", json.dumps(fault).encode())
    assert code == 400, payload
    assert payload["details"][0]["field"] in ("headers", "content_type")
    assert proxy.client.list() == []


def test_valid_fault_headers_still_reach_the_client(proxy: ProxyHandle) -> None:
    proxy.client.add({"kind": "http-error", "status": 429, "headers": {"Retry-After": "1", "X-Why": "chaos\ttest"}},
                     ttl=5)
    (_, status, raw), = run(request(proxy.listen_addr))
    assert status == 429 and b"\r\nRetry-After: 1\r\n" in raw and b"X-Why: chaos\ttest\r\n" in raw


def test_experiment_side_refuses_crlf_with_a_position(tmp_path: Path) -> None:
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        "title: t\ntarget: {platform: process, command: [python, -c, pass], url: 'http://127.0.0.1:1'}\n"
        "method:\n"
        "  - fault: http-error\n"
        "    control: http://127.0.0.1:1\n"
        "    headers:\n"
        '      X-Evil: "a\\r\\nSet-Cookie: x=1"\n'
    )
    out = subprocess.run([sys.executable, "-m", "mlchaos", "validate", str(exp)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    assert f"{exp}:7:" in out.stderr and "response splitting" in out.stderr, out.stderr


# -- the control API's address and token ---------------------------------------------------------

def test_loopback_check_resolves_names_not_prefixes() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    for host in ("127.attacker.example", "127.0.0.1.example.invalid", "0.0.0.0", "10.0.0.1", ""):
        assert not is_loopback(host), host
    with pytest.raises(SpawnError, match="beyond loopback"):
        spawn(upstream="127.0.0.1:9", control="127.attacker.example:0")


def test_token_never_travels_in_argv_and_comes_from_a_0600_file(tmp_path: Path) -> None:
    with spawn(upstream="127.0.0.1:9", token="s3cret-token") as h:
        cmdline = Path(f"/proc/{h.pid}/cmdline").read_bytes()
        assert b"s3cret-token" not in cmdline
        assert raw_call(h, "GET", "/faults")[0] == 401
        assert h.client.list() == []
    tok = tmp_path / "token"
    tok.write_text("from-a-file\n")
    tok.chmod(0o644)
    cmd = [sys.executable, "-m", "mlchaos.proxy", "--upstream", "127.0.0.1:9", "--token-file", str(tok)]
    env = {k: v for k, v in os.environ.items() if k != "MLCHAOS_PROXY_TOKEN"}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env)
    assert out.returncode == 2 and "chmod 600" in out.stderr
    tok.chmod(stat.S_IRUSR | stat.S_IWUSR)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        from mlchaos.proxy.client import ProxyClient, ProxyError

        with pytest.raises(ProxyError) as no:
            ProxyClient(info["control"]).list()
        assert no.value.status == 401
        assert ProxyClient(info["control"], token="from-a-file").list() == []
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


# -- header limits and timeouts ------------------------------------------------------------------

def test_endless_header_gets_431_without_growing_the_proxy(proxy: ProxyHandle) -> None:
    rss0 = psutil.Process(proxy.pid).memory_info().rss
    cpu0 = sum(psutil.Process(proxy.pid).cpu_times()[:2])
    s = connect(proxy)
    s.sendall(b"GET /json HTTP/1.1\r\nHost: x\r\nX-Endless: ")
    sent, t0 = 0, time.monotonic()
    try:
        while sent < 16 << 20:
            s.sendall(b"a" * 65536)
            sent += 65536
    except (BrokenPipeError, ConnectionResetError):
        pass  # closed by the proxy after its 431: what we want
    data = read_all(s, 5)
    s.close()
    assert data.startswith(b"HTTP/1.1 431 "), data[:100]
    assert sent < 16 << 20 or time.monotonic() - t0 < 10
    assert psutil.Process(proxy.pid).memory_info().rss - rss0 < 8 << 20
    assert sum(psutil.Process(proxy.pid).cpu_times()[:2]) - cpu0 < 2.0
    assert served(proxy) == 5


def test_too_many_header_lines_get_431(proxy: ProxyHandle) -> None:
    s = connect(proxy)
    s.sendall(b"GET /json HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 1500 + b"\r\n")
    data = read_all(s, 5)
    s.close()
    assert data.startswith(b"HTTP/1.1 431 ") and b"header lines" in data
    # the same request whole in one read (the relay path) is refused too
    s = connect(proxy)
    s.sendall(b"GET /json HTTP/1.1\r\nHost: x\r\n" + b"X:b\r\n" * 1200 + b"\r\n")
    assert read_all(s, 5).startswith(b"HTTP/1.1 431 ")
    s.close()
    assert served(proxy, 2) == 2


def test_slowloris_connections_are_closed_after_the_header_timeout(proxy: ProxyHandle) -> None:
    n = 500

    async def loris() -> list[float | None]:
        t0 = time.monotonic()

        async def one() -> float | None:
            try:
                r, w = await asyncio.open_connection("127.0.0.1", proxy.port)
            except OSError:
                return None
            w.write(b"GET /json HTTP/1.1\r\nHost: x\r\n")
            try:
                for _ in range(40):  # a header line every 0.2 s, never the blank line
                    try:
                        data = await asyncio.wait_for(r.read(4096), 0.2)
                    except TimeoutError:
                        if w.is_closing():
                            return time.monotonic() - t0
                        w.write(b"X-Slow: 1\r\n")
                        continue
                    return time.monotonic() - t0 if data == b"" or data.startswith(b"HTTP/1.1 408 ") else None
                return None
            except (ConnectionError, RuntimeError):  # uvloop: a write raced the proxy's close
                return time.monotonic() - t0
            finally:
                w.close()

        return await asyncio.gather(*(one() for _ in range(n)))

    closed = run(loris())
    assert sum(t is not None for t in closed) == n
    assert max(t for t in closed if t is not None) < 1.0 + 0.5 + 3.0  # timeout + sweep tick + a busy host
    assert wait_until(lambda: active(proxy) == 0)
    assert served(proxy) == 5


def test_idle_keep_alive_connection_is_closed(proxy: ProxyHandle) -> None:
    s = connect(proxy)
    s.sendall(b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n")
    t0 = time.monotonic()
    data = read_all(s, 6)
    s.close()
    assert data.startswith(b"HTTP/1.1 200 ")
    assert 1.5 <= time.monotonic() - t0 < 1.5 + 0.5 + 2.0


def test_clients_closing_mid_headers_leave_no_close_wait(proxy: ProxyHandle) -> None:
    base = fd_count(proxy.pid)
    socks = [connect(proxy) for _ in range(100)]
    for s in socks:
        s.sendall(b"GET /json HTTP/1.1\r\nHost: x\r\nX-Half: ")
    time.sleep(0.2)
    for s in socks:
        s.close()
    gone = time.monotonic()
    assert wait_until(lambda: close_wait(proxy.pid) == 0, 1.0), close_wait(proxy.pid)
    assert time.monotonic() - gone <= 1.0
    assert wait_until(lambda: fd_count(proxy.pid) <= base, 1.0)


def test_connection_cap_answers_503(upstream: str) -> None:
    with spawn(upstream=upstream, limits=Limits(max_connections=5)) as h:
        held = [connect(h) for _ in range(5)]
        for s in held:
            s.sendall(b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
        extra = connect(h)
        assert read_all(extra, 5).startswith(b"HTTP/1.1 503 ")
        extra.close()
        for s in held:
            s.close()
        assert wait_until(lambda: active(h) == 0)
        assert served(h, 2) == 2
        assert "mlchaos_proxy_connections_refused_total 1" in h.client.metrics()


def test_body_held_by_a_fault_is_limited(upstream: str) -> None:
    with spawn(upstream=upstream, limits=Limits(max_body_buffer=100_000)) as h:
        h.client.add({"kind": "latency", "delay": "2s"}, ttl=10)
        s = connect(h)
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
        with contextlib.suppress(OSError):  # the proxy may answer and close while we still send
            s.sendall(b"x" * 200_000)
        data = read_all(s, 5)  # the 413, or a reset when our unread bytes reached its closed socket
        s.close()
        assert data.startswith(b"HTTP/1.1 413 ") or data == b""
        assert "mlchaos_proxy_bad_requests_total 1" in h.client.metrics()
        # the whole request at once: the body completes in the read that breaks the limit
        s = connect(h)
        with contextlib.suppress(OSError):
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 150000\r\n\r\n" + b"y" * 150_000)
        data = read_all(s, 5)
        s.close()
        assert data.startswith(b"HTTP/1.1 413 ") or data == b""
        assert "mlchaos_proxy_bad_requests_total 2" in h.client.metrics()
        h.client.clear()
        assert served(h, 2) == 2


# -- a broken exchange never poisons the upstream pool -------------------------------------------

SHAPES = {
    "short body": b"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789",
    "chunked without last chunk": b"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    "expect 100-continue, no body": b"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                                    b"Expect: 100-continue\r\n\r\n",
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("path", ["/echo", "/early"])
@pytest.mark.parametrize("ending", ["close", "stall"])
def test_broken_request_does_not_poison_the_next_client(proxy: ProxyHandle, shape: str, path: str,
                                                         ending: str) -> None:
    """``/early`` answers before the body (the upstream then still expects it); ``/echo`` waits for it.
    ``close``: the client leaves; ``stall``: it stays silent until the proxy's body timeout."""
    base = fd_count(proxy.pid)
    s = connect(proxy)
    s.sendall(SHAPES[shape].replace(b"{path}", path.encode()))
    time.sleep(0.3)
    if ending == "close":
        s.close()
    else:
        read_all(s, 4)  # the proxy closes it after --idle-timeout (1.5 s here)
        s.close()
    assert served(proxy, 5) == 5
    assert wait_until(lambda: close_wait(proxy.pid) == 0, 1.0)
    assert wait_until(lambda: fd_count(proxy.pid) <= base + 1, 3.0)


# -- control API bad input -----------------------------------------------------------------------

BAD = [
    ({"kind": "latency", "delay": "1s", "ttl": int("9" * 401)}, "ttl"),
    ({"kind": "latency", "delay": int("9" * 401)}, "delay"),
    ({"kind": "bandwidth", "rate": "1e999"}, "rate"),
    ({"kind": "bandwidth", "rate": 0}, "rate"),
    ({"kind": "bandwidth", "rate": "0KB"}, "rate"),
    ({"kind": "latency", "delay": "1e999"}, "delay"),
    ({"kind": "latency", "delay": "1s", "seed": int("9" * 50)}, "seed"),
    ({"kind": "http-error", "status": int("9" * 30)}, "status"),
]


@pytest.mark.parametrize(("fault", "field"), BAD, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD)])
def test_control_api_refuses_absurd_numbers_with_400(proxy: ProxyHandle, fault: dict, field: str) -> None:
    code, payload = raw_call(proxy, "POST", "/faults?force=1", json.dumps(fault).encode())
    assert code == 400, payload
    assert field in payload["error"]


@pytest.mark.parametrize("body", [
    b'{"kind": "latency", "delay": NaN}',
    b'{"kind": "latency", "delay": Infinity}',
    b'{"kind": "latency", "delay": -Infinity}',
    b"[" * 100_000 + b"]" * 100_000,
    b'{"kind": "latency", "delay": "1s", "match": ' + b'{"a": ' * 50 + b"1" + b"}" * 50 + b"}",
    b'{"kind": "latency", "delay": 1' + b"0" * 5000 + b"}",
])
def test_control_api_refuses_non_finite_and_deep_json_with_400(proxy: ProxyHandle, body: bytes) -> None:
    code, payload = raw_call(proxy, "POST", "/faults?force=1", body)
    assert code == 400, payload
    assert payload["error"]


def test_renew_with_absurd_ttl_is_400(proxy: ProxyHandle) -> None:
    fid = proxy.client.add({"kind": "latency", "delay": "1ms"}, ttl=5)
    for body in (b'{"ttl": ' + b"9" * 401 + b"}", b'{"ttl": "1e999"}', b'{"ttl": NaN}'):
        code, payload = raw_call(proxy, "POST", f"/faults/{fid}/renew", body)
        assert code == 400, payload


def test_rule_cap_is_429_and_delete_all_is_fast(proxy: ProxyHandle) -> None:
    for i in range(LIMITS.max_faults):
        proxy.client.add({"kind": "latency", "delay": "1ms", "id": f"f{i}"}, ttl=30, force=True)
    code, payload = raw_call(proxy, "POST", "/faults?force=1", b'{"kind": "latency", "delay": "1ms"}')
    assert code == 429 and "--max-faults" in payload["error"]
    # replacing an existing id is not one more
    assert proxy.client.add({"kind": "latency", "delay": "2ms", "id": "f0"}, ttl=30, force=True) == "f0"
    t0 = time.perf_counter()
    assert proxy.client.clear() == LIMITS.max_faults
    assert time.perf_counter() - t0 < 0.5
    assert proxy.client.stats("f3")["state"] == "removed"
    assert served(proxy, 2) == 2


def test_tcp_mode_connection_cap_closes_the_extra_connection(upstream: str) -> None:
    with spawn(upstream=upstream, mode="tcp", limits=Limits(max_connections=2)) as h:
        held = [connect(h) for _ in range(2)]
        for s in held:
            s.sendall(b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
        extra = connect(h)
        assert read_all(extra, 5) == b""
        extra.close()
        for s in held:
            s.close()
        assert wait_until(lambda: active(h) == 0)
        assert served(h, 2) == 2


def test_experiment_specs_share_the_proxy_rules() -> None:
    from pydantic import ValidationError

    from mlchaos.faults.network import BandwidthSpec, GenericSpec, HttpErrorSpec

    for bad in ({"headers": {"X": "a\r\nb"}}, {"content_type": "a\nb"}, {"headers": {"Transfer-Encoding": "x"}},
                {"headers": {"Bad Name": "x"}}):
        with pytest.raises(ValidationError):
            HttpErrorSpec.model_validate({"fault": "http-error", **bad})
    assert HttpErrorSpec.model_validate({"fault": "http-error", "headers": {"Retry-After": "1"}})
    for rate in (0, "0KB"):
        with pytest.raises(ValidationError):
            BandwidthSpec.model_validate({"fault": "bandwidth", "rate": rate})
    for kind, params in (("http-error", {"headers": {"X": "a\r\nb"}}), ("bandwidth", {"rate": 0})):
        with pytest.raises(ValidationError, match="params"):  # `fault: proxy` checks them with the proxy's model
            GenericSpec.model_validate({"fault": "proxy", "kind": kind, "params": params})
    assert GenericSpec.model_validate({"fault": "proxy", "kind": "http-error", "params": {"status": 500}})


def test_limit_flags_are_checked_and_name_the_flag() -> None:
    for flags, words in ((["--max-connections", "0"], "--max-connections"),
                         (["--header-timeout", "fast"], "--header-timeout"),
                         (["--max-header-size", "12"], "--max-header-size")):
        out = subprocess.run([sys.executable, "-m", "mlchaos.proxy", "--upstream", "127.0.0.1:9", *flags],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 2 and words in out.stderr, out.stderr


def test_control_api_endless_header_gets_431(proxy: ProxyHandle) -> None:
    host, port = proxy.control_url.removeprefix("http://").rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Endless: ")
    with contextlib.suppress(OSError):
        for _ in range(64):
            s.sendall(b"a" * 65536)
    t0 = time.monotonic()
    data = read_all(s, 5)
    s.close()
    assert data.startswith(b"HTTP/1.1 431 ") or data == b""
    assert time.monotonic() - t0 < 4.0  # closed by the proxy, not by our read timeout
    assert proxy.client.health()["ok"]


def test_header_timeout_spares_a_pipelined_request_the_proxy_is_not_reading(proxy: ProxyHandle) -> None:
    """The second request waits behind a 2.5 s latency fault; its rest sits unread in the kernel
    meanwhile, so the 1 s header timeout must not count that wait."""
    proxy.client.add({"kind": "latency", "delay": "2500ms"}, ttl=10)
    s = connect(proxy)
    s.sendall(b"GET /json HTTP/1.1\r\nHost: x\r\n\r\nGET /json HTTP/1.1\r\nHost: x\r\n")
    time.sleep(0.3)
    s.sendall(b"Connection: close\r\n\r\n")
    data = read_all(s, 10)
    s.close()
    assert data.count(b"HTTP/1.1 200 ") == 2, data[:300]
