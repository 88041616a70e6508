"""Reports: ``summary.json`` for machines, JUnit XML for CI, ``index.html`` for people.

Everything is rendered from journals, so a report can be rebuilt later
(``mlchaos report JOURNAL... --out DIR``) and a run cut short by a crash still
gets one.  The HTML is one self-contained file per suite with inline SVG
charts: no JavaScript library, no CDN, it works offline and in a CI artifact
viewer.

Resilience score (a suite page): Litmus-style weighted share of probes that
held, ``100 × Σ_r w_r · held_r / probes_r  /  Σ_r w_r`` over runs ``r`` with
weight ``w_r`` (the experiment's ``weight``, default 1).  A probe *held* when
it was met before, never breached while a fault was in place, and was met
after; a run that never reached its faults (not-run, errored, invalid)
counts as zero held; an ``inconclusive`` run is left out (it is evidence of
nothing, either way).
"""

from __future__ import annotations

import html
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from mlchaos import fmt
from mlchaos.engine.runsummary import RunSummary
from mlchaos.report.charts import line_chart
from mlchaos.report.llm import LLMFigures, llm_charts, llm_table_html
from mlchaos.report.postmortem import postmortem

__all__ = ["load_runs", "postmortem", "resilience_score", "write_report"]


def load_runs(journals: list[Path]) -> list[dict[str, Any]]:
    """One run record per journal: its summary (or a rebuilt one) plus the events for charts."""
    from mlchaos.engine.journal import read, summarize

    runs = []
    for j in journals:
        events = read(j)
        if not events:
            continue
        run = dict(summarize(events))
        run["events"] = events
        run["journal"] = str(j)
        runs.append(run)
    return runs


def _summary(r: RunSummary | Mapping[str, Any]) -> RunSummary:
    return r if isinstance(r, RunSummary) else RunSummary.from_dict(r)


def resilience_score(runs: Sequence[RunSummary | Mapping[str, Any]]) -> float | None:
    """Weighted share (0–100) of steady-state probes that held; None for no runs."""
    total_w = 0.0
    acc = 0.0
    for s in map(_summary, runs):
        probes = [p for p in s.probes if p.role == "steady"]
        if s.status == "inconclusive":
            continue  # no evidence either way: neither held nor broke
        total_w += s.weight
        if probes and s.status in ("passed", "failed", "aborted"):
            acc += s.weight * sum(p.held for p in probes) / len(probes)
    return None if total_w == 0 else round(100 * acc / total_w, 1)


def _name(s: RunSummary) -> str:
    """The run's name in lists: its scenario (a demo or suite) or its title."""
    return str(s.extra.get("scenario") or s.title)


def _junit(runs: list[RunSummary]) -> str:
    def ok(s: RunSummary) -> bool:
        exp = s.extra.get("expected")
        return s.status == "passed" if exp is None else s.status in exp

    def kind(s: RunSummary) -> str | None:
        """inconclusive: the hypothesis could not be decided, so neither a pass nor a failure: skipped."""
        if ok(s):
            return None
        if s.status == "inconclusive":
            return "skipped"
        return "failure" if s.status in ("failed", "aborted", "passed") else "error"

    kinds = [kind(s) for s in runs]
    suite = ET.Element("testsuite", name="mlchaos", tests=str(len(runs)),
                       failures=str(kinds.count("failure")), errors=str(kinds.count("error")),
                       skipped=str(kinds.count("skipped")))
    for s in runs:
        variant = s.extra.get("variant")
        name = _name(s) + (f" [{variant}]" if variant else "")
        case = ET.SubElement(suite, "testcase", classname="mlchaos.experiment", name=name,
                             time=f"{s.timing.duration_s:.3f}")
        tag = kind(s)
        if tag is not None:
            expected = f" (expected {' or '.join(s.extra['expected'])})" if s.extra.get("expected") else ""
            el = ET.SubElement(case, tag, message=f"{s.status}{expected}: {s.reason or ''}")
            el.text = str(s.reason or "")
    return ET.tostring(suite, encoding="unicode")


