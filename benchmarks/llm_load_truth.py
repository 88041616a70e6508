"""Ground truth for part A of ``bench_llm_load.py``: a server that stamps what it did, a reference client.

Why a second server: the capacity server (one timer for all streams, ``bench_llm_load._Server``) writes the
first event at the first 20 ms tick after the TTFT is due, so the server's own TTFT is 50–70 ms depending
on where a request lands in the tick.  Two clients whose arrivals sit at different tick phases then see
different servers, by up to a tick, and at 160 requests a p99 is the second-largest sample: the old part A
compared noise.  Here every stream has its own timers (first event at receipt + TTFT, then every ITL, on
absolute times so nothing drifts) and the server **stamps** (``time.monotonic()``, CLOCK_MONOTONIC: one
clock for every process of the machine) when it received each request and when it wrote each event.  So
every figure a client reports can be set against what really happened to *its own* requests:

* server TTFT = first event written − request received (the truth of the server's side);
* the truth in a client's own definition = first event written − the moment that client starts its clock:
  the *intended* send time for mlchaos (open loop: its lag is in it), the moment just before
  ``session.post`` for the reference (vLLM's ``st``).  What a client reports above that is its own
  delivery delay (kernel, wake-up, parsing): the smaller, the closer to the truth;
* ITL truth = the server's gaps between two writes of one stream.

Requests carry their id in the prompt (``m17``, ``r17``), so the server knows whose request it served.

The reference is a plain aiohttp client written after vLLM's ``async_request_openai_chat_completions``
(``vllm/benchmarks/lib/endpoint_request_func.py``: clock started just before ``session.post``, one
timestamp per SSE message before its JSON is parsed, ITL between messages with ``choices``), on the stdlib
event loop as vLLM's ``bench serve`` runs it, open loop with Poisson arrivals (vLLM's default): one task
per planned arrival.  It also records its planned send time, so its own lag is known.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from typing import Any

import numpy as np

_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
_CHUNK = (b'data: {"id":"cmpl-bench","object":"chat.completion.chunk","created":0,"model":"bench",'
          b'"choices":[{"index":0,"delta":{"content":"tok "},"finish_reason":null}]}\n\n')
_ID = re.compile(rb'"content":\s*"([mras])(\d+)"')


def _c(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


class _TruthStream(asyncio.Protocol):
    """One connection; requests on it are served one after the other (keep-alive), each with its own timers."""

    def __init__(self, srv: TruthServer) -> None:
        self.srv = srv
        self.buf = b""
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()  # the moment the request reached the server (its last bytes, in practice all)
        self.buf += data
        i = self.buf.find(b"\r\n\r\n")
        if i < 0:
            return
        n = 0
        for line in self.buf[:i].lower().split(b"\r\n"):
            if line.startswith(b"content-length:"):
                n = int(line.split(b":")[1])
        if len(self.buf) < i + 4 + n:
            return
        body, self.buf = self.buf[i + 4:i + 4 + n], self.buf[i + 4 + n:]
        m = _ID.search(body)
        rec: list[Any] = [m.group(1).decode() if m else "?", int(m.group(2)) if m else -1, now, []]
        self.srv.records.append(rec)
        if rec[0] not in self.srv.seen:  # a client's first request: the bench starts the others on it
            self.srv.seen.add(rec[0])
            open(f"{self.srv.out}.first-{rec[0]}", "w").close()
        self.transport.write(_HEAD)
        self.srv.schedule(self, rec, now)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


class TruthServer:
    """Streams of ``n`` events, the first ``ttft`` after receipt, then one every ``itl``; every write stamped."""

    def __init__(self, ttft: float, itl: float, n: int, out: str) -> None:
        self.ttft, self.itl, self.n, self.out = ttft, itl, n, out
        self.seen: set[str] = set()
        self.records: list[list[Any]] = []  # [client tag, id, received, [write stamps]]
        self.chunk = _c(_CHUNK)
        tail = (b'data: {"id":"cmpl-bench","object":"chat.completion.chunk","created":0,"model":"bench",'
                b'"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}\n\n')
        usage = b'data: {"choices":[],"usage":{"prompt_tokens":8,"completion_tokens":%d}}\n\n' % n
        self.end = _c(tail) + _c(usage) + _c(b"data: [DONE]\n\n") + b"0\r\n\r\n"

    def schedule(self, proto: _TruthStream, rec: list[Any], received: float) -> None:
        loop = asyncio.get_running_loop()
        due0 = received + self.ttft

        def fire(k: int) -> None:
            if proto.transport is None:
                return
            now = time.monotonic()
            proto.transport.write(self.chunk if k < self.n - 1 else self.chunk + self.end)
            rec[3].append(now)
            if k + 1 < self.n:  # absolute due times: a late write does not push the next one
                loop.call_later(max(0.0, due0 + (k + 1) * self.itl - time.monotonic()), fire, k + 1)

        loop.call_later(max(0.0, due0 - time.monotonic()), fire, 0)


async def serve(ttft: float, itl: float, n: int, out: str) -> None:
    """Serve until stdin closes, then write the records to ``out`` (JSON)."""
    srv = TruthServer(ttft, itl, n, out)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _TruthStream(srv), "127.0.0.1", 0, backlog=4096)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()
    with open(out, "w") as fh:
        json.dump(srv.records, fh)


# -- the reference client ----------------------------------------------------------------------------------

async def reference(url: str, rate: float, duration: float, seed: int, max_tokens: int,
                    tag: str = "r") -> list[list[Any]]:
    """Open-loop Poisson load; per request ``[id, planned, st, first token or None, [ITLs], [other ITLs]]``.

    Times are monotonic seconds.  vLLM appends an ITL for every chunk with ``choices``, also one whose delta
    has no content (here the ``finish_reason`` chunk, written with the last token: a gap of ~0); mlchaos
    counts content events only.  The two are kept apart so that the comparison uses one definition.
    """
    import aiohttp

    recs: list[list[Any]] = []

    async def one(session: aiohttp.ClientSession, k: int, planned: float) -> None:
        body = {"model": "bench", "messages": [{"role": "user", "content": f"{tag}{k}"}], "max_tokens": max_tokens,
                "stream": True, "stream_options": {"include_usage": True}}
        rec: list[Any] = [k, planned, 0.0, None, [], []]
        recs.append(rec)
        st = time.monotonic()
        rec[2] = st
        last = st
        async with session.post(url, json=body) as resp:
            buf = b""
            async for chunk in resp.content.iter_any():
                buf += chunk
                while b"\n\n" in buf:
                    msg, buf = buf.split(b"\n\n", 1)
                    data = msg.strip().removeprefix(b"data: ")
                    if not data or data == b"[DONE]":
                        continue
                    ts = time.monotonic()
                    if choices := json.loads(data).get("choices"):
                        if rec[3] is None:
                            rec[3] = ts
                        else:
                            (rec[4] if choices[0]["delta"].get("content") else rec[5]).append(ts - last)
                        last = ts

    gaps = np.random.default_rng(seed).exponential(1.0 / rate, int(rate * duration * 2) + 100)
    offsets = np.cumsum(gaps) - gaps[0]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        t0 = time.monotonic()
        tasks = []
        for k, off in enumerate(offsets[offsets < duration].tolist()):
            await asyncio.sleep(max(0.0, t0 + off - time.monotonic()))
            tasks.append(asyncio.create_task(one(session, k, t0 + off)))
        await asyncio.gather(*tasks, return_exceptions=True)
    return recs


# -- AIPerf (NVIDIA), when it is installed in a venv of its own ----------------------------------------------

TOKENIZER = """
import sys
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast
vocab = {w: i for i, w in enumerate(["[UNK]", "tok", *"abcdefghijklmnopqrstuvwxyz0123456789"])}
tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
tk.pre_tokenizer = pre_tokenizers.Whitespace()
PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]").save_pretrained(sys.argv[1])
"""
"""A word-level tokenizer written locally: AIPerf needs one, and both its ``builtin`` (tiktoken) and a Hugging
Face name would be downloaded.  Token counts do not enter TTFT or ITL."""


def aiperf_command(aiperf: str, base: str, rate: float, duration: float, seed: int, tokenizer: str,
                   dataset: str, artifacts: str) -> list[str]:
    """AIPerf's ``profile``: the same stream, Poisson arrivals, prompts ``a0``, ``a1``, ... in order."""
    return [aiperf, "profile", "--model", "bench", "--url", base, "--endpoint-type", "chat", "--streaming",
            "--tokenizer", tokenizer, "--input-file", dataset, "--custom-dataset-type", "single_turn",
            "--dataset-sampling-strategy", "sequential", "--request-rate", str(rate), "--arrival-pattern",
            "poisson", "--benchmark-duration", str(duration), "--benchmark-grace-period", "10",
            "--random-seed", str(seed), "--ui-type", "none", "--no-server-metrics", "--no-gpu-telemetry",
            "--workers-max", "1", "--record-processors", "1", "--export-level", "raw",
            "--artifact-dir", artifacts, "--use-legacy-max-tokens", "--output-tokens-mean", "20"]


