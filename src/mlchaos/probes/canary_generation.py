"""``canary-generation``: ask the model for a few tokens and count what streams back within a deadline.

A ``/health`` endpoint answers from the HTTP server; a generation loop that died behind it (a crashed
scheduler, a wedged GPU) leaves it answering 200 while no token is produced: the gray failure SGLang,
Triton and others have shipped.  This probe sends its own fixed short prompt, streaming, and passes only
when at least ``tokens`` content events arrive within ``within``: it sees what a user sees.

The value is the number of content events received within the deadline; without a tolerance of its own
the probe holds it to ``min: tokens``.  The detail carries the time to the first and to the ``tokens``-th
token and whether ``[DONE]`` came.  A failed canary during which the probe's own event loop stalled for
more than a tenth of the deadline judges its instrument untrustworthy (the tokens may have arrived and
waited unread): evidence of nothing, as the engine's instrument rules treat a late load generator.  One
request per evaluation, through httpx (core): it measures the
system, not a load, so it needs no pre-encoded pool.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

import orjson
from pydantic import Field, model_validator

from mlchaos.plugin import Measurement, Probe, ProbeError, ProbeSpec
from mlchaos.spec.types import Duration

__all__ = ["CanaryGenerationProbe"]

_PATHS = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}
_STALL_SHARE = 0.1


class CanaryGenerationSpec(ProbeSpec):
    probe: Literal["canary-generation"] = "canary-generation"
    url: str | None = Field(None, description="Absolute URL of the API; default: the target's URL + the API path.")
    api: Literal["chat", "completions"] = Field("chat", description="chat/completions or completions.")
    model: str = Field("default", description="The request's 'model' field.")
    prompt: str = Field("Count from one to twenty.", description="The fixed canary prompt.")
    tokens: int = Field(8, ge=1, le=4096, description="Content events that must arrive (N).")
    within: Duration = Field(5.0, gt=0, le=600, description="Deadline from the send (T).")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers (e.g. Authorization).")

    @model_validator(mode="after")
    def _default_bound(self) -> CanaryGenerationSpec:
        if self.max is None and self.min is None and self.between is None and self.equals is None:
            self.min = float(self.tokens)
        return self


class CanaryGenerationProbe(Probe):
    """Content events streamed within ``within`` for a fixed short prompt (passes at ≥ ``tokens``)."""

    Spec = CanaryGenerationSpec
    unit = ""

    def _url(self) -> str:
        spec: CanaryGenerationSpec = self.spec  # type: ignore[assignment]
        if spec.url:
            return spec.url
        try:
            return self.ctx.target(spec.target).url(_PATHS[spec.api])
        except Exception as exc:  # any target without a URL
            raise ProbeError(f"canary-generation: no URL (give 'url', or a target with one): {exc}") from None

    async def measure(self) -> Measurement:
        import httpx

        spec: CanaryGenerationSpec = self.spec  # type: ignore[assignment]
        url = self._url()
        body: dict[str, Any] = {"model": spec.model, "max_tokens": spec.tokens, "stream": True, "temperature": 0}
        if spec.api == "chat":
            body["messages"] = [{"role": "user", "content": spec.prompt}]
        else:
            body["prompt"] = spec.prompt
        state: dict[str, Any] = {"tokens": 0, "first": None, "nth": None, "done": False, "status": None, "error": None}
        t0 = time.monotonic()
        beat = asyncio.ensure_future(_heartbeat(state))
        try:
            async with asyncio.timeout(spec.within), httpx.AsyncClient(timeout=None) as client:
                await _stream(client, url, body, spec, state, t0)
        except TimeoutError:
            state["error"] = f"deadline {spec.within:g}s passed"
        except httpx.HTTPError as exc:
            state["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            beat.cancel()
        stall = state.get("stall", 0.0)
        instrument: dict[str, Any] = {"stall": round(stall, 6)}
        if state["tokens"] < spec.tokens and stall > _STALL_SHARE * spec.within:
            # the probe's own loop was held up for a tenth of the deadline: the tokens may have come and
            # waited unread, so a failed canary is not evidence (engine.instruments: a probe judges its own)
            instrument.update(ok=False, why=f"the runner's loop stalled {stall * 1e3:.3g} ms while the canary "
                                            f"waited (over 10 % of its {spec.within:g}s deadline)")
        detail = {"url": url, "within": spec.within, "need": spec.tokens, "tokens": state["tokens"],
                  "ttft": state["first"], "time_to_n": state["nth"], "done": state["done"],
                  "status": state["status"], "error": state["error"]}
        return Measurement(value=state["tokens"], samples=1, detail=detail, instrument=instrument)


async def _heartbeat(state: dict[str, Any], period: float = 0.01) -> None:
    """The worst lateness of this loop while the canary waits (its own instrument's health)."""
    loop = asyncio.get_running_loop()
    while True:
        t = loop.time()
        await asyncio.sleep(period)
        state["stall"] = max(state.get("stall", 0.0), loop.time() - t - period)


async def _stream(client: Any, url: str, body: dict[str, Any], spec: CanaryGenerationSpec, state: dict[str, Any],
                  t0: float) -> None:
    """Send the canary and count its content events into ``state`` until ``[DONE]`` or the end."""
    headers = {"Content-Type": "application/json", **spec.headers}
    async with client.stream("POST", url, content=orjson.dumps(body), headers=headers) as resp:
        state["status"] = resp.status_code
        if resp.status_code >= 400:
            state["error"] = f"HTTP {resp.status_code}"
            return
        buf = b""
        async for chunk in resp.aiter_raw():
            buf = (buf + chunk).replace(b"\r\n", b"\n")
            *events, buf = buf.split(b"\n\n")
            now = time.monotonic() - t0
            for ev in events:
                _count(ev, state, now, spec.tokens)
            if state["done"]:
                return


def _count(ev: bytes, state: dict[str, Any], now: float, need: int) -> None:
    for line in ev.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            state["done"] = True
            return
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            state["error"] = "malformed event"
            continue
        choices = obj.get("choices") if isinstance(obj, dict) else None
        if not choices or not isinstance(choices[0], dict):
            if isinstance(obj, dict) and obj.get("error"):
                state["error"] = "in-band error event"
            continue
        d = choices[0].get("delta")
        content = d.get("content") if isinstance(d, dict) else choices[0].get("text")
        if content:
            state["tokens"] += 1
            if state["first"] is None:
                state["first"] = now
            if state["tokens"] == need:
                state["nth"] = now
