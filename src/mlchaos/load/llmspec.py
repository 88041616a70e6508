"""The ``llm:`` block of a load: drive an OpenAI-compatible endpoint and measure it in tokens.

Example::

    load:
      rate: 5/s
      llm:
        api: chat                      # chat → /v1/chat/completions, completions → /v1/completions
        model: primary
        stream: true
        prompts: {generate: {tokens: {dist: lognormal, mean: 200, sd: 80}}}   # or {file: prompts.jsonl}
        max_tokens: {dist: uniform, min: 32, max: 128}
        stall_timeout: 30s
        slo: {ttft: 500ms, tpot: 50ms, e2e: 10s}

Generated prompts count **words as tokens** (no tokenizer ships with mlchaos and none would match every
served model's): a 200-"token" prompt is 200 words, which most BPE tokenizers split into 250–300 tokens.
A prompts file is JSONL, each line a string (a prompt), a list of chat messages, or an object with
``prompt`` or ``messages``.  Like the rest of :mod:`mlchaos.load.spec` this stays cheap to import
(pydantic only).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, model_validator

from mlchaos.plugin import StrictModel
from mlchaos.spec.types import Duration

__all__ = ["API_PATHS", "Dist", "LLMSpec", "PromptsSpec", "SLOSpec"]

API_PATHS = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}
"""The default request path of each API (a target's base URL is prepended)."""

MAX_TOKENS_CAP = 1_000_000


class Fixed(StrictModel):
    """Always ``value``."""

    dist: Literal["fixed"] = "fixed"
    value: int = Field(ge=1, le=MAX_TOKENS_CAP)


class Uniform(StrictModel):
    """Integers drawn uniformly in [min, max]."""

    dist: Literal["uniform"] = "uniform"
    min: int = Field(ge=1, le=MAX_TOKENS_CAP)
    max: int = Field(ge=1, le=MAX_TOKENS_CAP)

    @model_validator(mode="after")
    def _order(self) -> Uniform:
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) is below min ({self.min})")
        return self


class Normal(StrictModel):
    """A normal law of this mean and standard deviation, rounded, clipped to [1, cap]."""

    dist: Literal["normal"] = "normal"
    mean: float = Field(gt=0, le=MAX_TOKENS_CAP)
    sd: float = Field(ge=0, le=MAX_TOKENS_CAP)


class LogNormal(StrictModel):
    """A log-normal law of this *mean* and *standard deviation* (not those of the log): prompt and
    answer lengths of real traffic are skewed this way (a long tail of long prompts)."""

    dist: Literal["lognormal"] = "lognormal"
    mean: float = Field(gt=0, le=MAX_TOKENS_CAP)
    sd: float = Field(ge=0, le=MAX_TOKENS_CAP)


Dist = Annotated[Fixed | Uniform | Normal | LogNormal, Field(discriminator="dist")]


def _int_shorthand_in_schema(schema: dict[str, Any]) -> None:
    """The published schema accepts what the loader accepts: ``max_tokens: 64`` as well as a law (editors and
    ``tests/engine/test_examples.py`` validate files against it)."""
    law = dict(schema)
    description = law.pop("description", None)
    schema.clear()
    schema["anyOf"] = [{"type": "integer", "minimum": 1, "maximum": MAX_TOKENS_CAP,
                        "description": "shorthand for {dist: fixed, value: N}"}, law]
    if description:
        schema["description"] = description


def _dist_shorthand(v: object) -> object:
    """``max_tokens: 64`` is ``{dist: fixed, value: 64}``."""
    if isinstance(v, int) and not isinstance(v, bool):
        return {"dist": "fixed", "value": v}
    return v


class Generate(StrictModel):
    """Prompts made of words of a fixed vocabulary, their length (in words ≈ tokens) drawn from ``tokens``."""

    tokens: Dist = Field(description="Prompt length law, in words (≈ tokens), e.g. {dist: lognormal, mean: 200, sd: 80}.",
                         json_schema_extra=_int_shorthand_in_schema)
    count: int = Field(256, ge=1, le=100_000, description="Distinct prompts generated (cycled).")

    @model_validator(mode="before")
    @classmethod
    def _short(cls, data: object) -> object:
        if isinstance(data, dict) and "tokens" in data:
            data = {**data, "tokens": _dist_shorthand(data["tokens"])}
        return data


class PromptsSpec(StrictModel):
    """Where prompts come from: a JSONL file (cycled in order) or generated."""

    file: str | None = Field(None, description="JSONL: one prompt string, message list, or {prompt|messages} per line.")
    generate: Generate | None = Field(None, description="Generate prompts with a length distribution.")

    @model_validator(mode="after")
    def _one(self) -> PromptsSpec:
        if (self.file is None) == (self.generate is None):
            raise ValueError("give exactly one of 'file' or 'generate'")
        return self


class SLOSpec(StrictModel):
    """Per-request service-level objectives; a completed request meeting all of them is 'good' (goodput)."""

    ttft: Duration | None = Field(None, description="Time to first token, e.g. 500ms.")
    tpot: Duration | None = Field(None, description="Time per output token after the first, e.g. 50ms.")
    e2e: Duration | None = Field(
        None, validation_alias=AliasChoices("e2e", "e2el"), description="End-to-end latency (vLLM: e2el), e.g. 10s."
    )


class LLMSpec(StrictModel):
    """An OpenAI-compatible request stream: what to ask, how to read the answer, what counts as good."""

    api: Literal["chat", "completions"] = Field("chat", description="chat/completions or completions.")
    model: str = Field("default", description="The request's 'model' field.")
    stream: bool = Field(True, description="Ask for a Server-Sent Events stream (TTFT/ITL need it).")
    include_usage: bool = Field(
        True, description="Ask for stream_options.include_usage (output tokens from the server's count)."
    )
    temperature: float | None = Field(None, ge=0, le=2, description="Sampling temperature sent, if any.")
    prompts: PromptsSpec = Field(
        default_factory=lambda: PromptsSpec.model_validate({"generate": {"tokens": 32}}),
        description="Prompts: {file: p.jsonl} or {generate: {tokens: DIST}} (default 32 words).",
    )
    max_tokens: Dist = Field(default_factory=lambda: Fixed(value=64), description="max_tokens law (default 64).",
                             json_schema_extra=_int_shorthand_in_schema)
    stall_timeout: Duration = Field(
        30.0, gt=0, description="The client's own limit between two events (and before the first): fires 'stall'."
    )
    slo: SLOSpec = Field(default_factory=SLOSpec, description="Goodput SLOs: ttft, tpot, e2e.")
    seed: int = Field(0, ge=0, lt=2**32, description="Seed of the generated prompts and max_tokens draws.")
    extra: dict[str, object] = Field(default_factory=dict, description="Extra JSON fields merged into every request.")

    @model_validator(mode="before")
    @classmethod
    def _short(cls, data: object) -> object:
        if isinstance(data, dict) and "max_tokens" in data:
            data = {**data, "max_tokens": _dist_shorthand(data["max_tokens"])}
        return data

    @property
    def path(self) -> str:
        return API_PATHS[self.api]
