"""The LLM engine, as real processes: byte-exact SSE, continuous batching, KV budget, queue bound, preemption,
and the gray failure (generation stops while /health answers 200)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import orjson
import pytest

from mlchaos.lab import auth
from mlchaos.lab.paths import free_port


class Engine:
    def __init__(self, url: str, proc: subprocess.Popen[bytes], token_file: Path | None) -> None:
        self.url, self.proc = url, proc
        self.token = auth.read_token(token_file) if token_file else None
        self.token_dir = token_file.parent if token_file else None

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = httpx.get(self.url + "/info", timeout=5).json()["scheduler"]
        return out

    def admin(self, method: str, path: str, body: Any = None) -> httpx.Response:
        assert self.token
        return httpx.request(method, self.url + path, json=body, headers=auth.bearer(self.token), timeout=5)


@contextlib.contextmanager
def engine(models: Path, name: str, *flags: str, token_file: Path | None = None) -> Iterator[Engine]:
    """One engine process on an ephemeral port; always stopped."""
    port = free_port()
    env = {**os.environ}
    env.pop("MLCHAOS_LAB_PARENT", None)
    if token_file is not None:
        auth.write_token(token_file)
        env[auth.TOKEN_ENV] = str(token_file)
    proc = subprocess.Popen([sys.executable, "-m", "mlchaos.lab.services.llm_engine", "--port", str(port),
                             "--model", str(models), "--name", name, *flags], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"engine exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "engine did not start in 60 s"
            time.sleep(0.1)
        yield Engine(url, proc, token_file)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def big(built_lab_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The primary model with room to batch."""
    token_file = tmp_path_factory.mktemp("llm-token") / "admin.token"
    with engine(built_lab_dir / "models", "llm-primary", "--kv-tokens", "4096", "--max-batch", "16",
                token_file=token_file) as e:
        yield e


