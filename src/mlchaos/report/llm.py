"""An LLM load's figures for people: one line for the consoles, a table and charts for the HTML report.

The load measures them (:mod:`mlchaos.load.llmstats`); the run summary carries the whole run's block
(``summary["load"]["llm"]``, milliseconds as vLLM reports them) and the journal's per-second ``load-tick``
events carry TTFT/ITL/e2e p99 (seconds), goodput and stream completion.  This module only *shows* them,
in :mod:`mlchaos.fmt` units, so that ``mlchaos run``, ``mlchaos journal`` and the report read the same
figures the same way.  A run without an LLM load yields nothing here (None, ``""``, no charts), so its
report and console output stay as they were.

Goodput's share is of the *offered* load (requests the schedule planned over the run), the same
denominator as the ``goodput`` probe's ``stat: share``: requests that never ended count against it.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Mapping
from typing import Any

from mlchaos import fmt
from mlchaos.engine.runsummary import RunSummary
from mlchaos.report.charts import line_chart

__all__ = ["LLMFigures", "llm_charts", "llm_line", "llm_table_html"]

_HISTS = (("TTFT", "ttft_ms"), ("ITL", "itl_ms"), ("TPOT", "tpot_ms"), ("e2e", "e2e_ms"))
_SLO_NAMES = {"ttft": "TTFT", "tpot": "TPOT", "e2e": "e2e"}


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _at(d: Mapping[str, Any], *keys: str) -> Mapping[str, Any]:
    """``d[k1][k2]...`` when every level is a mapping, else an empty one."""
    for k in keys:
        v = d.get(k)
        d = v if isinstance(v, Mapping) else {}
    return d


def _ms(q: Any, key: str) -> float | None:
    """One quantile of a histogram block (milliseconds in the summary) in seconds, for :func:`fmt.seconds`."""
    v = _num(q.get(key)) if isinstance(q, Mapping) else None
    return None if v is None else v / 1e3


@dataclasses.dataclass
class LLMFigures:
    """The whole run's token-level figures, in base units (seconds, requests/s, ratios)."""

    hists: dict[str, dict[str, Any]]
    """``ttft_ms``/``itl_ms``/``tpot_ms``/``e2e_ms`` blocks as the load wrote them (milliseconds, ``count``)."""
    ended: int
    completed: int
    stream_completion: float | None
    goodput: float | None
    """Good requests per second of the run (every completed one when no SLO was given)."""
    offered: int | None
    """Requests the schedule planned over the run (the goodput share's denominator)."""
    good: int
    errors: dict[str, int]
    slo: dict[str, float]
    """The SLOs given (``ttft``, ``tpot``, ``e2e``, seconds); empty: every completed request was good."""
    output_tokens_per_s: float | None

    @classmethod
    def of(cls, run: RunSummary | Mapping[str, Any]) -> LLMFigures | None:
        """The figures of a run summary (or its dict), None when its load was not an LLM load."""
        s = run if isinstance(run, RunSummary) else RunSummary.from_dict(run)
        load = s.load if isinstance(s.load, Mapping) else {}
        block = load.get("llm")
        if not isinstance(block, Mapping):
            return None
        slo_cfg = _at(s.config, "load", "llm", "slo")  # the effective configuration: SLOs in seconds
        slo = {k: float(v) for k, v in slo_cfg.items() if k in _SLO_NAMES and _num(v) is not None}
        scheduled = load.get("scheduled")
        return cls(
            hists={key: dict(block.get(key) or {}) for _, key in _HISTS},
            ended=int(block.get("ended") or 0), completed=int(block.get("completed") or 0),
            stream_completion=_num(block.get("stream_completion")), goodput=_num(block.get("goodput")),
            offered=int(scheduled) if isinstance(scheduled, int) else None, good=int(block.get("good") or 0),
            errors={str(k): int(v) for k, v in (block.get("errors") or {}).items() if v},
            slo=slo, output_tokens_per_s=_num(block.get("output_tokens_per_s")),
        )

    def q(self, name: str, key: str) -> float | None:
        """Quantile ``key`` (``p50``, ``p99``, ``max``...) of ``name`` (``ttft``...) in seconds."""
        return _ms(self.hists.get(f"{name}_ms") or {}, key)

    @property
    def goodput_share(self) -> float | None:
        return min(1.0, self.good / self.offered) if self.offered else None

    def slo_text(self) -> str:
        """``TTFT ≤ 500 ms, e2e ≤ 10 s``, or ``""`` when no SLO was given."""
        return ", ".join(f"{_SLO_NAMES[k]} ≤ {fmt.seconds(v)}" for k, v in self.slo.items())

    def goodput_text(self) -> str:
        """``18.5/s = 91.5 % of offered (SLO TTFT ≤ 200 ms)``: the rate, its share of the offered load, the SLOs."""
        rate = "–" if self.goodput is None else f"{fmt.number(self.goodput)}/s"
        share = "" if self.goodput_share is None else f" = {fmt.percent(self.goodput_share)} of offered"
        why = f"SLO {self.slo_text()}" if self.slo else "no SLO given: every completed request"
        return f"{rate}{share} ({why})"

    def errors_text(self) -> str:
        return ", ".join(f"{k} {n}" for k, n in sorted(self.errors.items())) or "none"