_CSS = """body{font-family:system-ui,-apple-system,sans-serif;margin:2rem auto;max-width:1100px;color:#1d1d1f;padding:0 1rem}
h1{margin-bottom:.2rem}table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
td,th{border:1px solid #d0d0d0;padding:.3rem .6rem;text-align:left;vertical-align:top}th{background:#f3f3f3}
.passed{color:#137333}.failed,.errored,.invalid{color:#b3261e}.aborted,.not-run,.inconclusive,.refused{color:#a15c00}
.badge{font-weight:700;text-transform:uppercase;letter-spacing:.03em}
section.run{border-top:2px solid #eee;margin-top:2rem;padding-top:.5rem}
.charts{display:flex;flex-wrap:wrap;gap:12px}.charts figure{margin:0}.charts figcaption{font-size:.8rem;color:#555}
.score{font-size:2rem;font-weight:700}.muted{color:#666;font-size:.85rem}"""


def _events(s: RunSummary) -> list[dict[str, Any]]:
    """The run's journal events, when the caller attached them (charts and units come from them)."""
    return list(s.extra.get("events") or [])


def _fault_windows(run: RunSummary | Mapping[str, Any], t0: float) -> list[tuple[float, float, str]]:
    """Each injected fault's span on the charts, ended by :func:`~mlchaos.engine.records.fault_end`.

    A run cut short (no ``timing.end``) ends at its journal's last event: the
    fault was still in place then, as far as anyone knows.
    """
    from mlchaos.engine.records import fault_end

    s = _summary(run)
    events = _events(s)
    end = s.timing.end or (events[-1]["t"] if events else None)
    out = []
    for f in s.faults:
        a = f.injected_at
        if a:
            b = fault_end(f.removed_at, end)
            out.append((a - t0, (b if b != float("inf") else a) - t0, f.name))
    return out


def _marks(events: list[dict[str, Any]], t0: float) -> list[tuple[float, str]]:
    return [(e["t"] - t0, "abort" if e.get("status") == "aborted" else "stop")
            for e in events if e.get("event") == "stop-requested"]


def _charts(run: RunSummary) -> str:
    events = _events(run)
    if not events:
        return ""
    t0 = events[0]["t"]
    x_range = max(1e-3, events[-1]["t"] - t0)
    windows = _fault_windows(run, t0)
    marks = _marks(events, t0)
    figs = []
    ticks = [e for e in events if e.get("event") == "load-tick"]
    if ticks:
        def series(key: str) -> list[tuple[float, float]]:
            return [(e["t"] - t0, float(e[key])) for e in ticks if isinstance(e.get(key), int | float)]

        figs.append(("Throughput (requests/s)", line_chart([("achieved", series("throughput"))], windows, marks, unit="/s", x_range=x_range)))
        figs.append(("Latency (ms)", line_chart([("p50", [(t, v * 1000) for t, v in series("p50")]),
                                                 ("p99", [(t, v * 1000) for t, v in series("p99")])],
                                                windows, marks, unit="ms", x_range=x_range)))
        figs.append(("Error rate (%)", line_chart([("errors", [(t, v * 100) for t, v in series("error_rate")])],
                                                  windows, marks, unit="%", x_range=x_range)))
    llm = LLMFigures.of(run)  # an LLM load's TTFT/ITL/goodput per second; nothing for a plain load
    figs += llm_charts(events, t0, windows, marks, x_range, slo=llm.slo if llm else None)
    by_probe: dict[str, list[tuple[float, float]]] = {}
    bad: dict[str, list[float | tuple[float, float, bool]]] = {}
    for e in events:
        if e.get("event") != "probe":
            continue
        by_probe.setdefault(e["probe"], [])
        if isinstance(e.get("value"), int | float) and not isinstance(e.get("value"), bool):
            by_probe[e["probe"]].append((e["t"] - t0, float(e["value"])))
        if e.get("ok") is False:
            # drawn where it was measured: completed at t, reaching back over its window (or to the send)
            since = e["t"] - float(e["window"]) if e.get("window") else float(e.get("started") or e["t"])
            bad.setdefault(e["probe"], []).append((e["t"] - t0, since - t0, e.get("trusted") is not False))
    tolerances = {p.name: p.tolerance for p in run.probes}
    units = fmt.journal_units(events, run.to_dict())
    for name, pts in by_probe.items():
        tol = tolerances.get(name, {})
        limits = [float(tol[k]) for k in ("max", "min", "above", "below") if isinstance(tol.get(k), int | float)]
        if isinstance(tol.get("between"), list):
            limits += [float(x) for x in tol["between"]]
        # seconds drawn in ms, ratios in %: the axis reads as the tables and the verdict do
        factor, shown = fmt.CHART_SCALE.get(units.get(name, ""), (1.0, units.get(name, "")))
        caption = f"Probe: {name}" + (f" ({shown})" if shown else "")
        figs.append((caption, line_chart([(name, [(t, v * factor) for t, v in pts])], windows, marks,
                                         limits=[x * factor for x in limits], unit=shown,
                                         breaches=bad.get(name, []), x_range=x_range)))
    return "<div class='charts'>" + "".join(
        f"<figure>{svg}<figcaption>{html.escape(cap)}</figcaption></figure>" for cap, svg in figs) + "</div>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(json.dumps(v, default=str)) if isinstance(v, dict | list) else html.escape(str(v))


