"""LLM load: token-level figures against streams whose timing is known by construction, and open loop.

The scripted server (tests/load/llm_server.py) writes content event k of a request at exactly
``ttft + k·itl`` after it read the request, each flushed at once.  The client measures from the
*intended* send time, so its figures may exceed the script by the generator's schedule lag plus the
loopback and parsing time, and the server's own wake-up delay: a few ms on an idle machine, tens of ms on
this shared 2-core machine at a load average of 9 (measured: a 100 ms TTFT read 101–129 ms, one 152 ms).
Stated tolerance: medians within 30 ms above and 2 ms below the script (the script is a floor: an event
cannot come early; a gap between two events is not, so ITL/TPOT get ±30 ms); SLO thresholds sit 200 ms from both populations, so goodput counts are exact.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlchaos.load import LoadRunner, LoadSpec
from mlchaos.load.llmrequests import build_bodies, draw, read_prompts
from mlchaos.load.llmspec import LLMSpec

HERE = Path(__file__).parent
TOL_ABOVE = 0.030
TOL_BELOW = 0.002


@pytest.fixture(scope="module")
def llm_url() -> Iterator[str]:
    p = subprocess.Popen([sys.executable, str(HERE / "llm_server.py")], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        line = p.stdout.readline()
        assert line.startswith("PORT "), line
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        if p.stdin is not None:
            p.stdin.close()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def prompts(tmp_path: Path, *scripts: str) -> str:
    f = tmp_path / "prompts.jsonl"
    f.write_text("".join(json.dumps(f"hello @@ {s}") + "\n" for s in scripts))
    return str(f)


def run(spec: dict[str, Any], url: str) -> Any:
    async def go() -> Any:
        runner = LoadRunner(LoadSpec.model_validate(spec), url)
        await runner.start()
        return await runner.wait()

    return asyncio.run(go())


def near(value: float | None, script: float) -> bool:
    return value is not None and script - TOL_BELOW <= value <= script + TOL_ABOVE


def near_gap(value: float | None, script: float) -> bool:
    """A gap between two events is no floor: a late event shortens the next gap by as much."""
    return value is not None and abs(value - script) <= TOL_ABOVE


def test_timing_known_by_construction(llm_url: str, tmp_path: Path) -> None:
    """TTFT, ITL, TPOT, e2e, tokens and goodput of streams with scripted timing (half miss the TTFT SLO)."""
    f = prompts(tmp_path, "ttft=0.05 itl=0.02 n=10", "ttft=0.5 itl=0.02 n=10")
    rep = run({"rate": "20/s", "duration": "2s", "lag_budget": "50ms",
               "llm": {"prompts": {"file": f}, "stall_timeout": "2s", "slo": {"ttft": "250ms", "tpot": "30ms"}}},
              llm_url)
    llm = rep.llm
    assert llm["ended"] == llm["completed"] == llm["done_marker"] == 40, llm
    assert llm["errors"] == {} and llm["stream_completion"] == 1.0
    assert llm["output_tokens"] == 400  # the usage chunk's completion_tokens
    ttft, itl, tpot, e2e = (llm[k] for k in ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms"))
    assert ttft["count"] == 40 and itl["count"] == 40 * 9 and tpot["count"] == 40
    # two populations of 20: p25 and p75 (nearest rank 10 and 30 of 40) are their medians
    assert near(ttft["p25"] / 1e3, 0.05) and near(ttft["p75"] / 1e3, 0.5), ttft
    assert near_gap(itl["p50"] / 1e3, 0.02) and near_gap(tpot["p50"] / 1e3, 0.02), (itl, tpot)
    assert near(e2e["p25"] / 1e3, 0.05 + 9 * 0.02) and near(e2e["p75"] / 1e3, 0.5 + 9 * 0.02), e2e
    # goodput: exactly the ttft=0.05 half meets ttft ≤ 250 ms (and tpot 20 ms ≤ 30 ms) by construction
    assert llm["good"] == 20 and llm["goodput"] == pytest.approx(20 / rep.duration)


def test_error_kinds_by_construction(llm_url: str, tmp_path: Path) -> None:
    """Each way a stream can end is counted as its own kind; stream completion leaves HTTP refusals out."""
    f = prompts(tmp_path, "n=3 itl=0.005 ttft=0.01", "n=3 ttft=0.01 end=stall", "n=3 ttft=0.01 end=cut",
                "n=3 ttft=0.01 end=clean", "n=3 ttft=0.01 end=error", "n=3 ttft=0.01 end=malformed",
                "status=429", "n=3 ttft=0.01 usage=0", "n=3 ttft=0.01 nostream=1")
    rep = run({"rate": "18/s", "duration": "1s", "lag_budget": "50ms",
               "llm": {"prompts": {"file": f}, "stall_timeout": "0.5s"}}, llm_url)
    llm = rep.llm
    assert llm["errors"] == {"stall": 2, "cut": 4, "error_event": 2, "malformed": 2, "status": 2}, llm
    # a JSON answer to a streaming request completes, as a non-streaming one, but not "with [DONE]"
    assert llm["ended"] == 18 and llm["completed"] == 6 and llm["done_marker"] == 4
    assert llm["stream_completion"] == pytest.approx(4 / 16)
    assert llm["output_tokens"] == 8 * 2 * 3  # the usage=0 streams count their content events
    # the stalled streams ended at the client's stall timeout, not before, and are in the e2e tail
    assert 0.5 <= llm["e2e_ms"]["max"] / 1e3 <= 0.5 + 0.01 + 0.15
    assert rep.errors["timeout"] == 2  # a stall is the client's timeout for the plain error counts too


def test_open_loop_through_stalls(llm_url: str, tmp_path: Path) -> None:
    """Every stream stalls after one token: arrivals keep the rate, each stall ends at the client's timeout."""
    f = prompts(tmp_path, "n=1 ttft=0.01 end=stall")
    rep = run({"rate": "20/s", "duration": "2s", "lag_budget": "50ms",
               "llm": {"prompts": {"file": f}, "stall_timeout": "1s"}}, llm_url)
    assert rep.scheduled == rep.dispatched == rep.sent == 40  # none held back by the 20 streams in flight
    # sends went out on time (a generator waiting on the stalls would be ~1 s late); p90, not p99: on this
    # shared machine one send in 40 was once 72 ms late, the host's doing
    assert rep.lag.quantile(0.9) < 0.05
    assert rep.peak_connections >= 20  # one connection per stalled stream: a stall holds only its own
    assert sum(row["sent"] for row in rep.series) == 40
    llm = rep.llm
    assert llm["errors"] == {"stall": 40} and llm["completed"] == 0 and llm["good"] == 0
    assert 1.0 <= llm["e2e_ms"]["p50"] / 1e3 <= 1.0 + 0.1  # the sweep runs every 50 ms
    assert llm["ttft_ms"]["count"] == 40 and near(llm["ttft_ms"]["p50"] / 1e3, 0.01)


