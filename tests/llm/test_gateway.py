"""The lab's LLM gateway, each behaviour of each variant, against scripted SSE backends over real sockets.

One naive and one mitigated gateway process serve the whole module (short
timeouts so a stall costs well under a second); the backends' script is reset
before each test.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from .conftest import start_gateway, stop
from .scripted import TOKENS, Scripted

CANARY_FLAGS = ("--canary-interval", "0.2", "--canary-timeout", "0.3")
MITIGATED_FLAGS = ("--ttft-timeout", "0.5", "--chunk-timeout", "0.4", "--max-inflight", "2", "--max-queue", "1",
                   "--queue-timeout", "0.3", "--retry-after", "2", *CANARY_FLAGS)


@pytest.fixture(scope="module")
def gateways(backends: tuple[Scripted, Scripted], tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        dict[str, str]]:
    primary, fallback = backends
    logs = tmp_path_factory.mktemp("gw")
    procs = []
    try:
        for variant, extra in (("naive", CANARY_FLAGS), ("mitigated", MITIGATED_FLAGS)):
            proc, url = start_gateway(variant, primary.url, fallback.url, logs / f"{variant}.log", *extra)
            procs.append((variant, proc, url))
        yield {v: url for v, _, url in procs}
    finally:
        for _, proc, _ in procs:
            stop(proc)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    events: list[Any] = field(default_factory=list)
    done: bool = False
    hung: bool = False
    seconds: float = 0.0

    @property
    def text(self) -> str:
        return "".join(e["choices"][0]["delta"].get("content") or "" for e in self.events
                       if isinstance(e, dict) and e.get("choices"))


def ask(url: str, stream: bool = True, max_tokens: int = TOKENS, timeout: float = 3.0) -> Answer:
    """One chat request; a stream read event by event, ``hung`` when no event came within ``timeout``."""
    body = {"model": "llm", "messages": [{"role": "user", "content": "hello"}], "max_tokens": max_tokens,
            "stream": stream}
    t0 = time.monotonic()
    with httpx.Client(timeout=httpx.Timeout(timeout, connect=2.0)) as client:
        try:
            with client.stream("POST", url + "/v1/chat/completions", json=body) as r:
                a = Answer(r.status_code, dict(r.headers))
                if not stream or r.status_code != 200:
                    a.events = [json.loads(r.read())]
                    return a
                for line in r.iter_lines():
                    if not line.startswith("data: "):
                        continue
                    data = line[6:]
                    if data == "[DONE]":
                        a.done = True
                        continue
                    try:
                        a.events.append(json.loads(data))
                    except json.JSONDecodeError:
                        a.events.append(data)
        except httpx.ReadTimeout:
            a = locals().get("a") or Answer(0, {})
            a.hung = True
        a.seconds = time.monotonic() - t0
        return a


def wait_ready(url: str, name: str, ready: bool, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = httpx.get(url + "/ready", timeout=2).json()
        if (name in body["in_rotation"]) == ready or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def metric(url: str, name: str, **labels: str) -> float:
    text = httpx.get(url + "/metrics", timeout=2).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_both_variants_relay_a_healthy_stream_event_by_event(gateways: dict[str, str], scripted: Any) -> None:
    primary, fallback = scripted
    for variant, url in gateways.items():
        a = ask(url)
        assert a.status == 200 and a.done, (variant, a)
        assert a.text == "".join(f" primary{i}" for i in range(TOKENS)), (variant, a.text)
        assert a.events[-1]["usage"]["completion_tokens"] == TOKENS
        assert a.headers["content-type"].startswith("text/event-stream")
    assert len(primary.requests) == 2 and not fallback.requests
    assert primary.requests[0]["stream"] is True and primary.requests[0]["model"] == "primary"


def test_a_non_streamed_request_is_assembled_from_the_stream(gateways: dict[str, str], scripted: Any) -> None:
    a = ask(gateways["mitigated"], stream=False)
    body = a.events[0]
    assert a.status == 200 and body["object"] == "chat.completion", body
    assert body["choices"][0]["message"]["content"] == "".join(f" primary{i}" for i in range(TOKENS))
    assert body["choices"][0]["finish_reason"] == "length" and body["usage"]["completion_tokens"] == TOKENS


def test_stall_before_the_first_token(gateways: dict[str, str], scripted: Any) -> None:
    """Naive: the client hangs.  Mitigated: TTFT timeout (0.5 s), then the fallback answers."""
    primary, _ = scripted
    primary.plan = ["stall_before"]
    naive = ask(gateways["naive"], timeout=1.5)
    assert naive.hung and not naive.events, naive
    primary.plan = ["stall_before"]
    before = metric(gateways["mitigated"], "mlchaos_llm_gateway_timeouts_total", backend="primary", kind="ttft")
    m = ask(gateways["mitigated"])
    assert m.status == 200 and m.done and m.text.startswith(" fallback0"), m
    assert 0.45 < m.seconds < 1.5, m.seconds
    assert metric(gateways["mitigated"], "mlchaos_llm_gateway_timeouts_total", backend="primary",
                  kind="ttft") == before + 1
    assert metric(gateways["mitigated"], "mlchaos_llm_gateway_fallbacks_total", source="primary",
                  target="fallback", reason="ttft_timeout") >= 1


def test_stall_mid_stream(gateways: dict[str, str], scripted: Any) -> None:
    """Naive: the started stream hangs (no fallback after the start).  Mitigated: the chunk timeout breaks
    it and the fallback resumes it: the client gets the 3 primary tokens, then the fallback's, and [DONE]."""
    primary, fallback = scripted
    primary.plan = ["stall_after:3"]
    naive = ask(gateways["naive"], timeout=1.5)
    assert naive.hung and naive.text == " primary0 primary1 primary2" and not naive.done, naive
    assert not fallback.requests
    primary.plan = ["stall_after:3"]
    m = ask(gateways["mitigated"])
    assert m.done and m.text.startswith(" primary0 primary1 primary2 fallback0"), m.text
    resumed = fallback.requests[-1]
    # resume, not restart: the text so far is appended as the assistant's turn, max_tokens reduced by 3
    assert resumed["messages"][-1] == {"role": "assistant", "content": " primary0 primary1 primary2"}
    assert resumed["max_tokens"] == TOKENS - 3
    assert m.text.count("fallback") == TOKENS - 3
    assert metric(gateways["mitigated"], "mlchaos_llm_gateway_resumes_total", backend="fallback") >= 1