def aiperf_records(raw_jsonl: str) -> list[list[Any]]:
    """AIPerf's raw records in the reference's shape ``[id, credit issued, start, first token, ITLs, other]``.

    AIPerf stamps each request's start and each SSE message with ``perf_counter_ns`` (CLOCK_MONOTONIC on
    Linux: the server's clock); its TTFT and ``inter_chunk_latency`` are these stamps' differences, which is
    what is recomputed here (its own ``inter_token_latency`` is a per-request mean, i.e. TPOT).  In place
    of a planned time there is the moment its timing service issued the request's credit.
    """
    recs: list[list[Any]] = []
    with open(raw_jsonl) as fh:
        for line in fh:
            r = json.loads(line)
            meta = r.get("metadata", {})
            if r.get("status") != 200 or meta.get("was_cancelled"):
                continue
            m = _ID.search(json.dumps(r.get("payload", {})).encode())
            if not m:
                continue
            st = r["start_perf_ns"] / 1e9
            rec: list[Any] = [int(m.group(2)), st - (meta["request_start_ns"] - meta["credit_issued_ns"]) / 1e9,
                              st, None, [], []]
            last = st
            for resp in r.get("responses", []):
                for pk in resp.get("packets", []):
                    if pk.get("name") != "data" or pk.get("value") in (None, "[DONE]"):
                        continue
                    choices = json.loads(pk["value"]).get("choices")
                    if not choices:
                        continue
                    ts = resp["perf_ns"] / 1e9
                    if rec[3] is None:
                        rec[3] = ts
                    else:
                        (rec[4] if choices[0].get("delta", {}).get("content") else rec[5]).append(ts - last)
                    last = ts
            recs.append(rec)
    return recs


