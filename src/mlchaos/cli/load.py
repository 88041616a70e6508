"""``mlchaos load URL``: open-loop HTTP load with latency people can trust.

Rich output for people (a live line per second, then a summary table and a
loud INVALID panel when the generator itself could not keep up); ``--json``
prints the full :class:`~mlchaos.load.stats.LoadReport` for machines.

Exit codes follow the run verdicts: 0 VALID, 2 bad flags or URL, 5 INVALID
(the numbers describe the generator, not the system) or generator failure.
"""

from __future__ import annotations

import json as jsonlib
import os
import sys
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

if TYPE_CHECKING:
    from pydantic import ValidationError

EXIT_BAD_INPUT = 2
EXIT_INVALID = 5


def _fmt_ms(v: float | None) -> str:
    return "–" if v is None else f"{v * 1e3:.3f}"


#: Where each LoadSpec field came from on the command line, so an error names the flag the user typed.
_FLAGS = {
    "rate": "--rate", "duration": "--duration", "arrivals": "--arrivals", "timeout": "--timeout",
    "processes": "--processes", "sample": "--sample", "loop": "--loop", "connections": "--connections",
    "lag_budget": "--lag-budget", "spin": "--spin", "seed": "--seed", "request.url": "URL",
    "request.method": "--method", "request.headers": "--header", "request.body": "--body",
    "request.body_file": "--body-file", "profile.type": "--profile", "profile.start": "--ramp-from",
    "profile.over": "--ramp-over", "profile.baseline": "--baseline", "profile.at": "--spike-at",
    "profile.length": "--spike-for", "profile.rise": "--spike-rise", "profile.steps": "--steps",
    "ca_file": "--cacert", "insecure": "--insecure",
    "llm.api": "--llm", "llm.model": "--model", "llm.stream": "--stream/--no-stream", "llm.prompts": "--prompts",
    "llm.prompts.generate.tokens": "--prompt-tokens", "llm.max_tokens": "--max-tokens",
    "llm.stall_timeout": "--stall-timeout", "llm.slo": "--slo", "llm": "--llm",
}


def _dist(flag: str, text: str) -> Any:
    """``64`` | ``uniform:MIN:MAX`` | ``normal:MEAN:SD`` | ``lognormal:MEAN:SD`` → an llm length law."""
    parts = text.split(":")
    try:
        if len(parts) == 1:
            return int(parts[0])
        kind, a, b = parts
        if kind == "uniform":
            return {"dist": "uniform", "min": int(a), "max": int(b)}
        if kind in ("normal", "lognormal"):
            return {"dist": kind, "mean": float(a), "sd": float(b)}
    except ValueError:
        pass
    raise ValueError(f"{flag}: expected N, uniform:MIN:MAX, normal:MEAN:SD or lognormal:MEAN:SD (got {text!r})")


def _llm_block(api: str, model: str, stream: bool, prompts: str | None, prompt_tokens: str, max_tokens: str,
               stall_timeout: str, slo: str | None) -> dict[str, Any]:
    """The ``llm:`` block of ``mlchaos load --llm``: the same model as an experiment's."""
    block: dict[str, Any] = {"api": api, "model": model, "stream": stream, "stall_timeout": stall_timeout,
                             "max_tokens": _dist("--max-tokens", max_tokens)}
    if prompts is not None:
        if not os.path.isfile(prompts):
            raise ValueError(f"--prompts: {prompts}: no such file")
        block["prompts"] = {"file": prompts}
    else:
        block["prompts"] = {"generate": {"tokens": _dist("--prompt-tokens", prompt_tokens)}}
    if slo:
        items = {}
        for part in slo.split(","):
            k, sep, v = part.strip().partition("=")
            if not sep or k.strip() not in ("ttft", "tpot", "e2e", "e2el"):
                raise ValueError(f"--slo: expected 'ttft=500ms,tpot=50ms,e2e=10s' (got {part.strip()!r})")
            items[k.strip()] = v.strip()
        block["slo"] = items
    return block


