"""The lab's LLM engine: an OpenAI-compatible server over a continuous-batching scheduler.

``POST /v1/chat/completions`` and ``POST /v1/completions`` (streaming over
Server-Sent Events, one event per generated token, each written as soon as
the scheduler produced it; or one JSON object), ``GET /v1/models``, and the
lab's ``/health``, ``/ready`` and ``/metrics`` (vLLM's metric names).  The
text comes from a small language model trained at lab build time
(:mod:`mlchaos.lab.llm`); its timing from the real compute of each decode
step, so overload queues, TTFT grows, long prompts preempt, as in vLLM.

The request's ``model`` is not checked: one engine serves one model, and
gateways rename models (LiteLLM sends its own alias); answers carry the
served name.  Extra request fields as in vLLM: ``ignore_eos``, ``min_tokens``,
``seed``.

The gray failure (``mlchaos.faults.llm_lab``): ``POST /admin/hang {"id", "ttl"}``
🔒 stops the generation loop under a lease, ``DELETE /admin/hang/{id}`` 🔒 ends
it; ``/health`` and ``/ready`` answer 200 all along, as a dead engine loop
behind a live HTTP server does.

Run: ``python -m mlchaos.lab.services.llm_engine --port P --model MODELS_DIR_OR_FILE --name llm-primary
--kv-tokens 4096 --max-batch 16 --max-waiting 64``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from prometheus_client import Counter, Gauge, Histogram

from mlchaos.lab import observability as obs
from mlchaos.lab.llm.model import LanguageModel
from mlchaos.lab.llm.scheduler import QueueFull, Scheduler, Sequence
from mlchaos.lab.llm.tokenizer import EOS
from mlchaos.lab.services import scaffold

SIZES = ("primary", "fallback")
_LAT = (0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
RUNNING = Gauge("vllm:num_requests_running", "Requests in the running batch.", ["model_name"])
WAITING = Gauge("vllm:num_requests_waiting", "Requests in the waiting queue.", ["model_name"])
KV_USAGE = Gauge("vllm:gpu_cache_usage_perc", "KV-cache usage, 0-1: the share of the engine's simulated KV budget "
                 "(--kv-tokens, summed context lengths of running requests) in use; there is no GPU.",
                 ["model_name"])
TTFT = Histogram("vllm:time_to_first_token_seconds", "Arrival to first generated token.", ["model_name"],
                 buckets=_LAT)
ITL = Histogram("vllm:inter_token_latency_seconds", "Time between two generated tokens of a request.",
                ["model_name"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1.0,
                                         2.5, 5.0))
E2E = Histogram("vllm:e2e_request_latency_seconds", "Arrival to last token.", ["model_name"], buckets=_LAT)
GEN_TOKENS = Counter("vllm:generation_tokens", "Generated tokens.", ["model_name"])
PROMPT_TOKENS = Counter("vllm:prompt_tokens", "Prompt tokens of admitted requests.", ["model_name"])
PREEMPTIONS = Counter("vllm:num_preemptions", "Running requests sent back to the waiting queue (KV budget).",
                      ["model_name"])
SUCCESS = Counter("vllm:request_success", "Finished requests by reason.", ["model_name", "finished_reason"])
STEP = Histogram("mlchaos_llm_step_seconds", "Compute time of one scheduler step (one forward pass of the batch).",
                 ["model_name"], buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5))


def error(status: int, message: str, type_: str, code: str | None = None, param: str | None = None,
          headers: dict[str, str] | None = None) -> Response:
    """An error in OpenAI's shape."""
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return obs.FastJSON(body, status_code=status, headers=headers)


class BadRequest(ValueError):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class _Channel:
    """Where the scheduler thread's tokens for one request land, in the event loop."""

    __slots__ = ("last_at", "prev", "queue")

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str | None, str | None]] = asyncio.Queue()
        self.prev: int | None = None
        self.last_at = 0.0


def _number(body: dict[str, Any], key: str, default: float, lo: float, hi: float, integer: bool = False) -> Any:
    v = body.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int | float) or (integer and not isinstance(v, int)):
        raise BadRequest(f"{key}: expected {'an integer' if integer else 'a number'}, got {v!r}", key)
    if not lo <= v <= hi:
        raise BadRequest(f"{key}: must be between {lo} and {hi}, got {v!r}", key)
    return v


