"""Request bodies of an LLM load, built once before the run (nothing is encoded per request).

The bodies are pre-encoded JSON of OpenAI's ``chat/completions`` or ``completions`` request, one per
prompt, each with its own ``max_tokens`` draw; the client pool cycles them.  Draws are seeded
(``llm.seed``), so two runs of one experiment send the same requests.

Generated prompts are words of a fixed vocabulary, and their length law counts **words as tokens**: there
is no tokenizer here that would match every served model, and words are what a person means by "a
200-token prompt" to within the 1.2–1.5 tokens per word of common BPE tokenizers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson

from mlchaos.load.llmspec import Fixed, LLMSpec, LogNormal, Normal, Uniform

__all__ = ["build_bodies", "draw", "read_prompts"]

_TEXT = (
    "the model reads a prompt and writes an answer one token at a time while the server streams each "
    "token as an event so a client can show it before the whole answer is ready this is why time to "
    "first token and the gap between tokens matter more than the total time of one request under load"
)
_WORDS = _TEXT.split(" ")
_MAX_FILE_PROMPTS = 100_000


def draw(dist: Fixed | Uniform | Normal | LogNormal, n: int, rng: np.random.Generator) -> list[int]:
    """``n`` integer draws ≥ 1 of a length law."""
    if isinstance(dist, Fixed):
        return [dist.value] * n
    if isinstance(dist, Uniform):
        v = rng.integers(dist.min, dist.max + 1, size=n)
    elif isinstance(dist, Normal):
        v = np.rint(rng.normal(dist.mean, dist.sd, size=n))
    else:  # log-normal of this mean and sd: σ² = ln(1 + sd²/mean²), μ = ln(mean) − σ²/2
        sigma2 = math.log1p((dist.sd / dist.mean) ** 2)
        v = np.rint(rng.lognormal(math.log(dist.mean) - sigma2 / 2, math.sqrt(sigma2), size=n))
    return [max(1, int(x)) for x in v]


def read_prompts(path: str) -> list[str | list[dict[str, Any]]]:
    """Prompts of a JSONL file: a string, a message list, or ``{"prompt": ...}`` / ``{"messages": [...]}``."""
    out: list[str | list[dict[str, Any]]] = []
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            line = raw.strip()
            if not line:
                continue
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not JSON: {exc}") from None
            if isinstance(item, dict):
                item = item.get("messages", item.get("prompt"))
            if isinstance(item, str) or (
                isinstance(item, list) and item and all(isinstance(m, dict) and "role" in m for m in item)
            ):
                out.append(item)
            else:
                raise ValueError(f"{path}:{n}: expected a prompt string, a list of messages "
                                 "({\"role\": ..., \"content\": ...}) or an object with 'prompt' or 'messages'")
            if len(out) >= _MAX_FILE_PROMPTS:
                break
    if not out:
        raise ValueError(f"{path}: no prompts")
    return out


def _text(p: str | list[dict[str, Any]]) -> str:
    return p if isinstance(p, str) else "\n".join(str(m.get("content", "")) for m in p)


def build_bodies(llm: LLMSpec) -> list[bytes]:
    """The request bodies of a run, in the order the pool cycles them."""
    rng = np.random.default_rng(llm.seed)
    prompts: list[str | list[dict[str, Any]]]
    if llm.prompts.file is not None:
        prompts = read_prompts(llm.prompts.file)
    else:
        gen = llm.prompts.generate
        assert gen is not None
        lengths = draw(gen.tokens, gen.count, rng)
        vocab = np.array(_WORDS)
        prompts = [" ".join(vocab[rng.integers(0, len(vocab), size=k)].tolist()) for k in lengths]
    max_tokens = draw(llm.max_tokens, len(prompts), rng)
    bodies = []
    for p, mt in zip(prompts, max_tokens, strict=True):
        body: dict[str, Any] = {"model": llm.model, "max_tokens": mt, "stream": llm.stream}
        if llm.api == "chat":
            body["messages"] = p if isinstance(p, list) else [{"role": "user", "content": p}]
        else:
            body["prompt"] = _text(p)
        if llm.stream and llm.include_usage:
            body["stream_options"] = {"include_usage": True}
        if llm.temperature is not None:
            body["temperature"] = llm.temperature
        body.update(llm.extra)
        bodies.append(orjson.dumps(body))
    return bodies