def _flag_errors(exc: ValidationError) -> list[str]:
    """``--rate: invalid rate 'fast': ...`` rather than pydantic's report on the model behind the flags."""
    out = []
    for e in exc.errors():
        loc = [str(x) for x in e["loc"]]
        if loc[:1] == ["profile"] and len(loc) > 2:  # pydantic names the union member: profile.step.steps…
            del loc[1]
        flag = next((_FLAGS[".".join(loc[:n])] for n in range(len(loc), 0, -1) if ".".join(loc[:n]) in _FLAGS),
                    ".".join(loc) or "load")
        msg = str(e["msg"]).removeprefix("Value error, ")
        given = e.get("input")
        shown = f" (got {given!r})" if isinstance(given, str | int | float) and repr(given) not in msg else ""
        out.append(f"{flag}: {msg}{shown}")
    return out


def _build_spec(
    url: str,
    rate: str,
    duration: str,
    arrivals: str,
    profile: str,
    ramp_from: str,
    ramp_over: str | None,
    baseline: str | None,
    spike_at: str | None,
    spike_for: str | None,
    spike_rise: str,
    steps: str | None,
    method: str,
    header: list[str],
    body: str | None,
    body_file: str | None,
    timeout: str,
    processes: str,
    connections: int | None,
    sample: str,
    lag_budget: str | None,
    loop: str,
    spin: str | None,
    seed: int | None,
    cacert: str | None = None,
    insecure: bool = False,
    force: bool = False,
    llm: dict[str, Any] | None = None,
) -> Any:
    from mlchaos.load.spec import LoadSpec

    headers: dict[str, str] = {}
    for h in header:
        if ":" not in h:
            raise typer.BadParameter(f"header {h!r}: expected 'Name: value'")
        k, _, v = h.partition(":")
        headers[k.strip()] = v.strip()
    prof: dict[str, Any] = {"type": profile}
    if profile == "ramp":
        prof.update({"start": ramp_from, "over": ramp_over or duration})
    elif profile == "spike":
        if baseline is None or spike_at is None or spike_for is None:
            raise typer.BadParameter("--profile spike needs --baseline, --spike-at and --spike-for")
        prof.update({"baseline": baseline, "at": spike_at, "length": spike_for, "rise": spike_rise})
    elif profile == "step":
        if not steps:
            raise typer.BadParameter("--profile step needs --steps '100/s:10s,200/s:10s'")
        items = []
        for part in steps.split(","):
            r, _, d = part.strip().partition(":")
            items.append({"rate": r, "for": d or duration})
        prof["steps"] = items
    elif profile != "constant":
        raise typer.BadParameter(f"unknown profile {profile!r}: constant|ramp|spike|step")
    data: dict[str, Any] = {
        "request": {"url": url, "method": method, "headers": headers},
        "rate": rate,
        "arrivals": arrivals,
        "profile": prof,
        "duration": duration,
        "timeout": timeout,
        "processes": processes if processes == "auto" or not processes.isdigit() else int(processes),
        "sample": sample,
        "loop": loop,
    }
    if body is not None:
        try:
            data["request"]["body"] = jsonlib.loads(body)
        except ValueError:
            data["request"]["body"] = body
    if body_file is not None:
        data["request"]["body_file"] = body_file
    if connections is not None:
        data["connections"] = connections
    if lag_budget is not None:
        data["lag_budget"] = lag_budget
    if spin is not None:
        data["spin"] = spin
    if seed is not None:
        data["seed"] = seed
    if cacert is not None:
        if not os.path.isfile(cacert):
            raise ValueError(f"--cacert: {cacert}: no such file")
        data["ca_file"] = cacert
    if insecure:
        data["insecure"] = True
    if llm is not None:
        from urllib.parse import urlsplit

        from mlchaos.load.llmspec import API_PATHS

        data["llm"] = llm
        data["request"]["method"] = "POST"
        if urlsplit(url).path in ("", "/") and llm.get("api") in API_PATHS:  # a base URL: the API's own path
            data["request"]["url"] = url.rstrip("/") + API_PATHS[llm["api"]]
        if timeout == "5s":  # the plain default: an LLM load's is longer (LoadSpec's LLM_TIMEOUT)
            del data["timeout"]
    # every bound (rate, processes per core, pool sizes, durations) is LoadSpec's, shared with experiments
    return LoadSpec.model_validate(data, context={"force": force})


