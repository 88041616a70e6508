"""Reports: ``summary.json`` for machines, JUnit XML for CI, ``index.html`` for people.

The HTML is self-contained (no CDN, works offline).  This first version shows
the verdict, the reason, the probe table (before/during/after) and the fault
windows; charts of the load time series come with the load generator.
"""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

__all__ = ["write_report"]


def _junit(runs: list[dict[str, Any]]) -> str:
    suite = ET.Element("testsuite", name="mlchaos", tests=str(len(runs)),
                       failures=str(sum(r["status"] in ("failed", "aborted") for r in runs)),
                       errors=str(sum(r["status"] in ("errored", "not-run", "invalid") for r in runs)))
    for r in runs:
        name = f"{r.get('scenario') or r.get('title')}" + (f" [{r['variant']}]" if r.get("variant") else "")
        case = ET.SubElement(suite, "testcase", classname="mlchaos.experiment", name=name,
                             time=f"{r.get('timing', {}).get('duration_s', 0):.3f}")
        expected = r.get("expected")
        ok = r["status"] == "passed" if expected is None else r["status"] in expected
        if not ok:
            tag = "failure" if r["status"] in ("failed", "aborted", "passed") else "error"
            el = ET.SubElement(case, tag, message=f"{r['status']}: {r.get('reason', '')}")
            el.text = r.get("reason", "")
    return ET.tostring(suite, encoding="unicode")


_CSS = """body{font-family:system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse;margin:.5rem 0}
td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}th{background:#f4f4f4}
.passed{color:#11772d}.failed,.errored{color:#b00020}.aborted,.not-run{color:#a36200}
.badge{font-weight:700;text-transform:uppercase}svg{background:#fafafa;border:1px solid #ddd}"""


def _timeline(r: dict[str, Any]) -> str:
    timing = r.get("timing", {})
    t0, t1 = timing.get("start"), timing.get("end")
    if not t0 or not t1 or t1 <= t0:
        return ""
    w, h = 720, 24 + 18 * max(1, len(r.get("faults", [])))

    def x(t: float) -> float:
        return 10 + (w - 20) * (t - t0) / (t1 - t0)

    parts = [f'<svg width="{w}" height="{h}" role="img" aria-label="fault windows">']
    for i, f in enumerate(r.get("faults", [])):
        a, b = f.get("injected_at"), f.get("removed_at") or t1
        if a:
            parts.append(f'<rect x="{x(a):.1f}" y="{8 + 18 * i}" width="{max(2.0, x(b) - x(a)):.1f}" height="14" '
                         f'fill="#e57373"><title>{html.escape(str(f["name"]))}</title></rect>')
            parts.append(f'<text x="{x(a) + 3:.1f}" y="{19 + 18 * i}" font-size="11">{html.escape(str(f["name"]))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _run_html(r: dict[str, Any]) -> str:
    rows = []
    for p in r.get("probes", []):
        def cell(o: dict[str, Any] | None) -> str:
            if not o:
                return "-"
            return f"{'✓' if o.get('ok') else '✗'} {html.escape(repr(o.get('value')))}"

        d = p.get("during", {})
        rows.append(f"<tr><td>{html.escape(str(p['name']))}</td><td>{p.get('role')}</td>"
                    f"<td>{html.escape(json.dumps(p.get('tolerance', {})))}</td><td>{cell(p.get('before'))}</td>"
                    f"<td>{d.get('breaches', 0)} breaches / {d.get('evaluations', 0)}</td><td>{cell(p.get('after'))}</td></tr>")
    faults = "".join(
        f"<tr><td>{html.escape(str(f['name']))}</td><td>{f.get('plugin')}</td>"
        f"<td>{html.escape(json.dumps(f.get('planned', {}), default=str))}</td>"
        f"<td>{html.escape(json.dumps(f.get('actual', {}), default=str))}</td>"
        f"<td>{html.escape(', '.join(map(str, f.get('targets', []))))}</td></tr>" for f in r.get("faults", []))
    title = html.escape(str(r.get("title")))
    return (f"<section><h2>{title}</h2><p class='badge {r['status']}'>{r['status']} (exit {r['exit_code']})</p>"
            f"<p>{html.escape(str(r.get('reason')))}</p>{_timeline(r)}"
            "<h3>Steady state</h3><table><tr><th>probe</th><th>role</th><th>tolerance</th><th>before</th>"
            f"<th>during</th><th>after</th></tr>{''.join(rows)}</table>"
            "<h3>Blast radius</h3><table><tr><th>fault</th><th>plugin</th><th>planned</th><th>applied</th>"
            f"<th>targets</th></tr>{faults}</table></section>")


def write_report(runs: list[dict[str, Any]], out: Path, *, journals: list[Path] | None = None) -> Path:
    """Write ``summary.json``, ``junit.xml``, ``index.html`` and copies of the journals into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    slim = [{k: v for k, v in r.items() if k != "config"} for r in runs]
    (out / "summary.json").write_text(json.dumps({"runs": slim}, indent=2, default=str))
    (out / "junit.xml").write_text(_junit(slim))
    body = "".join(_run_html(r) for r in slim)
    (out / "index.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>mlchaos report</title><style>{_CSS}</style>"
        f"</head><body><h1>mlchaos report</h1>{body}</body></html>")
    for j in journals or []:
        if j and Path(j).exists():
            shutil.copy(j, out / Path(j).name)
    return out
