"""The ``load:`` section of an experiment, and of ``mlchaos load``.

One model serves both the engine (embedded in the experiment) and the
standalone command, so a load that was tried by hand is the load the
experiment runs.  It stays cheap to import (pydantic only): ``mlchaos
validate`` loads it without paying for numpy or the event loop.

Example::

    load:
      rate: 300/s
      arrivals: poisson
      duration: 60s
      request: {path: /predict, method: POST, body_from: data/requests.jsonl}
      profile: {type: spike, baseline: 100/s, at: 20s, length: 10s}

The request fields may also be written flat (``path:``, ``body_file:`` …
directly under ``load:``); they are moved into ``request`` before validation.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, ValidationInfo, field_validator, model_validator

from mlchaos.load.llmspec import LLMSpec
from mlchaos.plugin import StrictModel
from mlchaos.spec.types import Duration, Percent, Rate

__all__ = [
    "ConstantProfile",
    "LoadSpec",
    "Profile",
    "RampProfile",
    "RequestSpec",
    "SpikeProfile",
    "Step",
    "StepProfile",
]


#: Highest request rate accepted (per second, all processes): far above what one machine generates,
#: low enough that a typo (``1e9/s``) is an error rather than a generator that can never keep up.
MAX_RATE = 1_000_000.0
#: Generator processes allowed per core (``--force`` lifts it): more only adds scheduling noise.
PROCESSES_PER_CORE = 4
#: Absolute cap on processes, forced or not.
MAX_PROCESSES = 1024
#: Pool size cap per process (fixed or on demand): above it a process runs out of file descriptors.
MAX_CONNECTIONS = 65_536
#: Longest per-request timeout.
MAX_TIMEOUT = 3600.0
#: Default whole-request timeout of an LLM load (a stall between events is ``llm.stall_timeout``'s).
LLM_TIMEOUT = 60.0


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    import os

    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _check_rate(v: float) -> float:
    if v > MAX_RATE:
        raise ValueError(f"rate must be at most {MAX_RATE:,.0f}/s, got {v:g}/s")
    return v


class RequestSpec(StrictModel):
    """What each request looks like.  Bodies are pre-encoded once; nothing is built per request."""

    url: str | None = Field(None, description="Absolute URL; overrides the target's base URL and 'path'.")
    path: str = Field("/", description="Path relative to the target's base URL, e.g. '/predict'.")
    method: str = Field("GET", description="HTTP method; POST is implied when a body is given.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")
    body: Any = Field(
        None, description="Request body: a string is sent as is, anything else as JSON."
    )
    body_file: str | None = Field(
        None,
        validation_alias=AliasChoices("body_file", "body_from"),
        description="JSONL file, one request body per line, cycled in order (alias 'body_from').",
    )

    @field_validator("url")
    @classmethod
    def _scheme(cls, url: str | None) -> str | None:
        if url is None:
            return url
        if not url.startswith(("http://", "https://")):
            raise ValueError("only http:// and https:// URLs are supported")
        from urllib.parse import urlsplit

        try:  # a URL that cannot be connected to is bad input (exit 2), not a generator failure
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
        except ValueError as exc:
            raise ValueError(f"invalid URL: {exc}") from None
        if not parts.hostname:
            raise ValueError("invalid URL: no host")
        return url

    @model_validator(mode="after")
    def _check(self) -> RequestSpec:
        if self.body is not None and self.body_file is not None:
            raise ValueError("give either 'body' or 'body_file', not both")
        self.method = self.method.upper()
        if (self.body is not None or self.body_file is not None) and self.method == "GET":
            self.method = "POST"
        if not self.path.startswith("/"):
            self.path = "/" + self.path
        return self


class ConstantProfile(StrictModel):
    """The rate is ``load.rate`` for the whole run."""

    type: Literal["constant"] = "constant"


class RampProfile(StrictModel):
    """Linear ramp from ``start`` to ``load.rate`` over ``over``, then hold."""

    type: Literal["ramp"] = "ramp"
    start: Rate = Field(0.0, description="Rate at t=0 (default 0/s).")
    over: Duration = Field(description="Length of the ramp, e.g. '30s'.")

    _rate_bound = field_validator("start")(_check_rate)


class SpikeProfile(StrictModel):
    """A baseline with one peak at ``load.rate``: the 'simulated peak load period'."""

    type: Literal["spike"] = "spike"
    baseline: Rate = Field(description="Rate outside the peak.")
    at: Duration = Field(description="When the peak starts (after its rise).")
    length: Duration = Field(description="How long the peak holds at load.rate.")
    rise: Duration = Field(0.0, description="Linear rise (and fall) time around the peak.")

    _rate_bound = field_validator("baseline")(_check_rate)


class Step(StrictModel):
    rate: Rate
    hold: Duration = Field(alias="for", description="How long this step lasts.")

    _rate_bound = field_validator("rate")(_check_rate)


class StepProfile(StrictModel):
    """A staircase; the last step holds until the end of the run.  ``load.rate`` is ignored."""

    type: Literal["step"] = "step"
    steps: list[Step] = Field(min_length=1)


Profile = Annotated[
    ConstantProfile | RampProfile | SpikeProfile | StepProfile, Field(discriminator="type")
]

_REQUEST_KEYS = {"url", "path", "method", "headers", "body", "body_file", "body_from"}


class LoadSpec(StrictModel):
    """Open-loop HTTP load: who to hit, how often, for how long, and how to judge the generator itself."""

    target: str = Field("default", description="Target whose base URL the request path is relative to.")
    request: RequestSpec = Field(default_factory=lambda: RequestSpec.model_validate({}), description="The request sent.")
    rate: Rate = Field(description="Target (peak) request rate, e.g. '500/s'.")
    arrivals: Literal["constant", "poisson"] = Field(
        "constant", description="Inter-arrival law: evenly spaced or Poisson (exponential gaps)."
    )
    profile: Profile = Field(default_factory=ConstantProfile, description="Rate over time.")
    duration: Duration | None = Field(
        None, description="Run length; None: until stopped (the engine stops it after its phases)."
    )
    timeout: Duration = Field(5.0, gt=0, le=MAX_TIMEOUT, description="Per-request timeout, counted from the intended send time.")
    processes: int | Literal["auto"] = Field(
        "auto", description="Generator processes (rate split evenly); 'auto': one per ~20k req/s, ≤ cores."
    )
    connections: int | None = Field(
        None, ge=1, le=MAX_CONNECTIONS, description="Fixed keep-alive pool size per process; default: grows on demand."
    )
    max_connections: int | None = Field(
        None, ge=1, le=MAX_CONNECTIONS, description="Cap of the on-demand pool per process (default: peak rate × timeout, ≤ 4096)."
    )
    sample: Percent = Field(
        0.0, description="Fraction of responses whose bodies are kept for probes, e.g. '1%'."
    )
    max_samples_per_second: int = Field(200, ge=0, le=1_000_000, description="Bound on kept response bodies per second.")
    lag_budget: Duration | None = Field(
        None,
        description="Schedule lag p99 allowed before the run is INVALID; "
        "default 10% of the tightest latency bound of the hypothesis (≥ 1ms); 100ms in an experiment "
        "that bounds no latency; 1ms for 'mlchaos load' alone.",
    )
    loop: Literal["auto", "uvloop", "asyncio"] = Field("auto", description="Event loop of the generator.")
    spin: Duration | None = Field(
        None, le=1.0, description="Pacer busy-wait window before each slot (default 0.5ms uvloop, 1ms asyncio)."
    )
    seed: int | None = Field(None, ge=0, lt=2**64, description="Seed of the Poisson schedule (reproducible runs).")
    ca_file: str | None = Field(
        None, description="https: PEM bundle of the CA that signed the server's certificate (default: the system's)."
    )
    insecure: bool = Field(
        False, description="https: do not verify the server's certificate (self-signed test endpoints only)."
    )
    llm: LLMSpec | None = Field(
        None, description="Speak an OpenAI-compatible API and measure tokens (TTFT, ITL, TPOT, goodput): "
        "see mlchaos.load.llmspec.  Default timeout then 60s; path /v1/chat/completions or /v1/completions."
    )

    @model_validator(mode="before")
    @classmethod
    def _flat_request(cls, data: Any) -> Any:
        if isinstance(data, dict) and _REQUEST_KEYS & data.keys():
            data = dict(data)
            req = dict(data.get("request") or {})
            for key in list(data):
                if key in _REQUEST_KEYS:
                    req[key] = data.pop(key)
            data["request"] = req
        return data

    _rate_bound = field_validator("rate")(_check_rate)

    @field_validator("processes")
    @classmethod
    def _processes(cls, v: int | str, info: ValidationInfo) -> int | str:
        """At most :data:`PROCESSES_PER_CORE` per usable core unless forced (context ``force``)."""
        if isinstance(v, int):
            if not 1 <= v <= MAX_PROCESSES:
                raise ValueError(f"processes must be between 1 and {MAX_PROCESSES}, or 'auto'")
            cap = PROCESSES_PER_CORE * usable_cores()
            if v > cap and not (info.context or {}).get("force"):
                raise ValueError(f"{v} processes on {usable_cores()} core(s): at most {cap} "
                                 f"({PROCESSES_PER_CORE} per core); more only slows the generator "
                                 "(mlchaos load --force to insist)")
        return v

    @model_validator(mode="after")
    def _check(self) -> LoadSpec:
        if self.rate <= 0 and not isinstance(self.profile, StepProfile):
            raise ValueError("rate must be > 0")
        if self.llm is not None:
            req = self.request
            if req.body is not None or req.body_file is not None:
                raise ValueError("llm: the request bodies are built from llm.prompts; drop 'body'/'body_file'")
            req.method = "POST"
            if req.path == "/" and req.url is None:
                req.path = self.llm.path
            if "timeout" not in self.model_fields_set:  # a generation outlives the 5 s of a prediction
                self.timeout = LLM_TIMEOUT
        return self

    def peak_rate(self) -> float:
        """Highest rate the profile reaches (sizes pools and the process count)."""
        p = self.profile
        if isinstance(p, StepProfile):
            return max(s.rate for s in p.steps)
        if isinstance(p, SpikeProfile):
            return max(self.rate, p.baseline)
        if isinstance(p, RampProfile):
            return max(self.rate, p.start)
        return self.rate

    def n_processes(self, cpus: int | None = None) -> int:
        """Resolve ``processes: auto``: one process per 20k req/s of peak, at most one per core."""
        if isinstance(self.processes, int):
            return self.processes
        import os

        cores = cpus or os.cpu_count() or 1
        return max(1, min(cores, math.ceil(self.peak_rate() / 20_000)))

    def lag_budget_for(self, latency_tolerance: float | None = None) -> float:
        """The lag p99 budget in seconds: 10 % of the latency bound, ≥ 1 ms (:mod:`mlchaos.budget`).

        With no bound (``mlchaos load`` on its own, benchmarking the generator) it is the pacer's
        own 1 ms; an experiment passes its hypothesis's budget explicitly.
        """
        from mlchaos.budget import MIN_BUDGET, lag_budget

        if self.lag_budget is not None:
            return self.lag_budget
        if latency_tolerance is None:
            return MIN_BUDGET
        return lag_budget([latency_tolerance])


def read_spec_file(path: str) -> LoadSpec:
    """A LoadSpec from a JSON/YAML file, read like an experiment file: bounded size, depth and aliases,
    positioned errors (:class:`mlchaos.spec.errors.SpecErrors`).  The distributed workers take one."""
    from mlchaos.spec.yamlload import parse

    with open(path, encoding="utf-8") as fh:
        _, data = parse(fh.read(), path)
    return LoadSpec.model_validate(data)