def chat_prompt(messages: Any) -> str:
    """The text the model continues: one ``role: content`` line per message (the lab model has no template)."""
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: expected a non-empty list", "messages")
    lines = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise BadRequest(f"messages[{i}]: expected an object with a 'role'", "messages")
        c = m.get("content")
        if isinstance(c, list):  # content parts: keep the text ones
            c = " ".join(str(p.get("text", "")) for p in c if isinstance(p, dict))
        if c is not None and not isinstance(c, str):
            raise BadRequest(f"messages[{i}].content: expected a string or a list of parts", "messages")
        lines.append(f"{m['role']}: {c or ''}")
    return "\n".join(lines)


def create_app(name: str, model: LanguageModel, *, served: str, kv_tokens: int, max_batch: int,
               max_waiting: int, max_model_len: int, seed: int = 0) -> FastAPI:
    log = obs.JsonLog(name)
    tok = model.tokenizer
    channels: dict[int, _Channel] = {}
    seeds = itertools.count()
    holder: dict[str, Any] = {}
    labels = {"model_name": served}

    def dispatch(events: list[tuple[Sequence, int | None, str | None]]) -> None:
        """In the event loop: each new token goes to its request's channel (and the metrics)."""
        now = time.monotonic()
        for seq, token, reason in events:
            ch = channels.get(seq.id)
            if token is not None:
                GEN_TOKENS.labels(**labels).inc()
                if ch is not None:
                    if ch.prev is None:
                        TTFT.labels(**labels).observe(now - seq.arrived)
                    else:
                        ITL.labels(**labels).observe(now - ch.last_at)
                    piece = tok.piece(token, ch.prev)
                    ch.prev, ch.last_at = token, now
                    ch.queue.put_nowait((piece, None))
            if reason is not None:
                SUCCESS.labels(served, reason).inc()
                E2E.labels(**labels).observe(now - seq.arrived)
                if ch is not None:
                    ch.queue.put_nowait((None, reason))

    def on_step(s: Scheduler, seconds: float) -> None:  # scheduler thread; prometheus_client is thread-safe
        STEP.labels(**labels).observe(seconds)
        RUNNING.labels(**labels).set(len(s.running))
        WAITING.labels(**labels).set(len(s.waiting))
        KV_USAGE.labels(**labels).set(s.kv_used / s.kv_tokens)
        grew = s.preemptions - holder.get("preempted", 0)
        if grew:
            PREEMPTIONS.labels(**labels).inc(grew)
            holder["preempted"] = s.preemptions

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        def emit(events: list[tuple[Sequence, int | None, str | None]]) -> None:  # one wake-up per step
            loop.call_soon_threadsafe(dispatch, events)

        sched = Scheduler(model, emit, kv_tokens=kv_tokens,
                          max_batch=max_batch, max_waiting=max_waiting, on_step=on_step)
        holder["sched"] = sched
        for g in (RUNNING, WAITING, KV_USAGE):
            g.labels(**labels).set(0)
        sched.start()
        log("starting", model=served, kv_tokens=kv_tokens, max_batch=max_batch, max_waiting=max_waiting,
            pid=os.getpid(), meta=model.meta)
        yield
        sched.stop()
        log("stopping")

    app = FastAPI(lifespan=lifespan)
    scaffold.add_probe_routes(app, name)
    obs.READY.labels(name).set(1)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": served, "object": "model", "created": 0,
                                            "owned_by": "mlchaos-lab", "max_model_len": max_model_len}]}

    @app.get("/info")
    async def info() -> dict[str, Any]:
        return {"name": name, "model": served, "meta": model.meta, "scheduler": holder["sched"].snapshot()}

    @app.post("/admin/hang")
    async def hang(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
            lease_id, ttl = body["id"], body["ttl"]
            if not isinstance(lease_id, str) or not 0 < len(lease_id) <= 128:
                raise ValueError("id: expected a non-empty string")
            if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl <= 86400:
                raise ValueError(f"ttl: expected seconds in (0, 86400], got {ttl!r}")
        except (ValueError, KeyError, TypeError) as exc:
            return error(400, f"bad hang request: {exc}", "invalid_request_error")
        sched: Scheduler = holder["sched"]
        sched.hang(lease_id, float(ttl))
        log("hang", id=lease_id, ttl=ttl)
        return obs.FastJSON({"hung": True, **sched.snapshot()})

    @app.delete("/admin/hang/{lease_id}")
    async def unhang(lease_id: str) -> Response:
        sched: Scheduler = holder["sched"]
        removed = sched.unhang(lease_id)
        log("unhang", id=lease_id, removed=removed)
        return obs.FastJSON({"removed": removed, **sched.snapshot()})

    async def generate(request: Request, chat: bool) -> Response:
        try:
            body = orjson.loads(await request.body())
            if not isinstance(body, dict):
                raise BadRequest("expected a JSON object")
            if chat:
                prompt: Any = chat_prompt(body.get("messages"))
            else:
                prompt = body.get("prompt")
                if isinstance(prompt, list) and len(prompt) == 1:
                    prompt = prompt[0]
                if not isinstance(prompt, str):
                    raise BadRequest("prompt: expected a string", "prompt")
            key = "max_completion_tokens" if chat and body.get("max_completion_tokens") is not None else "max_tokens"
            max_tokens = _number(body, key, 128, 1, max_model_len, integer=True)
            temperature = float(_number(body, "temperature", 1.0, 0.0, 2.0))
            stream = body.get("stream", False) is True
            opts = body.get("stream_options") or {}
            usage_chunk = stream and isinstance(opts, dict) and opts.get("include_usage") is True
            req_seed = _number(body, "seed", -1, -(2**63), 2**63 - 1, integer=True)
            min_tokens = _number(body, "min_tokens", 0, 0, max_model_len, integer=True)
        except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
            return error(400, str(exc), "invalid_request_error", param=getattr(exc, "param", None))
        ids = tok.encode(prompt) or [EOS]
        if len(ids) + max_tokens > max_model_len:
            return error(400, f"This model's maximum context length is {max_model_len} tokens. However, you "
                         f"requested {len(ids) + max_tokens} tokens ({len(ids)} in the messages, {max_tokens} in "
                         "the completion). Please reduce the length of the messages or completion.",
                         "invalid_request_error", "context_length_exceeded", "messages" if chat else "prompt")
        seq = Sequence(ids, max_tokens, temperature, seed=req_seed if req_seed >= 0 else seed * 1_000_003 + next(seeds),
                       ignore_eos=body.get("ignore_eos") is True, min_tokens=min_tokens)
        ch = _Channel()
        channels[seq.id] = ch
        sched: Scheduler = holder["sched"]
        try:
            sched.submit(seq)
        except QueueFull as exc:
            channels.pop(seq.id, None)
            return error(429, f"the engine's waiting queue is full: {exc}", "rate_limit_exceeded",
                         "rate_limit_exceeded", headers={"Retry-After": "1"})
        PROMPT_TOKENS.labels(**labels).inc(len(ids))
        WAITING.labels(**labels).set(len(sched.waiting))  # also while the loop is hung (no step updates it)
        rid = ("chatcmpl-" if chat else "cmpl-") + secrets.token_hex(12)
        created = int(time.time())
        if stream:
            return StreamingResponse(_stream(seq, ch, rid, created, chat, usage_chunk), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        try:
            parts = []
            while True:
                piece, reason = await ch.queue.get()
                if piece is not None:
                    parts.append(piece)
                if reason is not None:
                    break
        finally:
            channels.pop(seq.id, None)
            if seq.finish_reason is None:
                sched.abort(seq)
        text = "".join(parts)
        choice: dict[str, Any] = ({"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                                   "finish_reason": reason} if chat else
                                  {"index": 0, "text": text, "logprobs": None, "finish_reason": reason})
        return obs.FastJSON({"id": rid, "object": "chat.completion" if chat else "text_completion",
                             "created": created, "model": served, "choices": [choice],
                             "usage": _usage(seq)})

    async def _stream(seq: Sequence, ch: _Channel, rid: str, created: int, chat: bool,
                      usage_chunk: bool) -> AsyncIterator[bytes]:
        obj = "chat.completion.chunk" if chat else "text_completion"
        head = orjson.dumps({"id": rid, "object": obj, "created": created, "model": served})[:-1] + b',"choices":[{'
        first = head + (b'"index":0,"delta":{"role":"assistant","content":' if chat else b'"index":0,"text":')
        rest = head + (b'"index":0,"delta":{"content":' if chat else b'"index":0,"text":')
        tail = b'},"finish_reason":null}]}\n\n' if chat else b',"logprobs":null,"finish_reason":null}]}\n\n'
        pre = first
        try:
            while True:
                piece, reason = await ch.queue.get()
                if piece is not None:
                    yield b"data: " + pre + orjson.dumps(piece) + tail
                    pre = rest
                if reason == "abort":
                    return
                if reason is not None:
                    fin = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": reason} if chat else \
                        {"index": 0, "text": "", "logprobs": None, "finish_reason": reason}
                    yield b"data: " + orjson.dumps({"id": rid, "object": obj, "created": created, "model": served,
                                                   "choices": [fin]}) + b"\n\n"
                    if usage_chunk:
                        yield b"data: " + orjson.dumps({"id": rid, "object": obj, "created": created, "model": served,
                                                       "choices": [], "usage": _usage(seq)}) + b"\n\n"
                    yield b"data: [DONE]\n\n"
                    return
        finally:
            channels.pop(seq.id, None)
            if seq.finish_reason is None:  # the client went away: free the batch slot
                sched: Scheduler = holder["sched"]
                sched.abort(seq)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await generate(request, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await generate(request, chat=False)

    return app


def _usage(seq: Sequence) -> dict[str, int]:
    return {"prompt_tokens": len(seq.prompt), "completion_tokens": len(seq.output),
            "total_tokens": len(seq.prompt) + len(seq.output)}


def model_path(model: Path, name: str) -> tuple[Path, str]:
    """The model file and its served name: ``--model`` is a ``.npz`` file, or a models directory (the lab's
    ``models/``, or its ``llm/`` under it) whose ``<size>.npz`` is taken, the size being the last
    ``-`` part of ``--name`` when it is one of ``primary``/``fallback`` (``llm-fallback`` → fallback), else primary."""
    if model.is_dir():
        size = name.rsplit("-", 1)[-1]
        size = size if size in SIZES else "primary"
        d = model / "llm" if (model / "llm").is_dir() else model
        return d / f"{size}.npz", size
    return model, model.stem


def main(argv: list[str] | None = None) -> None:
    p = scaffold.parser(__doc__, "llm-engine")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (the lab uses loopback only)")
    p.add_argument("--model", type=Path, required=True,
                   help="a model .npz, or a models directory (then --name picks primary or fallback)")
    p.add_argument("--served-model-name", default=None, help="the name in answers (default: the model's)")
    p.add_argument("--kv-tokens", type=int, default=4096, help="KV budget: summed context tokens of running requests")
    p.add_argument("--max-batch", type=int, default=16, help="most requests in the running batch")
    p.add_argument("--max-waiting", type=int, default=0, help="waiting queue bound (429 when full); 0: unbounded")
    p.add_argument("--max-model-len", type=int, default=0, help="prompt + max_tokens limit (default: --kv-tokens)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed of requests without their own 'seed'")
    a = p.parse_args(argv)
    for flag, v, lo in (("--kv-tokens", a.kv_tokens, 2), ("--max-batch", a.max_batch, 1),
                        ("--max-waiting", a.max_waiting, 0), ("--max-model-len", a.max_model_len, 0)):
        if v < lo:
            p.error(f"{flag}: must be >= {lo}, got {v}")
    path, served = model_path(a.model, a.name)
    try:
        model = LanguageModel.load(path)
    except (OSError, KeyError, ValueError) as exc:
        p.error(f"--model: cannot load {path}: {exc} (the lab builds it: mlchaos lab up)")
    max_len = min(a.max_model_len or a.kv_tokens, a.kv_tokens)
    app = create_app(a.name, model, served=a.served_model_name or served, kv_tokens=a.kv_tokens,
                     max_batch=a.max_batch, max_waiting=a.max_waiting, max_model_len=max_len, seed=a.seed)
    obs.serve(obs.MetricsMiddleware(app, a.name), a.port, host=a.host)


if __name__ == "__main__":
    main()
