"""The C build of corrupt_response's common case agrees byte for byte with the Python code.

The C piece (src/mlchaos/proxy/_splice.c) only takes the simple case and answers None for
everything else, so a disagreement could only come from a bug in it; these tests compare
both paths on generated responses, valid JSON and mangled bytes alike.
"""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlchaos.proxy import http_wire
from mlchaos.proxy.faults import Plan
from mlchaos.proxy.faults.json_corrupt import JsonCorrupt, JsonCorruptParams

C = http_wire._splice
needs_c = pytest.mark.skipif(C is None, reason="C extension not built (MLCHAOS_PURE_PYTHON set)")


def test_the_extension_is_built() -> None:
    """CI has a compiler: a silently failed optional build would leave the proxy on the slow path."""
    if os.environ.get("MLCHAOS_PURE_PYTHON"):
        pytest.skip("pure-Python path asked for")
    assert C is not None


def _fault(field: str, action: str = "null") -> JsonCorrupt:
    return JsonCorrupt(JsonCorruptParams(fields=[field], action=action), "response")  # type: ignore[arg-type]


def _both(data: bytes, fault: JsonCorrupt) -> tuple[bytes, bytes]:
    plan = Plan()
    plan.corrupt.append(fault)
    fast = http_wire.corrupt_response(data, plan)
    saved, http_wire._splice = http_wire._splice, None
    try:
        slow = http_wire.corrupt_response(data, plan)
    finally:
        http_wire._splice = saved
    return fast, slow


def _response(body: bytes, head: bytes = b"HTTP/1.1 200 OK\r\nContent-Type: application/json") -> bytes:
    return head + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body


@needs_c
def test_simple_case_is_rewritten_in_c_and_reframed() -> None:
    data = _response(b'{"model": "v3", "features": {"f1": 0.5, "f2": [1, 2]}, "amount": 12.5}')
    fault = _fault("features.f1")
    assert C.rewrite(data, fault.needles, b"null") is not None  # type: ignore[union-attr,arg-type]
    fast, slow = _both(data, fault)
    assert fast == slow
    assert fast.endswith(b'{"model": "v3", "features": {"f1": null, "f2": [1, 2]}, "amount": 12.5}')
    body = fast.split(b"\r\n\r\n", 1)[1]
    assert b"\r\nContent-Length: %d\r\n" % len(body) in fast and fast.count(b"Content-Length") == 1


@needs_c
@pytest.mark.parametrize("data", [
    _response(b'{"a": 1}', b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip"),  # compressed: Python passes it on
    _response(b'{"a": 1}', b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity"),
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n{\"a\": 1}\r\n0\r\n\r\n",
    _response(b'{"x": {"a": 0}, "a": 1}'),  # a nested object before the key: the general walk decides
    _response(b'{"a": {"b": [1, {"c": 2}]}}'),  # a nested container as the value
    _response(b'{"a": "unterminated'),
    _response(b'["not", "an", "object"]'),
])
def test_c_declines_what_python_must_decide(data: bytes) -> None:
    fault = _fault("a")
    assert C.rewrite(data, fault.needles, b"null") is None  # type: ignore[union-attr,arg-type]
    fast, slow = _both(data, fault)
    assert fast == slow


@needs_c
def test_unchanged_value_returns_the_same_object() -> None:
    data = _response(b'{"a": null}')
    fault = _fault("a")
    assert C.rewrite(data, fault.needles, b"null") is data  # type: ignore[union-attr,arg-type]
    assert http_wire.corrupt_response(data, _plan(fault)) is data


def _plan(fault: JsonCorrupt) -> Plan:
    plan = Plan()
    plan.corrupt.append(fault)
    return plan


def test_stale_is_captured_by_python_then_replayed_as_a_constant() -> None:
    fault = _fault("amount", "stale")
    assert fault.constant is None  # the first response decides the value
    first = _response(b'{"amount": 10, "id": 1}')
    assert http_wire.corrupt_response(first, _plan(fault)) == first
    assert fault.constant == b"10"
    fast, slow = _both(_response(b'{"amount": 99.5, "id": 2}'), fault)
    assert fast == slow and fast.endswith(b'{"amount": 10, "id": 2}')


def test_only_plain_paths_get_needles() -> None:
    assert _fault("features.f07").needles == (b'"features"', b'"f07"')
    assert _fault("items.*.score").needles is None
    assert _fault("caf\u00e9").needles is None  # two byte forms ("caf\\u00e9" and UTF-8): Python tries both
    assert _fault("a", "scale").constant is None and _fault("a", "wrong_type").constant is None


keys = st.text(alphabet="abc\"\\ {}[]:,é", min_size=1, max_size=4)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=8,
)
heads = st.sampled_from([
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json",
    b"HTTP/1.1 200 OK\r\ncontent-length: 999\r\nX-A: 1",  # a stale, lower-case length line to replace
    b"HTTP/1.1 200 OK\r\nCONTENT-ENCODING: identity",
    b"HTTP/1.0 200 OK",
])


def _paths(doc: object, prefix: tuple[str, ...] = ()) -> list[str]:
    out = [".".join(prefix)] if prefix and all(p and "." not in p for p in prefix) else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    return out


@settings(max_examples=300, deadline=None)
@given(doc=st.dictionaries(keys, values, min_size=1, max_size=4), head=heads, framed=st.booleans(),
       sep=st.sampled_from([(", ", ": "), (",", ":"), (",\n  ", " : ")]), pick=st.integers(0, 50),
       action=st.sampled_from(["null", "nan"]), lead=st.sampled_from([b"", b" ", b"\n"]))
def test_c_and_python_agree_on_generated_json(doc: dict, head: bytes, framed: bool, sep: tuple[str, str],
                                              pick: int, action: str, lead: bytes) -> None:
    body = lead + json.dumps(doc, separators=sep).encode()
    data = _response(body, head) if framed else head + b"\r\n\r\n" + body
    paths = _paths(doc) or ["missing"]
    fault = _fault(paths[pick % len(paths)], action)
    fast, slow = _both(data, fault)
    assert fast == slow


@settings(max_examples=300, deadline=None)
@given(doc=st.dictionaries(keys, values, min_size=1, max_size=4), cut=st.integers(0, 200),
       junk=st.binary(max_size=3), pick=st.integers(0, 50))
def test_c_and_python_agree_on_mangled_bytes(doc: dict, cut: int, junk: bytes, pick: int) -> None:
    body = json.dumps(doc).encode()
    cut %= len(body) + 1
    body = body[:cut] + junk + body[cut:]
    paths = _paths(doc) or ["missing"]
    fast, slow = _both(_response(body), _fault(paths[pick % len(paths)]))
    assert fast == slow
