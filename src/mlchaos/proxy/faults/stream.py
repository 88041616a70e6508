"""Stream faults: what goes wrong inside a token stream (Server-Sent Events or any chunked response).

An LLM server answers ``stream: true`` with one SSE event per token and ends with ``data: [DONE]``.
The failures its users report happen *inside* that stream, after a ``200`` and its headers: a slow
first token, a slow or bursty token rate, a stream that stalls and never ends, one cut part-way, a
malformed or error event.  A status-code or whole-response fault cannot produce these, so these kinds
act per event.

Like every fault they only write their decision; :mod:`mlchaos.proxy.faults.stream_shaper` carries it
out on the wire.  Their ``apply`` adds nothing to the plan: the data path finds the stream rules among
the plan's ``rules`` and hands them to a shaper for that one stream.  Each kind's parameters are
checked here, once, for the proxy and (through :mod:`mlchaos.faults.network`) ``mlchaos validate``.

The blast radius is the common ``probability``: the share of matching requests, i.e. of streams when
``match`` selects the streaming calls (``path``, ``headers``, ``model``).  A hit request whose response
turns out not to be a stream (a ``Content-Length`` body) is relayed untouched.
"""

from __future__ import annotations

import random
from typing import Any, Literal, TypeVar

from pydantic import Field, model_validator

from mlchaos.proxy.faults.base import Params, Plan, ProxyFault
from mlchaos.spec.types import Duration, Percent

MAX_DELAY = 3600.0
SP = TypeVar("SP", bound=Params)


class StreamKind(ProxyFault[SP]):
    """Base of the stream kinds: HTTP only, on the response, and no effect on the plan itself."""

    fixed_effect = True
    http_only = True
    directions = ("response",)

    def apply(self, plan: Plan, rng: random.Random) -> None:
        """Nothing to write: the data path hands the plan's stream rules to a shaper (see the module doc)."""


class StreamDelayParams(Params):
    first_event: Duration = 0.0
    """Extra wait before the first event (adds to time-to-first-token)."""
    per_event: Duration = 0.0
    """Extra gap before every later event (adds to each inter-token latency)."""
    rate: float | None = Field(None, gt=0, le=1e6)
    """Cap on events per second (a slow token rate); events queue behind it, none is lost."""
    jitter: Duration = 0.0
    """Each delay drawn uniformly within +-jitter (never below zero)."""

    @model_validator(mode="after")
    def _check(self) -> StreamDelayParams:
        if not (self.first_event or self.per_event or self.rate):
            raise ValueError("give first_event, per_event or rate (all are zero: nothing to delay)")
        if max(self.first_event, self.per_event, self.jitter) > MAX_DELAY:
            raise ValueError("delays must be at most 1h")
        return self


class StreamDelay(StreamKind[StreamDelayParams]):
    """Delay the first event, every later one, or cap the event rate; the stream itself is intact."""

    kind = "stream-delay"
    params_model = StreamDelayParams

    def gap(self, first: bool, rng: random.Random) -> float:
        """The added wait before one event (``first``: the first event of the stream)."""
        p = self.params
        assert isinstance(p, StreamDelayParams)
        d = p.first_event if first else p.per_event
        if p.jitter and d:
            d += rng.uniform(-p.jitter, p.jitter)
        return max(0.0, d)


class StreamStallParams(Params):
    after_events: int | None = Field(None, ge=0, le=10**9)
    """Stall once this many events went through (0: before the first)."""
    after: Duration | None = None
    """Stall this long after the response headers went through."""

    @model_validator(mode="after")
    def _check(self) -> StreamStallParams:
        if (self.after_events is None) == (self.after is None):
            raise ValueError("give exactly one of after_events (a count) or after (a duration)")
        if self.after is not None and self.after > MAX_DELAY:
            raise ValueError("after must be at most 1h")
        return self


class StreamStall(StreamKind[StreamStallParams]):
    """Stop sending mid-stream and keep the connection open: no more events, no ``[DONE]``, no end.

    What a client meets when generation hangs: only its own inter-chunk timeout ends the wait.  The
    upstream's later events are held, not lost: if the fault's lease lapses (or it is removed) the
    stream resumes from the next event, so no stall outlives its lease.
    """

    kind = "stream-stall"
    params_model = StreamStallParams


class StreamCutParams(Params):
    after_events: int = Field(ge=0, le=10**9)
    """Cut once this many events went through (0: before the first)."""
    mode: Literal["close", "clean"] = "close"
    """'close': the connection closes mid-body (a chunked body without its last chunk); 'clean': the body ends
    properly (last chunk, connection kept) but without the rest of the events and without ``[DONE]``."""


class StreamCut(StreamKind[StreamCutParams]):
    """End the stream after N events: abruptly, or cleanly but without the end-of-stream ``[DONE]``."""

    kind = "stream-cut"
    params_model = StreamCutParams


class StreamCorruptParams(Params):
    mode: Literal["malformed", "error-event", "duplicate", "drop"]
    """'malformed': broken JSON in the event's data; 'error-event': an in-band error event
    (OpenAI's ``{"error": ...}``) replaces the event and the stream ends there without ``[DONE]``;
    'duplicate': the event is sent twice; 'drop': the event is not sent."""
    every: int | None = Field(None, ge=1, le=10**9)
    """Hit every N-th event (1: every event).  Default, with no share: every event."""
    share: Percent | None = None
    """Hit each event with this probability instead, e.g. '5%'."""
    message: str = Field("injected by mlchaos: stream error", max_length=4096)
    """The error event's message ('error-event')."""

    @model_validator(mode="after")
    def _check(self) -> StreamCorruptParams:
        if self.every is not None and self.share is not None:
            raise ValueError("give every or share, not both")
        if self.share is not None and not 0.0 <= self.share <= 1.0:
            raise ValueError("share must be within [0, 1] (or 0%..100%)")
        return self


class StreamCorrupt(StreamKind[StreamCorruptParams]):
    """Break chosen events of a stream: malformed JSON, an in-band error, a duplicate or a gap.

    Only data events count and ``[DONE]`` is never touched (a missing ``[DONE]`` is ``stream-cut``'s
    'clean' mode).  'malformed' and 'error-event' need SSE: on another chunked stream they leave the
    chunk untouched (a chunk has no format to break); 'duplicate' and 'drop' act on chunks too.
    """

    kind = "stream-corrupt"
    params_model = StreamCorruptParams

    def hits(self, index: int, rng: random.Random) -> bool:
        """Whether the event number ``index`` (1-based, data events only) is one this fault breaks."""
        p = self.params
        assert isinstance(p, StreamCorruptParams)
        if p.share is not None:
            return p.share >= 1.0 or (p.share > 0.0 and rng.random() < p.share)
        return index % (p.every or 1) == 0


STREAM_KINDS: tuple[type[StreamKind[Any]], ...] = (StreamDelay, StreamStall, StreamCut, StreamCorrupt)
