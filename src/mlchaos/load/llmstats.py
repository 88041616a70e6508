"""Token-level statistics of an LLM load: one shape for a worker interval, a window and the whole run.

A worker reports, per 250 ms interval, what *ended* in it (:mod:`mlchaos.load.llmclient` defines each
figure): counts by outcome and sparse histograms of TTFT, ITL, TPOT and e2e.  Like the plain latency
histograms they merge exactly, so a probe's window over all processes is one merge.

Derived figures, for probes and the report:

* ``stream_completion`` = streams that ended with ``[DONE]`` / streams that ended, where a request that
  the server refused with an HTTP error (``status``) is not a stream: a refusal is judged by the
  error rate, and an admission control that answers 429 does not count as broken streams;
* ``goodput`` (per second of the window) = good requests / covered seconds; as a share of the offered
  load, good / requests the schedule planned in the window.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from mlchaos.load.histogram import LogHistogram

__all__ = ["LLMStats"]

_HISTS = ("ttft", "itl", "tpot", "e2e")


@dataclasses.dataclass
class LLMStats:
    """Counts and histograms (seconds) of the LLM requests that ended in a span."""

    ended: int = 0
    completed: int = 0
    done_marker: int = 0
    good: int = 0
    tokens: int = 0
    kinds: dict[str, int] = dataclasses.field(default_factory=dict)
    ttft: LogHistogram = dataclasses.field(default_factory=LogHistogram)
    itl: LogHistogram = dataclasses.field(default_factory=LogHistogram)
    tpot: LogHistogram = dataclasses.field(default_factory=LogHistogram)
    e2e: LogHistogram = dataclasses.field(default_factory=LogHistogram)

    @classmethod
    def from_msg(cls, m: dict[str, Any]) -> LLMStats:
        return cls(
            ended=int(m.get("ended", 0)),
            completed=int(m.get("completed", 0)),
            done_marker=int(m.get("done_marker", 0)),
            good=int(m.get("good", 0)),
            tokens=int(m.get("tokens", 0)),
            kinds={str(k): int(v) for k, v in (m.get("kinds") or {}).items()},
            **{h: LogHistogram.from_dict(m[h]) if m.get(h) else LogHistogram() for h in _HISTS},
        )

    @classmethod
    def merged(cls, items: Iterable[LLMStats]) -> LLMStats:
        items = list(items)
        kinds: dict[str, int] = {}
        for i in items:
            for k, v in i.kinds.items():
                kinds[k] = kinds.get(k, 0) + v
        return cls(
            ended=sum(i.ended for i in items),
            completed=sum(i.completed for i in items),
            done_marker=sum(i.done_marker for i in items),
            good=sum(i.good for i in items),
            tokens=sum(i.tokens for i in items),
            kinds=kinds,
            **{h: LogHistogram.merged(getattr(i, h) for i in items) for h in _HISTS},
        )

    @property
    def errors(self) -> int:
        return sum(self.kinds.values())

    @property
    def streams(self) -> int:
        """Requests that ended other than by an HTTP error status (the denominator of stream completion)."""
        return self.ended - self.kinds.get("status", 0)

    @property
    def stream_completion(self) -> float | None:
        return self.done_marker / self.streams if self.streams > 0 else None

    def to_dict(self, duration: float | None = None) -> dict[str, Any]:
        """Counts, error kinds and p25/p50/p75/p90/p99/max/mean of each histogram in **milliseconds** (LLM
        serving's unit, as vLLM reports them); with ``duration``, goodput and token rates per second."""
        d: dict[str, Any] = {
            "ended": self.ended, "completed": self.completed, "done_marker": self.done_marker, "good": self.good,
            "output_tokens": self.tokens, "errors": dict(self.kinds), "stream_completion": self.stream_completion,
        }
        if duration:
            d["goodput"] = self.good / duration
            d["completed_rate"] = self.completed / duration
            d["output_tokens_per_s"] = self.tokens / duration
        for h in _HISTS:
            hist: LogHistogram = getattr(self, h)
            qs = hist.quantiles([0.25, 0.5, 0.75, 0.9, 0.99])
            ms = {k: (None if v is None else v * 1e3)
                  for k, v in zip(("p25", "p50", "p75", "p90", "p99"), qs, strict=True)}
            ms["max"] = None if hist.max is None else hist.max * 1e3
            ms["mean"] = None if hist.mean is None else hist.mean * 1e3
            d[f"{h}_ms"] = {"count": hist.count, **ms}
        return d