@pytest.mark.parametrize("how,reason", [("cut_after:2", "cut"), ("error_event_after:2", "error_event"),
                                        ("malformed_after:2", "malformed")])
def test_a_broken_stream(gateways: dict[str, str], scripted: Any, how: str, reason: str) -> None:
    """Naive relays the break to the client as it is; mitigated resumes on the fallback."""
    primary, _ = scripted
    primary.plan = [how]
    naive = ask(gateways["naive"], timeout=1.0)
    assert not naive.done and naive.text == " primary0 primary1", naive
    primary.plan = [how]
    m = ask(gateways["mitigated"])
    assert m.done and m.text.startswith(" primary0 primary1 fallback0"), (how, m)
    assert all(isinstance(e, dict) and "error" not in e for e in m.events), m.events
    assert metric(gateways["mitigated"], "mlchaos_llm_gateway_fallbacks_total", source="primary",
                  target="fallback", reason=reason) >= 1


def test_errors_naive_retries_blindly_mitigated_falls_back_once(gateways: dict[str, str], scripted: Any) -> None:
    primary, fallback = scripted
    primary.plan = ["status:503"] * 3
    naive = ask(gateways["naive"])
    # naive: the primary 3 times in a row (two immediate blind retries), then the fallback
    assert naive.done and naive.text.startswith(" fallback0") and len(primary.requests) == 3, naive
    primary.reset(), fallback.reset()
    primary.plan = ["status:503"]
    m = ask(gateways["mitigated"])
    assert m.done and m.text.startswith(" fallback0") and len(primary.requests) == 1
    # a request the backend refuses as wrong is not retried by the mitigated gateway, and is passed through
    primary.reset(), fallback.reset()
    primary.plan = ["status:400"] * 4
    m = ask(gateways["mitigated"])
    assert m.status == 400 and m.events[0]["error"]["message"] == "scripted 400"
    assert len(primary.requests) == 1 and not fallback.requests
    primary.reset()
    primary.plan = ["status:400"] * 3
    n = ask(gateways["naive"])  # naive retries even that, blindly, then tries the fallback
    assert len(primary.requests) == 3 and n.done


def test_admission_control_answers_429_with_retry_after(gateways: dict[str, str], scripted: Any) -> None:
    """2 slots, a queue of 1: of 6 concurrent slow streams 2 run, and the others get 429 + Retry-After
    (queue full at once, or the queued one after its 0.3 s wait); naive takes them all."""
    primary, _ = scripted
    primary.plan = ["slow:0.1"] * 12
    with ThreadPoolExecutor(6) as pool:
        got = list(pool.map(lambda _: ask(gateways["mitigated"]), range(6)))
    ok = [a for a in got if a.status == 200 and a.done]
    rejected = [a for a in got if a.status == 429]
    assert len(ok) == 2 and len(rejected) == 4, [(a.status, a.done) for a in got]
    assert all(a.headers["retry-after"] == "2" for a in rejected)
    assert all(a.events[0]["error"]["type"] == "rate_limit_error" for a in rejected)
    assert min(a.seconds for a in rejected) < 0.2  # queue full: refused at once, not after a wait
    assert metric(gateways["mitigated"], "mlchaos_llm_gateway_rejected_total", reason="queue_full") >= 3
    assert metric(gateways["mitigated"], "mlchaos_llm_gateway_rejected_total", reason="queue_timeout") >= 1
    primary.plan = ["slow:0.05"] * 6
    with ThreadPoolExecutor(6) as pool:
        naive = list(pool.map(lambda _: ask(gateways["naive"]), range(6)))
    assert all(a.status == 200 and a.done for a in naive)