def _qty(v: Any, unit: str) -> str:
    """A probe value in its unit (``113 ms``, ``3.2 %``); structured values stay JSON."""
    return _fmt(v) if isinstance(v, dict | list) else html.escape(fmt.quantity(v, unit))


def _run_html(r: RunSummary, idx: int) -> str:
    units = fmt.journal_units(_events(r), r.to_dict())

    def cell(o: dict[str, Any] | None, unit: str) -> str:
        if not o:
            return "–"
        ok = o.get("ok")
        mark = "✓" if ok is True else "✗" if ok is False else "?"
        return f"{mark} {_qty(o.get('value'), unit)}"

    rows = []
    for p in r.probes:
        d = p.during
        unit = units.get(p.name, "")
        span = ""
        if d.min is not None:
            span = f" <span class='muted'>[{_qty(d.min, unit)} … {_qty(d.max, unit)}]</span>"
        tol = html.escape(fmt.tolerance(p.tolerance or {}, unit)) or _fmt(p.tolerance)
        untrusted = f", {d.untrusted} untrustworthy" if d.untrusted else ""
        rows.append(f"<tr><td>{html.escape(p.name)}</td><td>{p.role or ''}</td>"
                    f"<td>{tol}</td><td>{cell(p.before, unit)}</td>"
                    f"<td>{d.breaches} breach(es) / {d.evaluations}{untrusted}{span}</td>"
                    f"<td>{cell(p.after, unit)}</td></tr>")
    faults = "".join(
        f"<tr><td>{html.escape(f.name)}</td><td>{f.plugin or ''}</td><td>{_fmt(f.planned)}</td>"
        f"<td>{_fmt(f.actual)}</td><td>{_fmt(f.observed)}</td>"
        f"<td>{html.escape(', '.join(map(str, f.targets)))}</td></tr>" for f in r.faults)
    title = html.escape(str(r.title))
    x = r.extra
    head = f"{html.escape(str(x['scenario']))} [{html.escape(str(x.get('variant', '')))}] — " if x.get("scenario") else ""
    expected = f" <span class='muted'>expected: {' or '.join(x['expected'])}</span>" if x.get("expected") else ""
    decided = (f"<p class='muted'>decided by: {html.escape(', '.join(r.decided_by))}</p>"
               if r.decided_by else "")
    st = r.settle or {}
    settle = (f"<p class='muted'>baseline {'settled' if st.get('settled') else 'never settled'} after "
              f"{_fmt(st.get('waited_s'))} s ({st.get('failed_checks')} failed check(s) in the journal)</p>"
              if st else "")
    settle += "".join(
        f"<p class='muted'>attempt {a.get('attempt')} was <b>{html.escape(str(a.get('status')))}</b>: "
        f"{html.escape(str(a.get('reason')))} (journal {html.escape(str(a.get('journal')))}); run again</p>"
        for a in x.get("earlier_attempts") or [])
    exit_code = "?" if r.exit_code is None else r.exit_code
    return (f"<section class='run' id='run-{idx}'><h2>{head}{title}</h2>"
            f"<p class='badge {r.status}'>{r.status} (exit {exit_code}){expected}</p>"
            f"<p>{html.escape(str(r.reason))}</p>{decided}{settle}{_instruments_html(r)}{_charts(r)}"
            f"{llm_table_html(r)}"
            "<h3>Steady state</h3><table><tr><th>probe</th><th>role</th><th>tolerance</th><th>before</th>"
            f"<th>during the faults</th><th>after</th></tr>{''.join(rows)}</table>"
            "<h3>Blast radius</h3><table><tr><th>fault</th><th>plugin</th><th>planned</th><th>applied</th>"
            f"<th>observed by the holder</th><th>targets</th></tr>{faults}</table></section>")


