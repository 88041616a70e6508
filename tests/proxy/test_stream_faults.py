"""Stream faults on a real SSE server, checked byte for byte from the client side (issue 20).

The server (``sse_server.py``, its own process) emits OpenAI-style events at scripted times; the client
here is independent of the proxy's code (its own de-chunking and event split), so what it records is
what any client of the proxy would see: which events, their exact bytes, when, and how the body ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlchaos.proxy import ProxyHandle, spawn
from tests.proxy.conftest import run
from tests.proxy.sse_server import DONE, event, events

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def sse_upstream() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, str(HERE / "sse_server.py")], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        yield f"127.0.0.1:{int(proc.stdout.readline())}"
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture(scope="module")
def sse_proxy(sse_upstream: str) -> Iterator[ProxyHandle]:
    h = spawn(upstream=sse_upstream, mode="http")
    try:
        yield h
    finally:
        h.stop()


@pytest.fixture(autouse=True)
def _no_faults_left(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "sse_proxy" in request.fixturenames:
        request.getfixturevalue("sse_proxy").client.clear()


@dataclasses.dataclass
class Got:
    status: int
    head: bytes
    events: list[bytes]
    times: list[float]
    """Arrival of each event, seconds after the request was written."""
    end: str
    """'done': the body ended properly (last chunk, or the close of a close-delimited body); 'eof': the
    connection closed mid-body; 'silent': nothing for ``idle`` seconds and the connection still open."""
    body: bytes = b""


class Conn:
    """One client connection (keep-alive), with its own HTTP/1.1 reading: no proxy code involved."""

    def __init__(self, addr: str) -> None:
        self.addr = addr
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, spec: dict[str, Any], idle: float = 3.0, path: str = "/v1/chat/completions") -> Got:
        if self.writer is None:
            host, port = self.addr.rsplit(":", 1)
            self.reader, self.writer = await asyncio.open_connection(host, int(port))
        reader, writer = self.reader, self.writer
        assert reader is not None
        body = json.dumps(spec).encode()
        # t0 before the request goes out: a client preempted between the send and reading the clock would
        # otherwise start late and see every event early (arrivals are then an upper bound, never early)
        t0 = time.monotonic()
        writer.write(b"POST %b HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
                     % (path.encode(), len(body), body))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), idle)
        status = int(head.split(b" ", 2)[1])
        lower = head.lower()
        got = Got(status, head, [], [], "")
        buf = b""

        def take(data: bytes) -> None:
            nonlocal buf
            got.body += data
            buf += data
            while b"\n\n" in buf:
                ev, _, buf = buf.partition(b"\n\n")
                got.events.append(ev + b"\n\n")
                got.times.append(time.monotonic() - t0)

        try:
            if b"transfer-encoding: chunked" in lower:
                while True:
                    line = await asyncio.wait_for(reader.readuntil(b"\r\n"), idle)
                    size = int(line.strip(), 16)
                    if size == 0:
                        await asyncio.wait_for(reader.readuntil(b"\r\n"), idle)
                        got.end = "done"
                        break
                    take((await asyncio.wait_for(reader.readexactly(size + 2), idle))[:-2])
            elif b"content-length:" in lower:
                n = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
                take(await asyncio.wait_for(reader.readexactly(n), idle))
                got.end = "done"
            else:
                while data := await asyncio.wait_for(reader.read(65536), idle):
                    take(data)
                got.end = "done"
        except (asyncio.IncompleteReadError, ConnectionError):
            got.end = "eof"
        except TimeoutError:
            got.end = "eof" if reader.at_eof() else "silent"
        return got

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()


async def one(addr: str, spec: dict[str, Any], idle: float = 3.0) -> Got:
    c = Conn(addr)
    try:
        return await c.get(spec, idle)
    finally:
        await c.close()


def add(proxy: ProxyHandle, fault: dict[str, Any], ttl: float = 30.0) -> str:
    return proxy.client.add({"match": {"path": "/v1/*"}, **fault}, ttl=ttl)


# -- pass-through -----------------------------------------------------------------------------------
def test_pass_through_relays_each_event_as_it_comes(sse_upstream: str, sse_proxy: ProxyHandle) -> None:
    """No stream fault matches (another model's stall is active): each event is written when it arrives."""
    add(sse_proxy, {"kind": "stream-stall", "after_events": 0, "match": {"model": "other-*"}})
    spec = {"model": "primary", "times": [0.0, 0.3]}
    direct = run(one(sse_upstream, spec))
    via = run(one(sse_proxy.listen_addr, spec))
    assert via.events == direct.events == events(2, "primary") and via.end == "done"
    assert via.body == direct.body
    assert via.times[1] - via.times[0] >= 0.25, via.times  # the first event was not held back for the second


def test_model_matcher_and_share_of_streams(sse_proxy: ProxyHandle) -> None:
    """``match.model`` reads the request body; ``probability`` is the share of matching streams."""
    fid = add(sse_proxy, {"kind": "stream-cut", "after_events": 1, "mode": "clean", "probability": 0.5, "seed": 7,
                          "match": {"path": "/v1/*", "model": "primary"}})

    async def many() -> list[Got]:
        out = []
        c = Conn(sse_proxy.listen_addr)
        try:
            for i in range(20):
                out.append(await c.get({"model": "primary" if i % 2 == 0 else "fallback", "n": 3}))
        finally:
            await c.close()
        return out

    got = run(many())
    cut = [g for g in got if DONE not in g.events]
    assert all(g.events == events(3, "fallback") for g in got[1::2])  # never selected
    assert all(g.end == "done" for g in got)  # 'clean': every body ends properly, on one keep-alive connection
    view = sse_proxy.client.stats(fid)
    assert view["seen"] == 10 and view["affected"] == len(cut) and 0 < len(cut) < 10, (view, len(cut))
    assert all(g.events == events(1, "primary", done=False) for g in cut)


# -- delay --------------------------------------------------------------------------------------------
def test_stream_delay_first_event_and_per_event(sse_proxy: ProxyHandle) -> None:
    add(sse_proxy, {"kind": "stream-delay", "first_event": "300ms", "per_event": "100ms"})
    got = run(one(sse_proxy.listen_addr, {"model": "m", "n": 4}))
    assert got.events == events(4) and got.end == "done"
    # never early, measured from the request (a late wake-up of this client may shorten a gap it sees,
    # never an arrival): event i is released 300 ms + i x 100 ms after its arrival at the proxy at the soonest
    assert all(got.times[i] >= 0.3 + 0.1 * i for i in range(4)), got.times


def test_stream_rate_cap(sse_proxy: ProxyHandle) -> None:
    add(sse_proxy, {"kind": "stream-delay", "rate": 20})
    got = run(one(sse_proxy.listen_addr, {"model": "m", "n": 6}))
    assert got.events == events(6) and got.end == "done"
    assert got.times[5] >= 5 / 20, got.times  # 6 events at 20/s: the 6th 250 ms after the first at the soonest


@pytest.mark.exclusive  # where the lease lapses is read from event times 200 ms apart
def test_delay_lease_lapses_mid_stream(sse_proxy: ProxyHandle) -> None:
    """Per-event delay with a 0.5 s lease on a 10-event burst: delayed events first, then the rest at once."""
    add(sse_proxy, {"kind": "stream-delay", "per_event": "200ms"}, ttl=0.5)
    got = run(one(sse_proxy.listen_addr, {"model": "m", "n": 10}))
    assert got.events == events(10) and got.end == "done"
    gaps = [b - a for a, b in zip(got.times, got.times[1:], strict=False)]
    assert got.times[1] >= 0.2, got.times  # faulted while the lease held
    assert got.times[-1] < 0.2 * 9, got.times  # not every event was delayed: the lapse ended the fault
    assert sum(1 for g in gaps if g < 0.05) >= 5, gaps  # unfaulted from the next event on


# -- stall --------------------------------------------------------------------------------------------
def test_stall_after_events_holds_the_connection_open(sse_proxy: ProxyHandle) -> None:
    add(sse_proxy, {"kind": "stream-stall", "after_events": 2})
    got = run(one(sse_proxy.listen_addr, {"model": "m", "n": 5}, idle=1.0))
    assert got.events == events(2, done=False) and got.end == "silent"  # no more events, no [DONE], connection open


def test_stall_after_time_then_lease_lapses_and_stream_resumes(sse_proxy: ProxyHandle) -> None:
    """``after: 0.25s`` on a stream of one event per 100 ms; the 1.2 s lease lapses mid-stall: the held
    events and the rest arrive on the same connection, [DONE] included."""
    add(sse_proxy, {"kind": "stream-stall", "after": "250ms"}, ttl=1.2)
    got = run(one(sse_proxy.listen_addr, {"model": "m", "n": 8, "gap": 0.1}, idle=3.0))
    assert got.events == events(8) and got.end == "done"
    gaps = [b - a for a, b in zip(got.times, got.times[1:], strict=False)]
    k = max(range(len(gaps)), key=gaps.__getitem__)
    assert gaps[k] >= 0.6 and 1 <= k + 1 <= 3, (k, gaps)  # 2-3 events (0, 0.1, 0.2 s), then the stall
    # released when the lease lapsed (1.2 s after the add, which precedes this request by the client's
    # start-up: up to a few 100 ms on a busy host), not before
    assert got.times[k + 1] >= 0.85, got.times


# -- cut ----------------------------------------------------------------------------------------------
def test_cut_close_ends_mid_body(sse_proxy: ProxyHandle) -> None:
    add(sse_proxy, {"kind": "stream-cut", "after_events": 3, "mode": "close"})
    got = run(one(sse_proxy.listen_addr, {"model": "m", "n": 6, "gap": 0.02}))
    assert got.events == events(3, done=False) and got.end == "eof"


def test_cut_clean_ends_without_done_and_the_connection_is_reusable(sse_proxy: ProxyHandle) -> None:
    fid = add(sse_proxy, {"kind": "stream-cut", "after_events": 3, "mode": "clean"})

    async def two() -> tuple[Got, Got]:
        c = Conn(sse_proxy.listen_addr)
        try:
            first = await c.get({"model": "m", "n": 6, "gap": 0.02})
            sse_proxy.client.remove(fid)
            return first, await c.get({"model": "m", "n": 4})
        finally:
            await c.close()

    first, second = run(two())
    assert first.events == events(3, done=False) and first.end == "done"
    assert second.events == events(4) and second.end == "done"


def test_cut_on_a_close_delimited_stream(sse_proxy: ProxyHandle) -> None:
    add(sse_proxy, {"kind": "stream-cut", "after_events": 2, "mode": "clean"})
    got = run(one(sse_proxy.listen_addr, {"model": "m", "n": 5, "gap": 0.02, "framing": "close"}))
    assert got.events == events(2, done=False) and got.end == "done"


# -- corrupt ------------------------------------------------------------------------------------------
def test_corrupt_malformed_every_second_event(sse_proxy: ProxyHandle) -> None:
    add(sse_proxy, {"kind": "stream-corrupt", "mode": "malformed", "every": 2})
    got = run(one(sse_proxy.listen_addr, {"model": "m", "n": 4}))
    want = events(4)
    assert len(got.events) == 5 and got.events[4] == DONE and got.end == "done"
    for i in (0, 2):
        assert got.events[i] == want[i]
    for i in (1, 3):
        assert got.events[i] != want[i] and got.events[i].startswith(b"data: {")
        with pytest.raises(json.JSONDecodeError):
            json.loads(got.events[i][len(b"data: "):])


def test_corrupt_error_event_ends_the_stream(sse_proxy: ProxyHandle) -> None:
    add(sse_proxy, {"kind": "stream-corrupt", "mode": "error-event", "every": 3, "message": "boom"})
    got = run(one(sse_proxy.listen_addr, {"model": "m", "n": 6}))
    assert got.events[:2] == events(2, done=False) and len(got.events) == 3 and got.end == "done"
    err = json.loads(got.events[2][len(b"data: "):])
    assert err == {"error": {"message": "boom", "type": "server_error", "param": None, "code": "stream_error"}}


def test_corrupt_duplicate_and_drop(sse_proxy: ProxyHandle) -> None:
    fid = add(sse_proxy, {"kind": "stream-corrupt", "mode": "duplicate", "every": 2})
    got = run(one(sse_proxy.listen_addr, {"model": "m", "n": 4}))
    assert got.events == [event(0), event(1), event(1), event(2), event(3), event(3), DONE]
    sse_proxy.client.remove(fid)
    add(sse_proxy, {"kind": "stream-corrupt", "mode": "drop", "every": 2})
    got = run(one(sse_proxy.listen_addr, {"model": "m", "n": 4}))
    assert got.events == [event(0), event(2), DONE] and got.end == "done"


def test_non_stream_response_is_untouched(sse_proxy: ProxyHandle) -> None:
    """A stream fault that hits a request answered with a Content-Length body leaves it as it is."""
    add(sse_proxy, {"kind": "stream-corrupt", "mode": "drop"})
    got = run(one(sse_proxy.listen_addr, {"model": "m", "n": 3, "stream": False}))
    assert got.status == 200 and json.loads(got.body)["choices"][0]["message"]["content"] == "t0t1t2"


# -- http-error presets -------------------------------------------------------------------------------
@pytest.mark.parametrize(("preset", "status", "code"), [
    ("rate-limited", 429, "rate_limit_exceeded"), ("overloaded", 503, "overloaded"),
    ("context-length", 400, "context_length_exceeded")])
def test_http_error_presets(sse_proxy: ProxyHandle, preset: str, status: int, code: str) -> None:
    add(sse_proxy, {"kind": "http-error", "preset": preset})
    got = run(one(sse_proxy.listen_addr, {"model": "m"}))
    assert got.status == status
    err = json.loads(got.body)["error"]
    assert err["code"] == code and set(err) == {"message", "type", "param", "code"}
    assert (b"\r\nretry-after: 1\r\n" in got.head.lower()) == (preset == "rate-limited")


def test_corrupt_and_cut_lease_lapses_mid_stream(sse_proxy: ProxyHandle) -> None:
    """Drop every event under a 0.35 s lease on a stream of one event per 100 ms: the first events are
    gone, the rest arrive intact with [DONE]; a cut due after 8 events whose lease lapsed never happens."""
    add(sse_proxy, {"kind": "stream-corrupt", "mode": "drop"}, ttl=0.35)
    add(sse_proxy, {"kind": "stream-cut", "after_events": 8, "mode": "close"}, ttl=0.35)
    got = run(one(sse_proxy.listen_addr, {"model": "m", "n": 10, "gap": 0.1}))
    assert got.end == "done" and got.events[-1] == DONE
    kept = len(got.events) - 1
    assert 4 <= kept <= 9, got.events  # 1-6 dropped while the lease held (0, 0.1, 0.2, 0.3 s ...; the client
    # starts a little after the add, up to a few 100 ms on a busy host)
    assert got.events == events(10)[10 - kept :]


# -- the experiment side ------------------------------------------------------------------------------
def test_experiment_step_drives_a_stream_fault(sse_proxy: ProxyHandle) -> None:
    """``fault: stream-stall`` with ``match.model``: the step's JSON is what the proxy applies, under a lease."""
    from mlchaos.contract.lease import Lease
    from mlchaos.faults import network
    from tests.proxy.test_plugins import Ctx

    spec = network.StreamStall.Spec.model_validate(
        {"fault": "stream-stall", "control": sse_proxy.control_url, "after_events": 1, "probability": "100%",
         "match": {"path": "/v1/*", "model": "primary"}})
    fault = network.StreamStall(spec, Ctx())

    async def go() -> tuple[Got, Got]:
        planned = await fault.preflight()
        assert planned["kind"] == "stream-stall" and planned["match"] == {"path": "/v1/*", "model": "primary"}
        await fault.inject(Lease.new("l1", 5.0))
        stalled = await one(sse_proxy.listen_addr, {"model": "primary", "n": 3}, idle=0.6)
        other = await one(sse_proxy.listen_addr, {"model": "fallback", "n": 3})
        assert (await fault.observed())["affected"] == 1
        await fault.remove()
        return stalled, other

    stalled, other = run(go())
    assert stalled.events == events(1, "primary", done=False) and stalled.end == "silent"
    assert other.events == events(3, "fallback") and other.end == "done"
    assert sse_proxy.client.list() == []


def test_stall_lapses_in_a_worker_process(sse_upstream: str) -> None:
    """``--workers 2``: the rule lives in a worker's copy of the table; its lease and its removal still end
    a stall there (the worker sees both through the control plane's broadcast and its own clock)."""
    h = spawn(upstream=sse_upstream, mode="http", workers=2)
    try:
        h.client.add({"kind": "stream-stall", "after_events": 2}, ttl=0.8)
        lapsed = run(one(h.listen_addr, {"model": "m", "n": 4}, idle=3.0))
        fid = h.client.add({"kind": "stream-stall", "after_events": 1}, ttl=30)

        async def removed_mid_stall() -> Got:
            task = asyncio.create_task(one(h.listen_addr, {"model": "m", "n": 4}, idle=3.0))
            await asyncio.sleep(0.4)
            await asyncio.to_thread(h.client.remove, fid)
            return await task

        gone = run(removed_mid_stall())
    finally:
        h.stop()
    assert lapsed.events == events(4) and lapsed.end == "done" and lapsed.times[2] >= 0.5, lapsed.times
    assert gone.events == events(4) and gone.end == "done" and gone.times[1] >= 0.3, gone.times