def test_canary_readiness_ejects_a_backend_that_generates_nothing(gateways: dict[str, str], scripted: Any) -> None:
    """The gray failure: canaries to the primary stall (its /health would still say 200).  The mitigated
    gateway takes it out of rotation (``/ready`` says so) and sends traffic straight to the fallback; it
    comes back when a canary streams again.  Naive reports the same canaries but still routes to it."""
    primary, fallback = scripted
    url = gateways["mitigated"]
    primary.canary = "stall_before"
    body = wait_ready(url, "primary", ready=False)
    assert body["in_rotation"] == ["fallback"] and body["backends"]["primary"]["last_error"], body
    assert httpx.get(url + "/ready", timeout=2).status_code == 200  # the fallback still serves
    m = ask(url)
    assert m.done and m.text.startswith(" fallback0") and not primary.requests, m
    assert metric(url, "mlchaos_llm_gateway_backend_ready", backend="primary") == 0
    naive_ready = wait_ready(gateways["naive"], "primary", ready=False)
    assert naive_ready["ready"] and "primary" not in naive_ready["in_rotation"]
    assert ask(gateways["naive"]).text.startswith(" primary0")  # naive: routed to it all the same
    fallback.canary = "stall_before"
    wait_ready(url, "fallback", ready=False)
    r = httpx.get(url + "/ready", timeout=2)
    assert r.status_code == 503 and r.json()["in_rotation"] == []
    primary.canary = fallback.canary = "ok"
    wait_ready(url, "primary", ready=True)  # each backend comes back at its own next canary: wait for both
    assert wait_ready(url, "fallback", ready=True)["in_rotation"] == ["primary", "fallback"]
    status = httpx.get(url + "/gateway/status", timeout=2).json()
    assert [c["ready"] for c in status["ejections"]["primary"]][-2:] == [False, True]


def test_metrics_count_requests_by_backend_and_outcome(gateways: dict[str, str], scripted: Any) -> None:
    url = gateways["mitigated"]
    before = metric(url, "mlchaos_llm_gateway_requests_total", backend="primary", outcome="ok")
    ask(url)
    assert metric(url, "mlchaos_llm_gateway_requests_total", backend="primary", outcome="ok") == before + 1
    text = httpx.get(url + "/metrics", timeout=2).text
    for name in ("mlchaos_llm_gateway_queue_depth", "mlchaos_llm_gateway_in_flight",
                 "mlchaos_llm_gateway_backend_attempts_total", "mlchaos_llm_gateway_canary_ttft_seconds_bucket"):
        assert re.search(rf"^{name}", text, re.M), name


def test_bad_flags_exit_2_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    from mlchaos.lab.services import llm_gateway

    for args, flag in ((["--backend", "primary"], "--backend"),
                       (["--backend", "a=http://x", "--ttft-timeout", "0"], "--ttft-timeout"),
                       (["--backend", "a=http://x", "--backend", "a=http://y"], "--backend")):
        with pytest.raises(SystemExit) as exc:
            llm_gateway.main(["--port", "1", *args])
        assert exc.value.code == 2 and flag in capsys.readouterr().err, args


def test_a_client_that_goes_away_frees_its_slot(gateways: dict[str, str], scripted: Any) -> None:
    """Streams dropped by their clients (mid-stream, on a stalled backend) give their slots back."""
    primary, _ = scripted
    url = gateways["mitigated"]
    primary.plan = ["slow:0.2"] * 2
    for _ in range(2):
        with httpx.stream("POST", url + "/v1/chat/completions", timeout=3, json={
                "model": "llm", "messages": [{"role": "user", "content": "x"}], "max_tokens": 8,
                "stream": True}) as r:
            next(r.iter_lines())  # the first event, then the client hangs up
    deadline = time.monotonic() + 3
    while httpx.get(url + "/gateway/status", timeout=2).json()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert httpx.get(url + "/gateway/status", timeout=2).json()["in_flight"] == 0
    assert ask(url).done  # both slots free again