def llm_line(run: RunSummary | Mapping[str, Any]) -> str | None:
    """One line for a console (plain text: escape it for rich markup), None without an LLM load."""
    f = LLMFigures.of(run)
    if f is None:
        return None

    def s(name: str, key: str) -> str:
        return fmt.quantity(f.q(name, key), "s")

    done = fmt.quantity(f.stream_completion, "ratio")
    return (f"LLM: TTFT p50 {s('ttft', 'p50')}, p99 {s('ttft', 'p99')} · ITL p99 {s('itl', 'p99')} · "
            f"TPOT p50 {s('tpot', 'p50')} · e2e p99 {s('e2e', 'p99')} · goodput {f.goodput_text()} · "
            f"streams with [DONE] {done} · completed {f.completed}/{f.ended} · errors: {f.errors_text()}")


def llm_table_html(run: RunSummary | Mapping[str, Any]) -> str:
    """The report's LLM section: quantiles of TTFT/ITL/TPOT/e2e and the run's counts; ``""`` without one."""
    f = LLMFigures.of(run)
    if f is None:
        return ""
    cols = ("p50", "p90", "p99", "max", "mean")
    rows = "".join(
        f"<tr><td>{label}</td><td>{int((f.hists.get(key) or {}).get('count') or 0)}</td>"
        + "".join(f"<td>{html.escape(fmt.quantity(_ms(f.hists.get(key) or {}, c), 's'))}</td>" for c in cols)
        + "</tr>" for label, key in _HISTS)
    facts = [
        ("goodput", f.goodput_text()),
        ("completed", f"{f.completed} of {f.ended} ended"
                      + ("" if f.offered is None else f" ({f.offered} offered)")),
        ("streams with [DONE]", fmt.quantity(f.stream_completion, "ratio")),
        ("errors by kind", f.errors_text()),
        ("output tokens", "–" if f.output_tokens_per_s is None else f"{fmt.number(f.output_tokens_per_s)}/s"),
    ]
    facts_html = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts)
    return ("<h3>LLM load</h3><table class='llm'><tr><th>figure</th><th>count</th>"
            + "".join(f"<th>{c}</th>" for c in cols) + f"</tr>{rows}</table>"
            f"<table class='llm-facts'>{facts_html}</table>")


def llm_charts(
    events: list[dict[str, Any]],
    t0: float,
    windows: list[tuple[float, float, str]],
    marks: list[tuple[float, str]],
    x_range: float,
    slo: Mapping[str, float] | None = None,
) -> list[tuple[str, str]]:
    """(caption, svg) of TTFT p99, ITL p99 and goodput per second from the journal's ``load-tick`` events.

    Empty when no tick carries an LLM field (a plain load): the report then has exactly the charts it had.
    The TTFT chart draws the TTFT SLO, when given, as its tolerance line.
    """
    ticks = [e for e in events if e.get("event") == "load-tick" and "ttft_p99" in e]
    if not ticks:
        return []

    def series(key: str, factor: float = 1.0) -> list[tuple[float, float]]:
        return [(e["t"] - t0, v * factor) for e in ticks if (v := _num(e.get(key))) is not None]

    ms, _ = fmt.CHART_SCALE["s"]
    ttft_slo = [v * ms for k, v in (slo or {}).items() if k == "ttft"]
    return [
        ("LLM: TTFT p99 per second (ms)", line_chart([("TTFT p99", series("ttft_p99", ms))], windows, marks,
                                                     limits=ttft_slo, unit="ms", x_range=x_range)),
        ("LLM: ITL p99 per second (ms)", line_chart([("ITL p99", series("itl_p99", ms))], windows, marks,
                                                    unit="ms", x_range=x_range)),
        ("LLM: goodput (requests/s)", line_chart([("goodput", series("goodput"))], windows, marks,
                                                 unit="/s", x_range=x_range)),
    ]