# -- the comparison ----------------------------------------------------------------------------------------

def q(values: Any, p: float) -> float | None:
    """Nearest-rank quantile (numpy's ``inverted_cdf``, as the load generator's histograms), in ms."""
    v = np.asarray(values, dtype=np.float64)
    return round(float(np.quantile(v, p, method="inverted_cdf")) * 1e3, 3) if v.size else None


def _pq(values: Any) -> dict[str, float | None]:
    return {"n": int(np.asarray(values).size), "p50": q(values, 0.5), "p99": q(values, 0.99), "max": q(values, 1.0)}


def _d(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


def _client_block(srv: dict[tuple[str, int], tuple[float, list[float]]], recs: list[list[Any]],
                  tag: str) -> dict[str, Any]:
    """A reference's figures (``recs`` as :func:`reference` returns them) next to the truth of its requests."""
    ttft, up, truth, s_ttft, down, gaps, itl, lag, openl, empty = ([] for _ in range(10))
    for k, planned, st, first, itls, other in recs:
        lag.append(st - planned)
        itl.extend(itls)
        empty.extend(other)
        if first is None or (tag, k) not in srv:
            continue
        recv, w = srv[(tag, k)]
        ttft.append(first - st)
        openl.append(first - planned)
        up.append(recv - st)
        truth.append(w[0] - st)
        s_ttft.append(w[0] - recv)
        down.append(first - w[0])
        gaps.extend(np.diff(w).tolist())
    return {"ttft": _pq(ttft), "itl": _pq(itl), "itl_as_vllm_counts": _pq(itl + empty),
            "ttft_from_planned": _pq(openl), "truth_ttft": _pq(truth), "server_ttft": _pq(s_ttft),
            "start_to_received": _pq(up), "first_write_to_read": _pq(down), "lag": _pq(lag),
            "truth_itl": _pq(gaps)}


def compare(server: list[list[Any]], mlchaos_intended: list[float], mlchaos_report: dict[str, Any],
            refs: dict[str, tuple[list[list[Any]], str]]) -> dict[str, Any]:
    """Each client's TTFT/ITL against the server's stamps for its own requests (all figures ms).

    ``mlchaos_intended[k]``: the intended send time of mlchaos's k-th request (its body carries ``m{k}``);
    ``refs``: name -> (records, the tag of its ids).  ``truth_ttft`` is the truth in each client's own
    definition (first event written − intended time for mlchaos, − ``st`` for a reference); ``truth_itl``
    the server's write gaps of that client's streams.
    """
    srv = {(who, i): (recv, w) for who, i, recv, w in server if w}
    m_up, m_truth, m_srv, m_gaps = [], [], [], []
    for (who, i), (recv, w) in srv.items():
        if who == "m" and 0 <= i < len(mlchaos_intended):
            m_up.append(recv - mlchaos_intended[i])
            m_truth.append(w[0] - mlchaos_intended[i])
            m_srv.append(w[0] - recv)
            m_gaps.extend(np.diff(w).tolist())
    mt, mi = mlchaos_report["ttft_ms"], mlchaos_report["itl_ms"]
    out: dict[str, Any] = {
        "mlchaos": {"ttft": {"n": mt["count"], "p50": mt["p50"], "p99": mt["p99"], "max": mt["max"]},
                    "itl": {"n": mi["count"], "p50": mi["p50"], "p99": mi["p99"], "max": mi["max"]},
                    "truth_ttft": _pq(m_truth), "server_ttft": _pq(m_srv), "intended_to_received": _pq(m_up),
                    "truth_itl": _pq(m_gaps)}}
    for name, (recs, tag) in refs.items():
        out[name] = _client_block(srv, recs, tag)
    names = ["mlchaos", *refs]
    pairs = [("mlchaos", n) for n in refs] + ([(names[1], names[2])] if len(names) == 3 else [])
    out["diffs"] = {f"{a}-{b}": {f"{k}_{p}": _d(out[a][k][p], out[b][k][p]) for k in ("ttft", "itl")
                                 for p in ("p50", "p99")} for a, b in pairs}
    for n in refs:  # one definition on both sides: the reference's TTFT from its planned time, lag included
        out["diffs"][f"mlchaos-{n}"].update({f"ttft_open_{p}": _d(out["mlchaos"]["ttft"][p],
                                                                  out[n]["ttft_from_planned"][p]) for p in ("p50", "p99")})
    out["above_truth"] = {n: {f"{k}_{p}": _d(out[n][k][p], out[n][f"truth_{k}"][p]) for k in ("ttft", "itl")
                              for p in ("p50", "p99")} for n in names}
    return out


def main() -> None:
    if sys.argv[1] == "--serve":
        import contextlib

        with contextlib.suppress(ImportError):
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.run(serve(float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]))
    elif sys.argv[1] == "--reference":
        url, rate, duration, seed, mt, tag = sys.argv[2:8]
        print(json.dumps(asyncio.run(reference(url, float(rate), float(duration), int(seed), int(mt), tag))))


if __name__ == "__main__":
    main()