def load(
    url: str = typer.Argument(..., help="Absolute http:// or https:// URL, e.g. http://127.0.0.1:8000/predict."),
    rate: str = typer.Option("100/s", "--rate", "-r", help="Target (peak) rate: '500/s', '30000/m'."),
    duration: str = typer.Option("10s", "--duration", "-d", help="Run length: '30s', '2m'."),
    arrivals: str = typer.Option("constant", "--arrivals", help="constant | poisson."),
    profile: str = typer.Option("constant", "--profile", help="constant | ramp | spike | step."),
    ramp_from: str = typer.Option("0/s", "--ramp-from", help="ramp: starting rate."),
    ramp_over: str | None = typer.Option(None, "--ramp-over", help="ramp: ramp length (default: whole run)."),
    baseline: str | None = typer.Option(None, "--baseline", help="spike: rate outside the peak."),
    spike_at: str | None = typer.Option(None, "--spike-at", help="spike: peak start, e.g. '10s'."),
    spike_for: str | None = typer.Option(None, "--spike-for", help="spike: peak length, e.g. '5s'."),
    spike_rise: str = typer.Option("0s", "--spike-rise", help="spike: linear rise/fall time."),
    steps: str | None = typer.Option(None, "--steps", help="step: 'RATE:DURATION,...', e.g. '100/s:10s,300/s:10s'."),
    method: str = typer.Option("GET", "--method", "-X", help="HTTP method (POST implied with a body)."),
    header: list[str] = typer.Option([], "--header", "-H", help="Extra header 'Name: value' (repeatable)."),
    body: str | None = typer.Option(None, "--body", help="Request body (JSON or text)."),
    body_file: str | None = typer.Option(None, "--body-file", help="JSONL file of request bodies, cycled."),
    timeout: str = typer.Option("5s", "--timeout", help="Per-request timeout from the intended send time."),
    processes: str = typer.Option("auto", "--processes", "-p", help="Generator processes, or 'auto'."),
    connections: int | None = typer.Option(None, "--connections", "-c", help="Fixed pool size per process."),
    sample: str = typer.Option("0", "--sample", help="Fraction of response bodies to keep, e.g. '1%'."),
    lag_budget: str | None = typer.Option(None, "--lag-budget", help="Schedule-lag p99 budget (default 1ms)."),
    loop: str = typer.Option("auto", "--loop", help="auto | uvloop | asyncio."),
    spin: str | None = typer.Option(None, "--spin", help="Pacer busy-wait window ('0' = never spin)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the Poisson plan."),
    cacert: str | None = typer.Option(None, "--cacert", help="https: PEM CA bundle that signed the server's certificate."),
    insecure: bool = typer.Option(False, "--insecure", "-k", help="https: do not verify the server's certificate."),
    force: bool = typer.Option(False, "--force", help="Allow more than 4 generator processes per core."),
    llm_api: str | None = typer.Option(None, "--llm", help="Speak an OpenAI-compatible API: chat | completions "
                                       "(URL may be the base URL; TTFT, ITL, TPOT, goodput are reported)."),
    model: str = typer.Option("default", "--model", help="--llm: the requests' 'model' field."),
    stream: bool = typer.Option(True, "--stream/--no-stream", help="--llm: ask for an SSE stream."),
    prompts: str | None = typer.Option(None, "--prompts", help="--llm: JSONL of prompts or message lists, cycled."),
    prompt_tokens: str = typer.Option("32", "--prompt-tokens", help="--llm: generated prompt length in words "
                                      "(≈ tokens): N, uniform:MIN:MAX, normal:MEAN:SD, lognormal:MEAN:SD."),
    max_tokens: str = typer.Option("64", "--max-tokens", help="--llm: max_tokens law, same forms."),
    stall_timeout: str = typer.Option("30s", "--stall-timeout", help="--llm: the client's limit between events."),
    slo: str | None = typer.Option(None, "--slo", help="--llm: goodput SLOs, e.g. 'ttft=500ms,tpot=50ms,e2e=10s'."),
    json: bool = typer.Option(False, "--json", help="Print the full report as JSON (machines)."),
    series: bool = typer.Option(False, "--series", help="Also print the per-second series (people)."),
) -> None:
    """Drive open-loop HTTP load and report trustworthy latency (measured from the intended send time)."""
    from pydantic import ValidationError

    from mlchaos.load.runner import LoadError, run_load

    try:
        llm = None
        if llm_api is not None:
            if llm_api not in ("chat", "completions"):
                raise ValueError(f"--llm: expected chat or completions (got {llm_api!r})")
            llm = _llm_block(llm_api, model, stream, prompts, prompt_tokens, max_tokens, stall_timeout, slo)
        spec = _build_spec(url, rate, duration, arrivals, profile, ramp_from, ramp_over, baseline, spike_at,
                           spike_for, spike_rise, steps, method, header, body, body_file, timeout, processes,
                           connections, sample, lag_budget, loop, spin, seed, cacert, insecure, force, llm)
    except ValidationError as exc:
        for line in _flag_errors(exc):
            print(f"mlchaos load: {line}", file=sys.stderr)
        _json_errors(json, _flag_errors(exc))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except ValueError as exc:
        print(f"mlchaos load: {exc}", file=sys.stderr)
        _json_errors(json, [str(exc)])
        raise typer.Exit(EXIT_BAD_INPUT) from None

    from mlchaos.cli._common import console

    err = console(stderr=True)
    progress = _Progress(err) if not json and err.is_terminal else None
    try:
        report = run_load(spec, on_interval=progress.feed if progress else None)
    except (LoadError, ValueError, OSError) as exc:
        print(f"mlchaos load: {exc}", file=sys.stderr)
        _json_errors(json, [str(exc)], EXIT_INVALID)
        raise typer.Exit(EXIT_INVALID) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if json:
        sys.stdout.write(jsonlib.dumps(report.to_dict(), indent=2) + "\n")
        if not report.valid:
            err.print(f"[bold red]INVALID load:[/] {escape(report.invalid_reason)}")
    else:
        _print_report(report, series)
    raise typer.Exit(0 if report.valid else EXIT_INVALID)