@pytest.fixture(scope="module")
def tight(built_lab_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The fallback model under a tiny KV budget and a 3-deep waiting queue, with an admin token."""
    token_file = tmp_path_factory.mktemp("llm-token") / "admin.token"
    with engine(built_lab_dir / "models", "llm-fallback", "--kv-tokens", "64", "--max-batch", "8",
                "--max-waiting", "3", token_file=token_file) as e:
        yield e


def chat(max_tokens: int, stream: bool = True, prompt: str = "Return the value of the", **extra: Any) -> dict[str, Any]:
    return {"model": "primary", "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "stream": stream, "ignore_eos": True, **extra}


def events(raw: bytes) -> list[bytes]:
    assert raw.endswith(b"\n\n"), raw[-200:]
    return [e for e in raw.split(b"\n\n") if e]


def test_stream_is_byte_correct_sse(big: Engine) -> None:
    body = chat(12, seed=7, stream_options={"include_usage": True})
    with httpx.stream("POST", big.url + "/v1/chat/completions", json=body, timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = b"".join(r.iter_raw())
    evs = events(raw)
    assert all(e.startswith(b"data: ") and b"\n" not in e for e in evs)
    assert evs[-1] == b"data: [DONE]"
    chunks = [orjson.loads(e[6:]) for e in evs[:-1]]
    tokens, finish, usage = chunks[:12], chunks[12], chunks[13]
    assert len(chunks) == 14
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    for i, c in enumerate(tokens):
        assert c["object"] == "chat.completion.chunk" and c["model"] == "primary"
        (choice,) = c["choices"]
        assert choice["finish_reason"] is None and isinstance(choice["delta"]["content"], str)
        assert ("role" in choice["delta"]) == (i == 0)
    assert finish["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 12
    assert usage["usage"]["total_tokens"] == usage["usage"]["prompt_tokens"] + 12
    # the same seed without streaming gives the same text
    r2 = httpx.post(big.url + "/v1/chat/completions", json=chat(12, stream=False, seed=7), timeout=30).json()
    assert r2["choices"][0]["message"]["content"] == "".join(c["choices"][0]["delta"]["content"] for c in tokens)
    assert r2["usage"]["completion_tokens"] == 12 and r2["object"] == "chat.completion"
    # completions API, and an OpenAI-shaped error
    r3 = httpx.post(big.url + "/v1/completions", json={"prompt": "The file", "max_tokens": 3, "ignore_eos": True,
                                                        "stream": True}, timeout=30)
    assert events(r3.content)[-1] == b"data: [DONE]" and b'"object":"text_completion"' in r3.content
    bad = httpx.post(big.url + "/v1/chat/completions", json={"messages": "hi"}, timeout=5)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "messages"
    too_long = httpx.post(big.url + "/v1/completions", json={"prompt": "x", "max_tokens": 5000}, timeout=5)
    assert too_long.status_code == 400
    assert too_long.json()["error"]["code"] in ("context_length_exceeded", None)


def test_tokens_are_flushed_one_by_one(big: Engine) -> None:
    """Each event leaves when its token is made: the first arrives long before the last."""
    seen: list[tuple[float, int]] = []
    t0 = time.monotonic()
    with httpx.stream("POST", big.url + "/v1/chat/completions", json=chat(60), timeout=30) as r:
        for part in r.iter_raw():
            seen.append((time.monotonic() - t0, part.count(b"data: ")))
    assert sum(n for _, n in seen) == 62  # 60 tokens, finish, [DONE]
    assert len(seen) >= 10, "events arrived in a few big chunks: buffered"
    assert seen[-1][0] > seen[0][0]


async def _fire(url: str, n: int, max_tokens: int) -> list[float]:
    async with httpx.AsyncClient(timeout=60) as c:
        async def one() -> float:
            t = time.monotonic()
            r = await c.post(url + "/v1/chat/completions", json=chat(max_tokens, stream=False))
            assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == max_tokens
            return time.monotonic() - t
        return list(await asyncio.gather(*(one() for _ in range(n))))


def test_concurrent_requests_share_steps(big: Engine) -> None:
    """8 concurrent requests take far fewer scheduler steps (and far less time) than 8 in a row."""
    asyncio.run(_fire(big.url, 1, 48))  # warm
    s0 = big.info()["steps"]
    t = time.monotonic()
    asyncio.run(_fire(big.url, 1, 48))
    single, s1 = time.monotonic() - t, big.info()["steps"]
    t = time.monotonic()
    asyncio.run(_fire(big.url, 8, 48))
    eight, s2 = time.monotonic() - t, big.info()["steps"]
    assert s1 - s0 == 48
    assert s2 - s1 < 2 * 48, f"8 requests took {s2 - s1} steps: not batched"
    assert eight < 0.5 * 8 * single, f"8 concurrent: {eight:.2f}s, one: {single:.2f}s"


def test_kv_budget_bounds_the_batch_and_preempts(tight: Engine) -> None:
    """Two 25-token prompts fit the 64-token budget together, not while both grow: the newest is preempted
    (its cache dropped, recomputed later) and both still finish with every token."""
    before = tight.info()["preemptions"]

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as c:
            body = {"prompt": "the " * 25, "max_tokens": 30, "ignore_eos": True}
            return list(await asyncio.gather(*(c.post(tight.url + "/v1/completions", json=body) for _ in range(3))))

    responses = asyncio.run(run())
    assert [r.status_code for r in responses] == [200] * 3  # the queue holds 3: none refused
    answers = [r.json() for r in responses]
    assert all(a["usage"] == {"prompt_tokens": 25, "completion_tokens": 30, "total_tokens": 55} for a in answers)
    info = tight.info()
    assert info["preemptions"] > before
    assert info["peak_kv_used"] <= 64  # the context of every running sequence, with the token it is adding
    assert info["peak_running"] == 2  # three requests, never three running: 3 × 26 > 64
    metrics = httpx.get(tight.url + "/metrics", timeout=5).text
    assert 'vllm:num_preemptions_total{model_name="fallback"}' in metrics
    for name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:gpu_cache_usage_perc",
                 "vllm:time_to_first_token_seconds_bucket", "vllm:inter_token_latency_seconds_bucket",
                 "vllm:generation_tokens_total", "vllm:prompt_tokens_total"):
        assert name + "{" in metrics, name


class _Ctx:
    run_id = "test"
    lease_ttl = 30.0
    phase = "fault"
    services: ClassVar[dict[str, Any]] = {}

    def target(self, name: str) -> Any:
        raise KeyError(name)

    def log(self, event: str, **fields: Any) -> None:
        pass


def test_gray_failure_stops_tokens_while_health_is_200(big: Engine) -> None:
    """llm-engine-hang: a stream stalls mid-generation while /health and /ready answer 200; removal resumes
    it to [DONE]."""
    from mlchaos.contract.lease import Lease
    from mlchaos.faults.llm_lab import LlmEngineHang

    assert httpx.post(big.url + "/admin/hang", json={"id": "x", "ttl": 1}, timeout=5).status_code == 401
    spec = {"fault": "llm-engine-hang", "url": big.url, "lab_dir": str(big.token_dir)}
    fault = LlmEngineHang(LlmEngineHang.Spec.model_validate(spec), _Ctx())  # type: ignore[arg-type]

    async def run() -> None:
        got: list[bytes] = []
        async with httpx.AsyncClient(timeout=60) as c:
            async def stream() -> None:
                body = {"prompt": "return", "max_tokens": 800, "ignore_eos": True, "stream": True}
                async with c.stream("POST", big.url + "/v1/completions", json=body) as r:
                    async for line in r.aiter_lines():
                        if line:
                            got.append(line.encode())

            task = asyncio.create_task(stream())
            while len(got) < 3:
                await asyncio.sleep(0.001)
            lease = Lease.new("l1", 30.0)
            await fault.intent(lease)
            applied = await fault.inject(lease)
            assert applied.actual["hung"] is True
            await asyncio.sleep(0.3)  # what was produced before the hang drains
            n_hung = len(got)
            await asyncio.sleep(1.0)
            assert len(got) == n_hung < 800, "tokens kept coming during the hang"
            assert (await c.get(big.url + "/health")).status_code == 200
            assert (await c.get(big.url + "/ready")).status_code == 200
            await fault.renew(lease)
            await fault.remove()
            await asyncio.wait_for(task, 60)
            assert got[-1] == b"data: [DONE]" and len(got) == 800 + 2
            await fault.remove()  # idempotent
            LlmEngineHang.revert({"url": big.url, "id": "never-hung", "lab_dir": str(big.token_dir)})

    asyncio.run(run())


def test_full_waiting_queue_answers_429(tight: Engine) -> None:
    """With the loop hung nothing is admitted: three requests wait (--max-waiting 3), the fourth gets 429 with
    Retry-After; when the hang ends the three are served."""
    assert tight.admin("POST", "/admin/hang", {"id": "q", "ttl": 30}).json()["hung"] is True

    async def run() -> None:
        async with httpx.AsyncClient(timeout=60) as c:
            short = {"prompt": "the", "max_tokens": 3, "ignore_eos": True}
            waiting = [asyncio.create_task(c.post(tight.url + "/v1/completions", json=short)) for _ in range(3)]
            while (await c.get(tight.url + "/info")).json()["scheduler"]["waiting"] < 3:
                await asyncio.sleep(0.01)
            full = await c.post(tight.url + "/v1/completions", json=short)
            assert full.status_code == 429 and full.headers["retry-after"] == "1"
            assert full.json()["error"]["type"] == "rate_limit_exceeded"
            assert not any(w.done() for w in waiting)
            metrics = (await c.get(tight.url + "/metrics")).text
            assert 'vllm:num_requests_waiting{model_name="fallback"} 3.0' in metrics
            assert tight.admin("DELETE", "/admin/hang/q").json()["removed"] is True
            assert all(r.status_code == 200 for r in await asyncio.gather(*waiting))

    asyncio.run(run())


def test_hang_lease_lapses_by_itself(tight: Engine) -> None:
    """The engine's own clock: a hang whose lease is not renewed ends, and the request waiting is served."""
    assert tight.admin("POST", "/admin/hang", {"id": "lapse", "ttl": 0.5}).json()["hung"] is True
    t = time.monotonic()
    r = httpx.post(tight.url + "/v1/completions", json={"prompt": "the", "max_tokens": 2}, timeout=30)
    assert r.status_code == 200 and time.monotonic() - t >= 0.3
    assert tight.info()["hung"] is False
