"""``mlchaos init``: scaffold an experiment for your own service from a few answers.

The file it writes is valid on its first run: windows are sized so the
latency probe has enough samples at the chosen rate, the fault goes through
a fault proxy the run starts in front of the service (so nothing has to be
installed on it), and abort conditions and a time limit are always present.

With ``--dependency URL`` the fault goes on something the service calls (a
feature store, a model server) instead: the run starts the proxy in front of
the dependency at a fixed address, and the user points the service at that
address, so the load still measures the service while its dependency fails.

Without a terminal (CI, a pipe) nobody can answer the questions, so ``init``
refuses to write a file of pure defaults unless told so with ``--yes``.
"""

from __future__ import annotations

import json
import math
import socket
import sys
from pathlib import Path
from typing import Any

import typer

from mlchaos.cli._common import fail

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


def _free_address() -> str:
    """A loopback address free now, for the dependency's proxy (written into the file, so it stays fixed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def build(url: str, path: str, method: str, body: Any, rate: float, p99: str, error_rate: str, fault: str,
          title: str | None = None, dependency: str | None = None,
          dependency_listen: str | None = None) -> dict[str, Any]:
    """The experiment as data (also used by tests).

    With ``dependency`` the proxy (and so the fault) sits in front of the dependency at
    ``dependency_listen``; the service itself is reached directly.
    """
    from mlchaos.spec.units import parse_duration, parse_percent

    parse_duration(p99)
    parse_percent(error_rate)
    need = 1000  # samples a p99 needs (see the latency probe)
    window = max(3, math.ceil(need / max(rate, 1.0)) + 1)
    request: dict[str, Any] = {"path": path, "method": method}
    if body is not None:
        request["body"] = body
    step = {"name": f"inject {fault}", **FAULTS[fault], "at": "2s", "duration": "10s"}
    targets: dict[str, Any] = {}
    where = ""
    description = "Scaffolded by 'mlchaos init'. Tune the rate, SLOs and blast radius, then run it."
    if dependency:
        listen = dependency_listen or _free_address()
        targets = {"dependency": {"platform": "http", "url": dependency, "proxy": True, "proxy_listen": listen}}
        step["target"] = "dependency"
        where = f" when its dependency {dependency} fails"
        description += (f" The fault goes on the dependency {dependency}: for the run, point your service at"
                        f" http://{listen} (the fault proxy in front of the dependency) instead.")
    return {
        "title": title or f"{url}{path} keeps its SLOs under {fault}{where}",
        "description": description,
        "target": {"platform": "http", "url": url, "proxy": not dependency},
        **({"targets": targets} if targets else {}),
        "load": {"rate": f"{rate:g}/s", "arrivals": "poisson", "request": request, "sample": "10%"},
        "steady_state": [
            {"name": "p99 latency", "probe": "latency", "percentile": 99, "window": f"{window}s", "max": p99},
            {"name": "error rate", "probe": "error-rate", "window": "3s", "max": error_rate},
        ],
        "method": [step],
        "abort": [{"name": "service collapsed", "probe": "error-rate", "window": "2s", "above": "50%"}],
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
    dependency: str | None = typer.Option(
        None, "--dependency", help="Put the fault on a service yours calls (base URL, e.g. http://127.0.0.1:9000), "
        "not on yours: the run starts a proxy in front of it and you point your service at the proxy."),
    dependency_listen: str | None = typer.Option(
        None, "--dependency-listen", help="HOST:PORT of the dependency's proxy (default: a free loopback port)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Accept the defaults for every question not given as a flag."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Scaffold an experiment for your own HTTP service; it validates and runs as written.

    On a terminal it asks for what the flags do not give. Without one (CI, a pipe) it refuses to
    write pure defaults: give the flags, or --yes to accept the defaults.
    """
    import yaml

    from mlchaos.spec.loader import SpecErrors, load_text

    if out.exists() and not force:
        raise fail(f"init: {out} exists (use --force to overwrite)")
    answers = (url, path, method, body, rate, p99, error_rate, fault, dependency)
    if not yes and not sys.stdin.isatty() and all(a is None for a in answers):
        raise fail("init: stdin is not a terminal, so nobody can answer the questions; give the answers as flags"
                   " (--url, --path, --method, --body, --rate, --p99, --error-rate, --fault, --dependency)"
                   " or --yes to accept the defaults")
    if dependency_listen is not None and dependency is None:
        raise fail("init: --dependency-listen needs --dependency URL")
    url = _ask(url, "Service base URL", "http://127.0.0.1:8000")
    path = _ask(path, "Request path", "/predict")
    method = str(_ask(method, "HTTP method", "POST")).upper()
    raw_body = _ask(body, "Sample request body (JSON, empty for none)", "" if method == "GET" else "{}")
    parsed_body: Any = None
    if raw_body:
        try:
            parsed_body = json.loads(raw_body)
        except json.JSONDecodeError as exc:
            raise fail(f"init: --body is not valid JSON: {exc.msg} at column {exc.colno}") from None
    rate = float(_ask(rate, "Peak requests per second", 100.0))
    p99 = str(_ask(p99, "p99 latency SLO", "100ms"))
    error_rate = str(_ask(error_rate, "Error-rate SLO", "1%"))
    fault = str(_ask(fault, f"Fault to try ({', '.join(FAULTS)})", "latency"))
    if fault not in FAULTS:
        raise fail(f"init: --fault: unknown fault {fault!r}; choose one of {', '.join(FAULTS)}")
    if dependency is not None and not dependency.startswith("http://"):
        raise fail(f"init: --dependency: the proxy needs a plain http:// base URL, got {dependency!r}")
    try:
        exp = build(str(url), str(path), method, parsed_body, rate, p99, error_rate, fault,
                    dependency=dependency, dependency_listen=dependency_listen)
    except ValueError as exc:
        raise fail(f"init: {exc}") from None
    text = yaml.safe_dump(exp, sort_keys=False)
    try:
        load_text(text, str(out))
    except SpecErrors as exc:
        if dependency_listen is not None:  # the user's HOST:PORT, not a bug of the scaffold
            raise fail(f"init: --dependency-listen {dependency_listen!r}: {exc}") from None
        # a bug in the scaffold, never the user's fault: say so
        raise fail(f"init: internal error, the scaffold does not validate:\n{exc}", code=5) from None
    out.write_text(text)
    print(f"wrote {out}; next: mlchaos run {out} --dry-run, then mlchaos run {out} --report report/")
    if dependency:
        listen = exp["targets"]["dependency"]["proxy_listen"]
        print(f"during the run, point your service at http://{listen} instead of {dependency}: the fault proxy"
              f" listens there and forwards to {dependency}")