def test_not_streaming_and_completions_api(llm_url: str) -> None:
    """completions, stream: false: TTFT is the whole answer's time, tokens from usage, no ITL/TPOT."""
    rep = run({"rate": "10/s", "duration": "1s", "lag_budget": "50ms",
               "llm": {"api": "completions", "stream": False,
                       "prompts": {"generate": {"tokens": 4}}}}, llm_url)  # default script: ttft 0.05, 10 × 0.01
    llm = rep.llm
    assert rep.url.endswith("/v1/completions")
    assert llm["completed"] == 10 and llm["output_tokens"] == 100 and llm["stream_completion"] == 0.0
    assert near(llm["ttft_ms"]["p50"] / 1e3, 0.05 + 9 * 0.01) and llm["itl_ms"]["count"] == 0


def test_spec_and_bodies(tmp_path: Path) -> None:
    spec = LoadSpec.model_validate({"rate": "1/s", "llm": {"model": "m", "max_tokens": {"dist": "uniform", "min": 4,
                                                                                            "max": 8},
                                                           "prompts": {"generate": {"tokens": {"dist": "lognormal",
                                                                                               "mean": 200, "sd": 80},
                                                                                    "count": 400}}}})
    assert spec.request.path == "/v1/chat/completions" and spec.request.method == "POST" and spec.timeout == 60.0
    assert spec.llm is not None
    bodies = [json.loads(b) for b in build_bodies(spec.llm)]
    assert len(bodies) == 400 and all(4 <= b["max_tokens"] <= 8 and b["stream"] for b in bodies)
    words = [len(b["messages"][0]["content"].split()) for b in bodies]
    assert 180 < sum(words) / len(words) < 220  # words ≈ tokens, log-normal of mean 200
    assert bodies[0]["stream_options"] == {"include_usage": True}
    import numpy as np

    assert draw(LLMSpec.model_validate({"max_tokens": 7}).max_tokens, 3, np.random.default_rng(0)) == [7, 7, 7]
    with pytest.raises(ValueError, match=r"max .* is below min"):
        LLMSpec.model_validate({"max_tokens": {"dist": "uniform", "min": 9, "max": 3}})
    with pytest.raises(ValueError, match="exactly one"):
        LLMSpec.model_validate({"prompts": {}})
    with pytest.raises(ValueError, match="drop 'body'"):
        LoadSpec.model_validate({"rate": "1/s", "body": {"x": 1}, "llm": {}})
    bad = tmp_path / "bad.jsonl"
    bad.write_text('"ok"\n[{"role": "user", "content": "hi"}]\n{"prompt": "p"}\n42\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:4: expected a prompt"):
        read_prompts(str(bad))


@pytest.mark.slow  # two generator runs: ~6 s on the shared machine
def test_cli_llm(llm_url: str, tmp_path: Path) -> None:
    """``mlchaos load BASE_URL --llm chat``: the API path is added, the token table printed; bad flags exit 2."""
    from typer.testing import CliRunner

    from mlchaos.cli import app

    f = prompts(tmp_path, "ttft=0.02 itl=0.01 n=5")
    r = CliRunner().invoke(app, ["load", llm_url, "--llm", "chat", "--prompts", f, "--rate", "10/s", "--duration",
                                 "1s", "--lag-budget", "50ms", "--slo", "ttft=500ms,e2e=2s", "--json"])
    rep = json.loads(r.stdout)
    assert rep["url"].endswith("/v1/chat/completions") and rep["llm"]["completed"] == 10, r.output
    assert rep["llm"]["good"] == 10 and rep["llm"]["output_tokens"] == 50
    r = CliRunner().invoke(app, ["load", llm_url, "--llm", "chat", "--prompts", f, "--rate", "10/s", "--duration",
                                 "500ms", "--lag-budget", "50ms"])
    assert "TTFT" in r.stdout and "goodput" in r.stdout, r.output
    for args, msg in ((["--max-tokens", "uniform:9"], "--max-tokens: expected"),
                      (["--slo", "ttfb=1s"], "--slo: expected"),
                      (["--max-tokens", "uniform:9:3"], "--max-tokens: "),
                      (["--prompts", str(tmp_path / "none.jsonl")], "--prompts: "),
                      (["--llm", "embeddings"], "--llm: expected")):
        argv = ["load", llm_url, *(["--llm", "chat"] if "--llm" not in args else []), *args]
        r = CliRunner().invoke(app, argv)
        assert r.exit_code == 2 and msg in r.output, (args, r.output)


def test_sse_parsing_under_every_split() -> None:
    """Events end with \\n\\n, \\r\\n\\r\\n or \\r\\r; comments are skipped; any split of the reads gives the same events."""
    from mlchaos.load.llmclient import LLMPool, _LLMConn

    def ev(text: str) -> bytes:
        return b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": text}}]}).encode()

    wire = (ev("a") + b"\r\n\r\n" + b": ping\n\n" + ev("b") + b"\r\r" + ev("") + b"\n\n" + ev("c") + b"\n\n"
            + b'data: {"choices": [], "usage": {"completion_tokens": 3}}\r\n\r\n' + b"data: [DONE]\r\n\r\n")

    async def feed(step: int) -> tuple[int, bool, str | None, int, int]:
        pool = LLMPool("127.0.0.1", 9, [b""], sample_every=1)
        conn = _LLMConn(pool)
        conn.status, conn.body = 200, []
        conn.sse = True
        for i in range(0, len(wire), step):
            conn.now = float(i)
            conn.on_body(wire[i:i + step])
        return conn.ntok, conn.done_marker, conn.err, conn.usage, len(pool.out.itl)

    for step in (1, 2, 3, 7, 64, len(wire)):
        assert asyncio.run(feed(step)) == (3, True, None, 3, 2), step


def test_cli_progress_line_shows_tokens() -> None:
    from types import SimpleNamespace

    from rich.console import Console

    from mlchaos.cli.load import _Progress
    from mlchaos.load.histogram import LogHistogram
    from mlchaos.load.llmstats import LLMStats

    con = Console(record=True, width=200)
    h = LogHistogram.from_values
    llm = LLMStats(ttft=h([0.05]), itl=h([0.02]))
    _Progress(con).feed(SimpleNamespace(done=1, status_errors=0, timeouts=0, conn=0, t=1.0, lat=h([0.3]),
                                        lag=h([0.001]), llm=llm))
    out = con.export_text()
    assert "ttft p99=50.0" in out and "itl p99=20.0" in out, out