def _instruments_html(r: RunSummary) -> str:
    """The run's own instruments: the load generator's VALID/INVALID and untrustworthy evaluations."""
    out = []
    lv = r.load_validity
    if lv is not None:
        out.append("load: <b>VALID</b>" if lv.get("valid") else
                   f"load: <b>INVALID</b> ({html.escape(str(lv.get('reason')))}): it cannot support a pass")
    inst = r.instruments
    if inst.get("untrusted"):
        out.append(f"instruments: {inst['untrusted']} of {inst['evaluations']} evaluations untrustworthy, "
                   f"counted as evidence of nothing ({html.escape('; '.join(inst.get('why') or []))})")
    return "".join(f"<p class='muted'>{line}</p>" for line in out)


def _index(runs: list[RunSummary]) -> str:
    score = resilience_score(runs)
    rows = "".join(
        f"<tr><td><a href='#run-{i}'>{html.escape(_name(r))}</a></td>"
        f"<td>{html.escape(str(r.extra.get('variant', '')))}</td><td class='badge {r.status}'>{r.status}</td>"
        f"<td>{html.escape(' or '.join(r.extra.get('expected') or []) or '–')}</td>"
        f"<td>{html.escape(str(r.reason or ''))}</td></tr>" for i, r in enumerate(runs))
    score_html = "" if score is None else (
        f"<p>Resilience score <span class='score'>{score:g}</span> / 100 "
        "<span class='muted'>(weighted share of steady-state probes that held)</span></p>")
    return (f"{score_html}<table><tr><th>experiment</th><th>variant</th><th>verdict</th><th>expected</th>"
            f"<th>reason</th></tr>{rows}</table>")


def write_report(
    runs: list[dict[str, Any]],
    out: Path,
    *,
    journals: list[Path] | None = None,
    postmortems: bool = False,
) -> Path:
    """Write ``summary.json``, ``junit.xml``, ``index.html`` (and post-mortems) into ``out``.

    ``runs`` are run summaries (``RunResult.summary``) optionally carrying ``events``,
    ``scenario``, ``variant`` and ``expected``; journals given separately are read for
    their events and copied next to the report.
    """
    out.mkdir(parents=True, exist_ok=True)
    runs = [dict(r) for r in runs]
    for r, j in zip(runs, journals or [], strict=False):
        if j and Path(j).exists() and "events" not in r:
            from mlchaos.engine.journal import read

            r["events"] = read(j)
            dest = out / Path(j).name
            if Path(j).resolve() != dest.resolve():
                shutil.copy(j, dest)
    summaries = [RunSummary.from_dict(r) for r in runs]
    slim = [{k: v for k, v in r.items() if k not in ("config", "events")} for r in runs]  # as given
    (out / "summary.json").write_text(json.dumps(
        {"resilience_score": resilience_score(summaries), "runs": slim}, indent=2, default=str))
    (out / "junit.xml").write_text(_junit(summaries))
    body = _index(summaries) + "".join(_run_html(s, i) for i, s in enumerate(summaries))
    (out / "index.html").write_text(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>mlchaos report</title>"
        f"<meta name='viewport' content='width=device-width'><style>{_CSS}</style></head>"
        f"<body><h1>mlchaos report</h1>{body}</body></html>")
    if postmortems:
        for i, r in enumerate(runs):
            name = f"postmortem-{r.get('scenario') or i}" + (f"-{r['variant']}" if r.get("variant") else "") + ".md"
            (out / name).write_text(postmortem(summaries[i]))
    return out
