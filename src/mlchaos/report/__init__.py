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
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from mlchaos import fmt
from mlchaos.report.charts import line_chart
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


def _held(p: dict[str, Any]) -> bool:
    d = p.get("during") or {}
    before = p.get("before") or {}
    after = p.get("after") or {}
    return bool(before.get("ok")) and not d.get("breaches") and bool(after.get("ok"))


def resilience_score(runs: list[dict[str, Any]]) -> float | None:
    """Weighted share (0–100) of steady-state probes that held; None for no runs."""
    total_w = 0.0
    acc = 0.0
    for r in runs:
        w = float(r.get("weight", 1.0) or 0.0)
        probes = [p for p in r.get("probes", []) if p.get("role", "steady") == "steady"]
        if r.get("status") == "inconclusive":
            continue  # no evidence either way: neither held nor broke
        total_w += w
        if probes and r.get("status") in ("passed", "failed", "aborted"):
            acc += w * sum(_held(p) for p in probes) / len(probes)
    return None if total_w == 0 else round(100 * acc / total_w, 1)


def _junit(runs: list[dict[str, Any]]) -> str:
    def ok(r: dict[str, Any]) -> bool:
        exp = r.get("expected")
        return r["status"] == "passed" if exp is None else r["status"] in exp

    def kind(r: dict[str, Any]) -> str | None:
        """inconclusive: the hypothesis could not be decided, so neither a pass nor a failure: skipped."""
        if ok(r):
            return None
        if r["status"] == "inconclusive":
            return "skipped"
        return "failure" if r["status"] in ("failed", "aborted", "passed") else "error"

    kinds = [kind(r) for r in runs]
    suite = ET.Element("testsuite", name="mlchaos", tests=str(len(runs)),
                       failures=str(kinds.count("failure")), errors=str(kinds.count("error")),
                       skipped=str(kinds.count("skipped")))
    for r in runs:
        name = f"{r.get('scenario') or r.get('title')}" + (f" [{r['variant']}]" if r.get("variant") else "")
        case = ET.SubElement(suite, "testcase", classname="mlchaos.experiment", name=name,
                             time=f"{(r.get('timing') or {}).get('duration_s', 0):.3f}")
        tag = kind(r)
        if tag is not None:
            expected = f" (expected {' or '.join(r['expected'])})" if r.get("expected") else ""
            el = ET.SubElement(case, tag, message=f"{r['status']}{expected}: {r.get('reason', '')}")
            el.text = str(r.get("reason", ""))
    return ET.tostring(suite, encoding="unicode")


_CSS = """body{font-family:system-ui,-apple-system,sans-serif;margin:2rem auto;max-width:1100px;color:#1d1d1f;padding:0 1rem}
h1{margin-bottom:.2rem}table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
td,th{border:1px solid #d0d0d0;padding:.3rem .6rem;text-align:left;vertical-align:top}th{background:#f3f3f3}
.passed{color:#137333}.failed,.errored,.invalid{color:#b3261e}.aborted,.not-run,.inconclusive,.refused{color:#a15c00}
.badge{font-weight:700;text-transform:uppercase;letter-spacing:.03em}
section.run{border-top:2px solid #eee;margin-top:2rem;padding-top:.5rem}
.charts{display:flex;flex-wrap:wrap;gap:12px}.charts figure{margin:0}.charts figcaption{font-size:.8rem;color:#555}
.score{font-size:2rem;font-weight:700}.muted{color:#666;font-size:.85rem}"""


def _fault_windows(run: dict[str, Any], t0: float) -> list[tuple[float, float, str]]:
    """Each injected fault's span on the charts, ended by :func:`~mlchaos.engine.records.fault_end`.

    A run cut short (no ``timing.end``) ends at its journal's last event: the
    fault was still in place then, as far as anyone knows.
    """
    from mlchaos.engine.records import fault_end

    events = run.get("events") or []
    end = (run.get("timing") or {}).get("end") or (events[-1]["t"] if events else None)
    out = []
    for f in run.get("faults", []):
        a = f.get("injected_at")
        if a:
            b = fault_end(f.get("removed_at"), end)
            out.append((a - t0, (b if b != float("inf") else a) - t0, str(f.get("name"))))
    return out


def _marks(events: list[dict[str, Any]], t0: float) -> list[tuple[float, str]]:
    return [(e["t"] - t0, "abort" if e.get("status") == "aborted" else "stop")
            for e in events if e.get("event") == "stop-requested"]


def _charts(run: dict[str, Any]) -> str:
    events = run.get("events") or []
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
    tolerances = {p["name"]: p.get("tolerance", {}) for p in run.get("probes", [])}
    units = fmt.journal_units(events, run)
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


