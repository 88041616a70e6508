"""LiteLLM's proxy, a real gateway nobody here wrote, as a target: does its fallback get traffic when the
primary's stream stalls?

Set-up (one of each, for the module, because LiteLLM takes 15-35 s to start on 2 cores): the two lab
engines (primary and fallback, their models trained here), an mlchaos fault proxy in front of each, and
``litellm --config`` with the two engines as OpenAI-compatible deployments (``model: openai/<name>``,
``api_base`` = the fault proxy), ``stream_timeout`` 2 s and ``timeout`` 10 s on each, and
``router_settings.fallbacks: [{primary: [fallback]}]`` with no retries.  Each test injects a stream fault
on the primary's proxy and counts the requests each engine received from the engines' own ``/metrics``.

What these tests assert is what LiteLLM 1.108 was observed to do (docs/llm.md, "LiteLLM"): a stall
BEFORE the first token trips ``stream_timeout`` and the request moves to the fallback, which answers the
whole stream; a stall MID-STREAM also trips ``stream_timeout`` (it bounds each wait for a chunk), but the
client gets the chunks already sent, then an in-band error event and no ``[DONE]``: the fallback never
receives the request.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from .conftest import free_port, stop, wait_http
from .engines import Engines, reserve, settled_requests, start_engines

pytestmark = pytest.mark.slow

STREAM_TIMEOUT = 2.0


@dataclass
class LiteLLM:
    url: str
    key: str
    engines: Engines
    proxies: dict[str, Any] = field(default_factory=dict)


def _config(primary: str, fallback: str, key: str) -> str:
    def deployment(name: str, base: str) -> dict[str, Any]:
        return {"model_name": name, "litellm_params": {
            "model": f"openai/{name}", "api_base": f"http://{base}/v1", "api_key": "unused",
            "stream_timeout": STREAM_TIMEOUT, "timeout": 10}}

    return json.dumps({  # JSON is YAML
        "model_list": [deployment("primary", primary), deployment("fallback", fallback)],
        "router_settings": {"fallbacks": [{"primary": ["fallback"]}], "num_retries": 0},
        "litellm_settings": {"num_retries": 0, "telemetry": False},
        "general_settings": {"master_key": key},
    })


@pytest.fixture(scope="module")
def litellm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiteLLM]:
    """LiteLLM starts first (its start is the slow part), while the engines' models train."""
    from mlchaos.proxy import spawn

    work = tmp_path_factory.mktemp("litellm")
    ports = reserve()
    with spawn(upstream=ports.addr("primary"), mode="http") as pp, \
            spawn(upstream=ports.addr("fallback"), mode="http") as fp:
        key = "sk-" + secrets.token_hex(24)
        cfg = work / "config.yaml"
        cfg.write_text(_config(pp.listen_addr, fp.listen_addr, key))
        port = free_port()
        # no network here: LiteLLM must not try to fetch its model cost map at import
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False"}
        with (work / "litellm.log").open("wb") as log:
            proc = subprocess.Popen(["litellm", "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port)],
                                    env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work)
        url = f"http://127.0.0.1:{port}"
        try:
            with start_engines(work, ports) as engines:
                wait_http(url + "/health/liveliness", timeout=120, proc=proc)
                yield LiteLLM(url, key, engines, {"primary": pp, "fallback": fp})
        except BaseException:
            print((work / "litellm.log").read_text()[-3000:])
            raise
        finally:
            stop(proc)


@dataclass
class Streamed:
    status: int
    contents: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    models: set[str] = field(default_factory=set)
    seconds: float = 0.0


def ask(lt: LiteLLM, timeout: float = 15.0) -> Streamed:
    t0 = time.monotonic()
    body = {"model": "primary", "messages": [{"role": "user", "content": "return the value of"}],
            "max_tokens": 12, "stream": True, "ignore_eos": True}
    with httpx.stream("POST", lt.url + "/v1/chat/completions", json=body, timeout=timeout,
                      headers={"Authorization": f"Bearer {lt.key}"}) as r:
        out = Streamed(r.status_code)
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                out.done = True
                continue
            ev = json.loads(line[6:])
            if "error" in ev:
                out.errors.append(ev["error"])
                continue
            out.models.add(ev.get("model", ""))
            for c in ev.get("choices", []):
                if (c.get("delta") or {}).get("content"):
                    out.contents.append(c["delta"]["content"])
    out.seconds = time.monotonic() - t0
    return out


def counts(lt: LiteLLM) -> dict[str, int]:
    return {n: settled_requests(lt.engines.url(n)) for n in ("primary", "fallback")}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in before}


def test_healthy_streams_go_to_the_primary(litellm: LiteLLM) -> None:
    before = counts(litellm)
    s = ask(litellm)
    assert s.status == 200 and s.done and s.contents and not s.errors, s
    assert delta(before, counts(litellm)) == {"primary": 1, "fallback": 0}


def _ask_while_primary_stalls(litellm: LiteLLM, after_events: int) -> tuple[Any, Any, dict[str, Any]]:
    """One streamed request while the primary's proxy stalls streams after ``after_events`` events (fault removed
    after): the per-engine request counts before it, the client's view, the fault's stats."""
    pp = litellm.proxies["primary"]
    fid = pp.client.add({"kind": "stream-stall", "after_events": after_events}, ttl=30)
    try:
        before = counts(litellm)
        s = ask(litellm)
        stats = pp.client.stats(fid)
    finally:
        pp.client.remove(fid)
    return before, s, stats


def test_stall_before_the_first_token_falls_back(litellm: LiteLLM) -> None:
    """``stream_timeout`` bounds the wait for the first chunk; the request then goes to the fallback."""
    before, s, stats = _ask_while_primary_stalls(litellm, after_events=0)
    assert stats["affected"] >= 1, stats
    assert delta(before, counts(litellm)) == {"primary": 1, "fallback": 1}
    assert s.status == 200 and s.done and s.contents and not s.errors, s
    assert STREAM_TIMEOUT <= s.seconds < STREAM_TIMEOUT + 6, s.seconds


def test_stall_mid_stream_is_not_failed_over(litellm: LiteLLM) -> None:
    """After the first chunks LiteLLM is committed: the stall trips ``stream_timeout`` again, and the client
    gets an in-band error event and no ``[DONE]``; the fallback receives nothing."""
    before, s, stats = _ask_while_primary_stalls(litellm, after_events=3)
    assert stats["affected"] >= 1, stats
    assert delta(before, counts(litellm)) == {"primary": 1, "fallback": 0}
    assert s.status == 200 and not s.done, s
    assert 1 <= len(s.contents) <= 3, s  # what the primary sent before the stall, nothing after
    assert s.errors and "timeout" in json.dumps(s.errors).lower(), s.errors
    assert STREAM_TIMEOUT <= s.seconds < STREAM_TIMEOUT + 6, s.seconds