def _json_errors(json_out: bool, messages: list[str], code: int = EXIT_BAD_INPUT) -> None:
    """Under ``--json`` an error is a JSON object on stdout too: a script never parses an empty stdout."""
    if json_out:
        sys.stdout.write(jsonlib.dumps({"status": "invalid" if code == EXIT_BAD_INPUT else "error", "exit_code": code,
                                        "errors": [{"message": m} for m in messages]}) + "\n")


class _Progress:
    """One line per second while running (stderr, people only)."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self.sec = -1
        self.done = 0
        self.errors = 0

    def feed(self, iv: Any) -> None:
        self.done += iv.done
        self.errors += iv.status_errors + iv.timeouts + iv.conn
        s = int(iv.t)
        if s != self.sec:
            self.sec = s
            p99 = iv.lat.quantile(0.99)
            tokens = (f" ttft p99={_fmt_ms(iv.llm.ttft.quantile(0.99))} ms itl p99={_fmt_ms(iv.llm.itl.quantile(0.99))} ms"
                      if iv.llm is not None else "")
            self.console.print(
                f"[dim]t={iv.t:5.1f}s done={self.done} errors={self.errors} "
                f"interval p99={_fmt_ms(p99)} ms{tokens} lag p99={_fmt_ms(iv.lag.quantile(0.99))} ms[/]"
            )


def _print_report(report: Any, series: bool) -> None:
    from rich.panel import Panel
    from rich.table import Table

    from mlchaos.cli._common import console

    con = console()
    d = report.to_dict()
    v = report.validity
    head = Table(show_header=False, box=None)
    head.add_row("url", report.url)
    head.add_row("plan", f"{report.arrivals} arrivals, {report.profile} profile, target {report.target_rate:g}/s, "
                 f"{report.processes} process(es), {report.loop} loop, {report.peak_connections} connections")
    head.add_row("rate", f"scheduled {report.scheduled_rate:,.1f}/s · sent {report.achieved_rate:,.1f}/s · "
                 f"completed {report.completed_rate:,.1f}/s over {report.duration:.2f}s")
    errs = ", ".join(f"{k} {n}" for k, n in report.errors.items() if n) or "none"
    if report.connection_errors:  # by kind: ECONNREFUSED is a fault, SSLCertVerificationError a setting
        errs += " (failed connects: " + ", ".join(f"{k} {n}" for k, n in sorted(report.connection_errors.items())) + ")"
    er = report.error_rate
    head.add_row("errors", f"{errs} (rate {er:.3%})" if er is not None else errs)
    codes = ", ".join(f"{k}×{n}" for k, n in d["codes"].items())
    head.add_row("statuses", codes or "–")
    con.print(head)
    t = Table(title="milliseconds", title_justify="left")
    t.add_column("")
    for c in ("p50", "p90", "p95", "p99", "p99.9", "max", "mean"):
        t.add_column(c, justify="right")
    for name, key in (("latency (from plan)", "latency"), ("service time", "service_time"),
                      ("schedule lag", "lag")):
        q = d[key]
        t.add_row(name, *(_fmt_ms(q[k]) for k in ("p50", "p90", "p95", "p99", "p999", "max", "mean")))
    con.print(t)
    if series:
        s = Table(title="per second")
        for c in ("t", "sent", "done", "errors", "p50 ms", "p99 ms", "max ms"):
            s.add_column(c, justify="right")
        for row in report.series:
            s.add_row(str(row["t"]), str(row["sent"]), str(row["done"]), str(row["errors"]),
                      _fmt_ms(row["p50"]), _fmt_ms(row["p99"]), _fmt_ms(row["max"]))
        con.print(s)
    if report.llm is not None:
        _print_llm(con, report.llm)
    cpu = f"{v.cpu:.2f} cores" if v.cpu is not None else "?"
    facts = (f"dispatched {v.dispatched}/{v.scheduled} scheduled ({(v.achieved or 0):.2%}), lag p99 {_fmt_ms(v.lag_p99)} ms "
             f"(budget {_fmt_ms(v.lag_budget)} ms), lag max {_fmt_ms(v.lag_max)} ms, generator CPU {cpu}")
    if v.valid:
        con.print(f"[bold green]VALID[/] — {facts}")
    else:
        reasons = "\n".join(f"• {r}" for r in v.reasons)
        con.print(Panel(f"{reasons}\n\n{facts}\n\nDo not judge the system on these numbers: the load "
                        "generator itself did not deliver the planned load.",
                        title="INVALID load", border_style="bold red", expand=con.is_terminal))


def _print_llm(con: Any, llm: dict[str, Any]) -> None:
    """The token-level table of an LLM load (vLLM's units: milliseconds; goodput in requests/s)."""
    from rich.table import Table

    def ms(v: float | None) -> str:
        return "–" if v is None else f"{v:.1f}"

    t = Table(title="LLM (milliseconds)", title_justify="left")
    t.add_column("")
    for c in ("count", "p50", "p90", "p99", "max", "mean"):
        t.add_column(c, justify="right")
    for name, key in (("TTFT", "ttft_ms"), ("ITL", "itl_ms"), ("TPOT", "tpot_ms"), ("e2e", "e2e_ms")):
        q = llm[key]
        t.add_row(name, str(q["count"]), *(ms(q[k]) for k in ("p50", "p90", "p99", "max", "mean")))
    con.print(t)
    sc = llm.get("stream_completion")
    errs = ", ".join(f"{k} {n}" for k, n in sorted(llm["errors"].items())) or "none"
    con.print(f"completed {llm['completed']}/{llm['ended']} · with [DONE] "
              f"{'–' if sc is None else f'{sc:.1%}'} · goodput {llm.get('goodput', 0):.2f}/s · "
              f"output tokens {llm['output_tokens']} ({llm.get('output_tokens_per_s', 0):.1f}/s) · errors: {errs}")
