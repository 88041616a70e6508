"""Control API: bad input gets a clear 4xx (never a traceback), auth, leases, renew, and robustness."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from mlchaos.proxy import ProxyError, ProxyHandle, SpawnError, spawn

from .conftest import request, run


def raw_call(h: ProxyHandle, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(h.control_url + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        ("POST", "/faults", b'{"kind": "teleport"}', 400, "unknown fault kind"),
        ("POST", "/faults", b'{"kind": "latency", "delay": "fast"}', 400, "invalid duration"),
        ("POST", "/faults", b'{"kind": "latency", "delay": "1s", "probability": "150%"}', 400, "probability"),
        ("POST", "/faults", b'{"kind": "latency", "delay": "1s", "ttl": 0}', 400, "ttl"),
        ("POST", "/faults", b'{"kind": "latency", "delay": "1s", "colour": "red"}', 400, "colour"),
        ("POST", "/faults", b'{"kind": "http-error", "status": 42}', 400, "status"),
        ("POST", "/faults", b'{"kind": "json-corrupt", "fields": []}', 400, "fields"),
        ("POST", "/faults", b'{"kind": "reset", "direction": "response"}', 400, "direction"),
        ("POST", "/faults", b"{not json", 400, "not valid JSON"),
        ("POST", "/faults", b"", 400, "expected a JSON body"),
        ("POST", "/faults", b"[1, 2]", 400, "JSON object"),
        ("GET", "/faults/nope", None, 404, "no fault"),
        ("DELETE", "/faults/nope", None, 404, "no active fault"),
        ("POST", "/faults/nope/renew", b"{}", 404, "expired or removed"),
        ("PUT", "/faults", b"{}", 405, "not allowed"),
        ("GET", "/teapot", None, 404, "no endpoint"),
    ],
)
def test_bad_input_gets_a_clear_4xx(http_proxy: ProxyHandle, method: str, path: str, body: bytes | None,
                                    status: int, words: str) -> None:
    code, payload = raw_call(http_proxy, method, path, body)
    assert code == status
    assert words.lower() in payload["error"].lower()
    assert "Traceback" not in payload["error"]
    # and the data path is unharmed
    (_, st, _), = run(request(http_proxy.listen_addr))
    assert st == 200


def test_tcp_mode_rejects_http_faults_and_matchers(tcp_proxy: ProxyHandle) -> None:
    for fault in ({"kind": "http-error"}, {"kind": "json-corrupt", "fields": ["a"]},
                  {"kind": "latency", "delay": "1ms", "match": {"path": "/x"}}):
        with pytest.raises(ProxyError) as info:
            tcp_proxy.client.add(fault, ttl=5)
        assert info.value.status == 400


def test_upstream_unreachable_is_424_and_data_path_answers_502() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"  # bound but not listening: connections are refused
        with spawn(upstream=dead) as h:
            with pytest.raises(ProxyError) as info:
                h.client.add({"kind": "latency", "delay": "1ms"}, ttl=5)
            assert info.value.status == 424 and "unreachable" in str(info.value)
            assert h.client.add({"kind": "latency", "delay": "1ms"}, ttl=5, force=True)
            (_, status, raw), = run(request(h.listen_addr))
            assert status == 502 and b"unreachable" in raw


def test_token_required_when_set_and_beyond_loopback() -> None:
    with spawn(upstream="127.0.0.1:9", token="s3cret") as h:
        code, payload = raw_call(h, "GET", "/faults")
        assert code == 401 and "bearer" in payload["error"].lower()
        code, _ = raw_call(h, "GET", "/faults", headers={"Authorization": "Bearer wrong"})
        assert code == 401
        assert h.client.list() == []  # the handle's client carries the token
    with pytest.raises(SpawnError, match="beyond loopback"):
        spawn(upstream="127.0.0.1:9", control="0.0.0.0:0")


def test_cli_refuses_public_control_without_token() -> None:
    out = subprocess.run([sys.executable, "-m", "mlchaos", "proxy", "--upstream", "127.0.0.1:9",
                          "--control", "0.0.0.0:0"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "token" in out.stderr


def test_malformed_request_gets_400_and_proxy_keeps_serving(http_proxy: ProxyHandle) -> None:
    host, port = http_proxy.listen_addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert s.recv(1000).startswith(b"HTTP/1.1 400")
    (_, st, _), = run(request(http_proxy.listen_addr))
    assert st == 200


def test_add_applies_to_next_request_and_remove_too(http_proxy: ProxyHandle) -> None:
    c = http_proxy.client
    fid = c.add({"kind": "http-error", "status": 418}, ttl=30)
    (_, st, _), = run(request(http_proxy.listen_addr))
    assert st == 418
    assert c.remove(fid) is True and c.remove(fid) is False  # idempotent
    (_, st, _), = run(request(http_proxy.listen_addr))
    assert st == 200


def test_table_knows_when_a_rule_needs_the_request_parts() -> None:
    """The HTTP relay path reads no URL or headers, so it must step aside while any rule matches on them."""
    from mlchaos.proxy.rules import parse_rule
    from mlchaos.proxy.table import FaultTable

    table = FaultTable()
    table.add(parse_rule({"kind": "http-error", "probability": "10%", "id": "p"}, "http"), schedule=False)
    assert not table.matchers
    table.add(parse_rule({"kind": "latency", "delay": "1ms", "match": {"path": "/x"}, "id": "m"}, "http"),
              schedule=False)
    assert table.matchers
    table.remove("m")
    assert not table.matchers
    table.replace_all([parse_rule({"kind": "abort", "match": {"method": "POST"}, "id": "w"}, "http")])
    assert table.matchers
    table.clear()
    assert not table.matchers


def test_renew_extends_and_expiry_is_on_time(http_proxy: ProxyHandle) -> None:
    c = http_proxy.client
    fid = c.add({"kind": "http-error"}, ttl=0.3)
    time.sleep(0.2)
    assert c.renew(fid, 0.3)["expires_in"] > 0.25
    time.sleep(0.2)
    assert c.list(), "renewed fault expired early"
    t0 = time.monotonic()
    while c.list():
        time.sleep(0.005)
    gone = time.monotonic() - t0
    assert 0.05 <= gone <= 0.2
    assert c.stats(fid)["state"] == "expired"


def test_validate_and_dry_run_inject_nothing(http_proxy: ProxyHandle) -> None:
    assert http_proxy.client.validate({"kind": "latency", "delay": "10ms"})["valid"]
    code, _ = raw_call(http_proxy, "POST", "/faults?dry_run=1", b'{"kind": "latency", "delay": "1s"}')
    assert code == 200 and http_proxy.client.list() == []
    with pytest.raises(ProxyError) as info:
        http_proxy.client.validate({"kind": "latency"})
    assert info.value.status == 400


def test_metrics_and_kinds(http_proxy: ProxyHandle) -> None:
    fid = http_proxy.client.add({"kind": "latency", "delay": "0ms", "name": "probe"}, ttl=30)
    run(request(http_proxy.listen_addr, n=3))
    text = http_proxy.client.metrics()
    assert f'mlchaos_proxy_fault_affected_total{{id="{fid}",kind="latency",name="probe"}} 3' in text
    assert "# TYPE mlchaos_proxy_requests_total counter" in text
    code, kinds = raw_call(http_proxy, "GET", "/kinds")
    assert code == 200 and {"latency", "json-corrupt", "http-error"} <= set(kinds)


def test_asyncio_fallback_loop(upstream: str) -> None:
    """Without uvloop the proxy runs on the default loop; delays are still never early."""
    with spawn(upstream=upstream, loop="asyncio") as h:
        h.client.add({"kind": "latency", "delay": "30ms", "direction": "response"}, ttl=30)
        times = [t for t, st, _ in run(request(h.listen_addr, n=10)) if st == 200]
        assert len(times) == 10 and min(times) >= 0.030
