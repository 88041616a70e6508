"""Stream faults on the lab's LLM engine (a real OpenAI-compatible server generating tokens), from the client side.

The engine (``mlchaos.lab.services.llm_engine``, uvicorn + FastAPI, continuous batching) runs on a small
model trained here on a slice of the standard library's docstrings (the text does not matter, the stream
does).  Requests use ``temperature: 0`` and ``ignore_eos``, so every stream carries the same tokens: what a
fault does is compared with the same request answered directly, event by event.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlchaos.proxy import ProxyHandle, spawn
from tests.proxy.conftest import run
from tests.proxy.sse_server import DONE
from tests.proxy.test_stream_faults import Conn, Got, one

pytestmark = pytest.mark.slow  # trains a small model (~5 s of CPU) and starts the engine
REQ = {"model": "fallback", "messages": [{"role": "user", "content": "open a file"}], "stream": True,
       "max_tokens": 8, "temperature": 0, "ignore_eos": True}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from mlchaos.lab.llm.train import stdlib_docstrings, train

    work = tmp_path_factory.mktemp("llm-engine")
    model = work / "fallback.npz"
    train("fallback", stdlib_docstrings(max_words=20_000)).save(model)
    port = _port()
    with (work / "engine.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mlchaos.lab.services.llm_engine", "--port", str(port),
                                 "--name", "fallback", "--model", str(model)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                break
            assert proc.poll() is None, Path(work / "engine.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the engine did not come up"
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def engine_proxy(engine: str) -> Iterator[ProxyHandle]:
    h = spawn(upstream=engine, mode="http")
    try:
        yield h
    finally:
        h.stop()


def tokens(got: Got) -> list[str | None]:
    """Each event's content (None for [DONE], the finish chunk, and what does not parse)."""
    out: list[str | None] = []
    for ev in got.events:
        try:
            chunk = json.loads(ev.removeprefix(b"data: "))
            out.append(chunk["choices"][0]["delta"].get("content") if chunk.get("choices") else None)
        except (ValueError, KeyError, IndexError):
            out.append(None)
    return out


def test_stream_faults_on_the_lab_engine(engine: str, engine_proxy: ProxyHandle) -> None:
    direct = run(one(engine, REQ))
    assert direct.end == "done" and direct.events[-1] == DONE and len(direct.events) == 10  # 8 tokens, finish, DONE
    want = tokens(direct)
    assert all(isinstance(t, str) for t in want[:8])

    passed = run(one(engine_proxy.listen_addr, REQ))  # pass-through: the same stream
    assert tokens(passed) == want and passed.end == "done"

    c = engine_proxy.client
    fid = c.add({"kind": "stream-stall", "after_events": 3, "match": {"model": "fallback"}}, ttl=30)
    stalled = run(one(engine_proxy.listen_addr, REQ, idle=0.8))
    assert tokens(stalled) == want[:3] and stalled.end == "silent"  # connection open, nothing more, no [DONE]
    c.remove(fid)

    fid = c.add({"kind": "stream-cut", "after_events": 4, "mode": "clean"}, ttl=30)

    async def cut_then_reuse() -> tuple[Got, Got]:
        conn = Conn(engine_proxy.listen_addr)
        try:
            first = await conn.get(REQ)
            c.remove(fid)
            return first, await conn.get(REQ)
        finally:
            await conn.close()

    cut, after = run(cut_then_reuse())
    assert tokens(cut) == want[:4] and cut.end == "done" and DONE not in cut.events
    assert tokens(after) == want and after.end == "done"  # same client connection, fault removed

    c.add({"kind": "stream-corrupt", "mode": "malformed", "every": 2}, ttl=30)
    bad = run(one(engine_proxy.listen_addr, REQ))
    got = tokens(bad)
    assert [got[i] for i in (0, 2, 4, 6)] == [want[i] for i in (0, 2, 4, 6)]
    assert [got[i] for i in (1, 3, 5, 7)] == [None] * 4 and bad.events[-1] == DONE
    c.clear()
