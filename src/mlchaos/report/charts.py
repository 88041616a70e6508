"""Inline SVG line charts: no JavaScript, no CDN, readable offline and in CI artifacts.

A chart shows one or more series over time (seconds since the run started),
fault windows as shaded bands, abort/stop moments as vertical lines, and
tolerance limits as dashed horizontal lines — the three things a reader needs
to see why a verdict came out as it did.
"""

from __future__ import annotations

import html
import itertools
import math

_COLOURS = ["#1a73e8", "#e8710a", "#188038", "#a142f4", "#d01884"]


def _nice_max(v: float) -> float:
    if v <= 0 or not math.isfinite(v):
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * exp:
            return m * exp
    return 10 * exp


def _tick(v: float) -> str:
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:g}M"
    if a >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:.3g}"


def line_chart(
    series: list[tuple[str, list[tuple[float, float]]]],
    windows: list[tuple[float, float, str]] = (),  # type: ignore[assignment]
    marks: list[tuple[float, str]] = (),  # type: ignore[assignment]
    *,
    limits: list[float] = (),  # type: ignore[assignment]
    unit: str = "",
    breaches: list[float | tuple[float, float, bool]] = (),  # type: ignore[assignment]
    x_range: float | None = None,
    width: int = 520,
    height: int = 200,
) -> str:
    """Return an ``<svg>`` element as text.

    ``breaches`` are observations that were not met, drawn as crosses along
    the top (so a probe that timed out, with no value to plot, still shows):
    a time, or ``(t, since, trusted)`` where ``t`` is when the measurement
    completed, ``since`` how far back its span reaches (a window, or when the
    request was sent), shaded, and ``trusted`` False for a reading of an
    untrustworthy instrument, drawn grey: it is evidence of nothing.
    ``x_range`` fixes the time axis so every chart of a run lines up.
    """
    pts = [p for _, s in series for p in s if math.isfinite(p[1])]
    left, right, top, bottom = 52, 12, 12, 28
    w, h = width - left - right, height - top - bottom
    xs = [p[0] for p in pts] + [a for a, _, _ in windows] + [b for _, b, _ in windows] + [t for t, _ in marks]
    x_max = x_range or max(xs, default=1.0) or 1.0
    y_vals = [p[1] for p in pts] + [v for v in limits if math.isfinite(v)]
    y_min = min(0.0, min(y_vals, default=0.0))
    y_max = _nice_max(max(y_vals, default=1.0) * 1.05) if y_vals else 1.0
    if y_max <= y_min:
        y_max = y_min + 1

    def X(t: float) -> float:
        return left + w * t / x_max

    def Y(v: float) -> float:
        return top + h * (1 - (v - y_min) / (y_max - y_min))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           f'role="img" font-family="system-ui,sans-serif" font-size="10">',
           f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="#fafafa" stroke="#ddd"/>']
    for a, b, label in windows:
        out.append(f'<rect x="{X(a):.1f}" y="{top}" width="{max(1.5, X(b) - X(a)):.1f}" height="{h}" fill="#f28b82" '
                   f'fill-opacity="0.25"><title>fault: {html.escape(label)}</title></rect>')
    for i in range(5):
        v = y_min + (y_max - y_min) * i / 4
        out.append(f'<line x1="{left}" x2="{left + w}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" stroke="#eee"/>'
                   f'<text x="{left - 4}" y="{Y(v) + 3:.1f}" text-anchor="end">{_tick(v)}{html.escape(unit)}</text>')
    for i in range(6):
        t = x_max * i / 5
        out.append(f'<text x="{X(t):.1f}" y="{height - 10}" text-anchor="middle">{t:.0f}s</text>')
    for v in limits:
        if math.isfinite(v):
            out.append(f'<line x1="{left}" x2="{left + w}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" stroke="#b3261e" '
                       f'stroke-dasharray="4 3"><title>tolerance {v:g}</title></line>')
    for t, label in marks:
        out.append(f'<line x1="{X(t):.1f}" x2="{X(t):.1f}" y1="{top}" y2="{top + h}" stroke="#a15c00" stroke-width="2">'
                   f'<title>{html.escape(label)} at {t:.2f}s</title></line>')
    for i, (name, s) in enumerate(series):
        good = [(t, v) for t, v in s if math.isfinite(v)]
        if not good:
            continue
        colour = _COLOURS[i % len(_COLOURS)]
        # break the line across gaps (a probe that timed out has no value): never draw data that was not seen
        gaps = sorted(b[0] - a[0] for a, b in itertools.pairwise(good))
        limit = 3 * gaps[len(gaps) // 2] if gaps else math.inf
        path = " ".join(
            f"{'M' if j == 0 or t - good[j - 1][0] > limit else 'L'}{X(t):.1f},{Y(v):.1f}"
            for j, (t, v) in enumerate(good))
        out.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.5"><title>{html.escape(name)}</title></path>')
        out.append(f'<text x="{left + 6 + 70 * i}" y="{top + 11}" fill="{colour}">{html.escape(name)}</text>')
    for item in breaches:
        t, since, trusted = item if isinstance(item, tuple) else (item, item, True)
        colour = "#b3261e" if trusted else "#9aa0a6"
        what = "not met" if trusted else "not met by an untrustworthy instrument (not evidence)"
        if X(t) - X(since) >= 1:
            out.append(f'<rect x="{X(since):.1f}" y="{top + 1}" width="{X(t) - X(since):.1f}" height="9" '
                       f'fill="{colour}" fill-opacity="0.15"><title>measured over {since:.2f}s–{t:.2f}s</title></rect>')
        out.append(f'<path d="M{X(t) - 3:.1f},{top + 2} L{X(t) + 3:.1f},{top + 8} M{X(t) + 3:.1f},{top + 2} '
                   f'L{X(t) - 3:.1f},{top + 8}" stroke="{colour}" stroke-width="1.5"><title>{what} at {t:.2f}s'
                   f'</title></path>')
    if not pts:
        out.append(f'<text x="{left + w / 2}" y="{top + h / 2}" text-anchor="middle" fill="#888">no data</text>')
    out.append("</svg>")
    return "".join(out)