def _run_html(r: dict[str, Any], idx: int) -> str:
    units = fmt.journal_units(r.get("events") or [], r)

    def cell(o: dict[str, Any] | None, unit: str) -> str:
        if not o:
            return "–"
        ok = o.get("ok")
        mark = "✓" if ok is True else "✗" if ok is False else "?"
        return f"{mark} {_qty(o.get('value'), unit)}"

    rows = []
    for p in r.get("probes", []):
        d = p.get("during") or {}
        unit = units.get(str(p["name"]), "")
        span = ""
        if d.get("min") is not None:
            span = f" <span class='muted'>[{_qty(d.get('min'), unit)} … {_qty(d.get('max'), unit)}]</span>"
        tol = html.escape(fmt.tolerance(p.get("tolerance") or {}, unit)) or _fmt(p.get("tolerance", {}))
        untrusted = f", {d['untrusted']} untrustworthy" if d.get("untrusted") else ""
        rows.append(f"<tr><td>{html.escape(str(p['name']))}</td><td>{p.get('role', '')}</td>"
                    f"<td>{tol}</td><td>{cell(p.get('before'), unit)}</td>"
                    f"<td>{d.get('breaches', 0)} breach(es) / {d.get('evaluations', 0)}{untrusted}{span}</td>"
                    f"<td>{cell(p.get('after'), unit)}</td></tr>")
    faults = "".join(
        f"<tr><td>{html.escape(str(f['name']))}</td><td>{f.get('plugin', '')}</td><td>{_fmt(f.get('planned', {}))}</td>"
        f"<td>{_fmt(f.get('actual', {}))}</td><td>{_fmt(f.get('observed', {}))}</td>"
        f"<td>{html.escape(', '.join(map(str, f.get('targets', []))))}</td></tr>" for f in r.get("faults", []))
    title = html.escape(str(r.get("title")))
    head = f"{html.escape(str(r['scenario']))} [{html.escape(str(r.get('variant', '')))}] — " if r.get("scenario") else ""
    expected = f" <span class='muted'>expected: {' or '.join(r['expected'])}</span>" if r.get("expected") else ""
    decided = (f"<p class='muted'>decided by: {html.escape(', '.join(r['decided_by']))}</p>"
               if r.get("decided_by") else "")
    st = r.get("settle") or {}
    settle = (f"<p class='muted'>baseline {'settled' if st.get('settled') else 'never settled'} after "
              f"{_fmt(st.get('waited_s'))} s ({st.get('failed_checks')} failed check(s) in the journal)</p>"
              if st else "")
    settle += "".join(
        f"<p class='muted'>attempt {a.get('attempt')} was <b>{html.escape(str(a.get('status')))}</b>: "
        f"{html.escape(str(a.get('reason')))} (journal {html.escape(str(a.get('journal')))}); run again</p>"
        for a in r.get("earlier_attempts") or [])
    return (f"<section class='run' id='run-{idx}'><h2>{head}{title}</h2>"
            f"<p class='badge {r['status']}'>{r['status']} (exit {r.get('exit_code', '?')}){expected}</p>"
            f"<p>{html.escape(str(r.get('reason')))}</p>{decided}{settle}{_instruments_html(r)}{_charts(r)}"
            "<h3>Steady state</h3><table><tr><th>probe</th><th>role</th><th>tolerance</th><th>before</th>"
            f"<th>during the faults</th><th>after</th></tr>{''.join(rows)}</table>"
            "<h3>Blast radius</h3><table><tr><th>fault</th><th>plugin</th><th>planned</th><th>applied</th>"
            f"<th>observed by the holder</th><th>targets</th></tr>{faults}</table></section>")


def _instruments_html(r: dict[str, Any]) -> str:
    """The run's own instruments: the load generator's VALID/INVALID and untrustworthy evaluations."""
    out = []
    lv = r.get("load_validity")
    if lv is not None:
        out.append("load: <b>VALID</b>" if lv.get("valid") else
                   f"load: <b>INVALID</b> ({html.escape(str(lv.get('reason')))}): it cannot support a pass")
    inst = r.get("instruments") or {}
    if inst.get("untrusted"):
        out.append(f"instruments: {inst['untrusted']} of {inst['evaluations']} evaluations untrustworthy, "
                   f"counted as evidence of nothing ({html.escape('; '.join(inst.get('why') or []))})")
    return "".join(f"<p class='muted'>{line}</p>" for line in out)


def _index(runs: list[dict[str, Any]]) -> str:
    score = resilience_score(runs)
    rows = "".join(
        f"<tr><td><a href='#run-{i}'>{html.escape(str(r.get('scenario') or r.get('title')))}</a></td>"
        f"<td>{html.escape(str(r.get('variant', '')))}</td><td class='badge {r['status']}'>{r['status']}</td>"
        f"<td>{html.escape(' or '.join(r.get('expected') or []) or '–')}</td>"
        f"<td>{html.escape(str(r.get('reason', '')))}</td></tr>" for i, r in enumerate(runs))
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
    slim = [{k: v for k, v in r.items() if k not in ("config", "events")} for r in runs]
    (out / "summary.json").write_text(json.dumps(
        {"resilience_score": resilience_score(runs), "runs": slim}, indent=2, default=str))
    (out / "junit.xml").write_text(_junit(slim))
    body = _index(runs) + "".join(_run_html(r, i) for i, r in enumerate(runs))
    (out / "index.html").write_text(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>mlchaos report</title>"
        f"<meta name='viewport' content='width=device-width'><style>{_CSS}</style></head>"
        f"<body><h1>mlchaos report</h1>{body}</body></html>")
    if postmortems:
        for i, r in enumerate(runs):
            name = f"postmortem-{r.get('scenario') or i}" + (f"-{r['variant']}" if r.get("variant") else "") + ".md"
            (out / name).write_text(postmortem(r))
    return out
