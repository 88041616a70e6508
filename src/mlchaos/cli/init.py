"""``mlchaos init``: scaffold an experiment for your own service from a few answers.

The file it writes is valid on its first run: windows are sized so the
latency probe has enough samples at the chosen rate, the fault goes through
a fault proxy the run starts in front of the service (so nothing has to be
installed on it), and abort conditions and a time limit are always present.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import typer

FAULTS: dict[str, dict[str, Any]] = {
    "latency": {"fault": "latency", "delay": "200ms"},
    "errors": {"fault": "http-error", "status": 503, "probability": "10%"},
    "timeout": {"fault": "timeout", "probability": "10%"},
    "outage": {"fault": "refuse"},
}


def _ask(value: Any, question: str, default: Any) -> Any:
    if value is not None:
        return value
    if sys.stdin.isatty():
        return typer.prompt(question, default=default)
    return default


def build(url: str, path: str, method: str, body: Any, rate: float, p99: str, error_rate: str, fault: str,
          title: str | None = None) -> dict[str, Any]:
    """The experiment as data (also used by tests)."""
    from mlchaos.spec.units import parse_duration, parse_percent

    parse_duration(p99)
    parse_percent(error_rate)
    need = 1000  # samples a p99 needs (see the latency probe)
    window = max(3, math.ceil(need / max(rate, 1.0)) + 1)
    request: dict[str, Any] = {"path": path, "method": method}
    if body is not None:
        request["body"] = body
    step = {"name": f"inject {fault}", **FAULTS[fault], "at": "2s", "duration": "10s"}
    return {
        "title": title or f"{url}{path} keeps its SLOs under {fault}",
        "description": "Scaffolded by 'mlchaos init'. Tune the rate, SLOs and blast radius, then run it.",
        "target": {"platform": "http", "url": url, "proxy": True},
        "load": {"rate": f"{rate:g}/s", "arrivals": "poisson", "request": request, "sample": "10%"},
        "steady_state": [
            {"name": "p99 latency", "probe": "latency", "percentile": 99, "window": f"{window}s", "max": p99},
            {"name": "error rate", "probe": "error_rate", "window": "3s", "max": error_rate},
        ],
        "method": [step],
        "abort": [{"name": "service collapsed", "probe": "error_rate", "window": "2s", "above": "50%"}],
        "phases": {"baseline": f"{window + 1}s", "settle": "10s", "fault": "12s", "recovery": f"{window + 1}s"},
        "max_duration": f"{2 * window + 50}s",
    }


def init(
    out: Path = typer.Option(Path("experiment.yaml"), "--out", "-o", help="Where to write the experiment."),
    url: str | None = typer.Option(None, help="Base URL of your service, e.g. http://127.0.0.1:8000."),
    path: str | None = typer.Option(None, help="Request path, e.g. /predict."),
    method: str | None = typer.Option(None, help="HTTP method."),
    body: str | None = typer.Option(None, help="A sample request body (JSON), e.g. '{\"amount\": 12.5}'."),
    rate: float | None = typer.Option(None, help="Requests per second to drive (your peak)."),
    p99: str | None = typer.Option(None, help="p99 latency SLO, e.g. 100ms."),
    error_rate: str | None = typer.Option(None, "--error-rate", help="Error-rate SLO, e.g. 1%."),
    fault: str | None = typer.Option(None, help=f"Fault to try: {', '.join(FAULTS)}."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Scaffold an experiment for your own HTTP service; it validates and runs as written."""
    import yaml

    from mlchaos.spec.loader import SpecErrors, load_text

    if out.exists() and not force:
        print(f"mlchaos init: {out} exists (use --force to overwrite)")
        raise typer.Exit(2)
    url = _ask(url, "Service base URL", "http://127.0.0.1:8000")
    path = _ask(path, "Request path", "/predict")
    method = str(_ask(method, "HTTP method", "POST")).upper()
    raw_body = _ask(body, "Sample request body (JSON, empty for none)", "" if method == "GET" else "{}")
    parsed_body: Any = None
    if raw_body:
        try:
            parsed_body = json.loads(raw_body)
        except json.JSONDecodeError as exc:
            print(f"mlchaos init: --body is not valid JSON: {exc.msg} at column {exc.colno}")
            raise typer.Exit(2) from None
    rate = float(_ask(rate, "Peak requests per second", 100.0))
    p99 = str(_ask(p99, "p99 latency SLO", "100ms"))
    error_rate = str(_ask(error_rate, "Error-rate SLO", "1%"))
    fault = str(_ask(fault, f"Fault to try ({', '.join(FAULTS)})", "latency"))
    if fault not in FAULTS:
        print(f"mlchaos init: unknown fault {fault!r}; choose one of {', '.join(FAULTS)}")
        raise typer.Exit(2)
    try:
        exp = build(str(url), str(path), method, parsed_body, rate, p99, error_rate, fault)
    except ValueError as exc:
        print(f"mlchaos init: {exc}")
        raise typer.Exit(2) from None
    text = yaml.safe_dump(exp, sort_keys=False)
    try:
        load_text(text, str(out))
    except SpecErrors as exc:  # a bug in the scaffold, never the user's fault: say so
        print(f"mlchaos init: internal error, the scaffold does not validate:\n{exc}")
        raise typer.Exit(5) from None
    out.write_text(text)
    print(f"wrote {out}; next: mlchaos run {out} --dry-run, then mlchaos run {out} --report report/")
