"""``mlchaos run``: one experiment, live progress, an honest exit code."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from mlchaos import fmt
from mlchaos.cli._common import INVALID, console, spec_errors_json


def _default_journal(title: str) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40] or "run"
    return Path("mlchaos-runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}.jsonl"


def load_variables(flags: list[str]) -> dict[str, str]:
    """``--var NAME=VALUE`` flags as a mapping; a bad one is an error naming the flag (exit 2)."""
    from mlchaos.spec.variables import parse_flags

    try:
        return parse_flags(flags)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(INVALID) from None


def load_validated(experiment: Path, sets: list[str], json_out: bool = False,
                   variables: Sequence[str] = ()) -> Any:
    """Load, override and validate; print FILE:LINE:COL errors and exit 2 on failure.

    Under ``--json`` the errors are also one JSON object on stdout (file, line, col, path, message),
    so a script never reads an empty stdout for an invalid file.
    """
    from mlchaos.spec.loader import SpecErrors, load_file

    def invalid(errors: list[Any]) -> typer.Exit:
        for e in errors:
            print(e, file=sys.stderr)
        if json_out:
            print(json.dumps(spec_errors_json(errors)))
        return typer.Exit(INVALID)

    try:
        # errors in the file keep their FILE:LINE:COL; errors in what a --set gave point at that flag
        loaded = load_file(experiment, overrides=sets, variables=load_variables(list(variables)))
    except SpecErrors as exc:
        raise invalid(exc.errors) from None
    for note in loaded.notes:  # an old spelling: a warning line, never a reason not to run
        print(f"warning: {note}", file=sys.stderr)
    return loaded


def print_plan(v: Any) -> None:
    """The dry run: what would be done, to what, when, with which blast radius."""
    exp = v.spec
    print(f"Experiment: {exp.title}")
    print(f"  phases: baseline {exp.phases.baseline:g}s, fault {v.fault_phase_length():g}s, "
          f"recovery {exp.phases.recovery:g}s (max_duration {exp.max_duration:g}s)")
    print(f"  interval {exp.interval:g}s, lease TTL {exp.lease_ttl:g}s")
    for name, t in v.targets.items():
        print(f"  target {name}: {t.model_dump(mode='json', exclude_none=True)}")
    if v.load is not None:
        print(f"  load: {v.load.model_dump(mode='json', exclude_none=True)}")
    print("  steady state:")
    for p in v.steady_state:
        print(f"    - {p.name or p.probe}: {p.model_dump(mode='json', exclude_none=True)}")
    print("  faults:")
    base = exp.phases.baseline
    for (start, end), f in zip(v.fault_windows(), v.faults, strict=True):
        radius = {k: getattr(f, k) for k in ("count", "percent", "probability", "keep_healthy", "fraction")
                  if getattr(f, k, None) is not None}
        print(f"    - {f.name or f.fault} on target {f.target!r}: from +{base + start:g}s to +{base + end:g}s,"
              f" blast radius {radius or 'plugin default'}")
        print(f"      {f.model_dump(mode='json', exclude_none=True)}")
        revert = getattr(f, "revert", None)
        if revert is not None:
            print(f"      then, when removed, runs: {_argv(revert.argv)}")
    if v.steps:  # never run by a dry run: shown, with the point of the run each waits for
        print("  steps (commands mlchaos runs):")
        for i, s in enumerate(v.steps):
            when = (f"at +{base + (s.at or 0.0):g}s" if s.when is None
                    else f"after fault {s.of!r} is removed" if s.of is not None
                    else "after every fault is removed" if s.when == "fault-removed"
                    else "when the recovery phase begins")
            print(f"    - {s.name or f'command#{i}'}: {when}: {_argv(s.argv)}"
                  f" (timeout {s.timeout:g}s, expect exit {s.expect_exit})")
    print("  abort when:")
    for p in v.abort:
        print(f"    - {p.name or p.probe}: {p.model_dump(mode='json', exclude_none=True)}")
    print("dry run: nothing was touched")


def _argv(argv: list[str]) -> str:
    """An argv as a shell would need it typed (for reading only: it is never given to a shell)."""
    import shlex

    return shlex.join(argv)


class _Progress:
    """Live view: a progress bar over the planned length plus the events that matter."""

    def __init__(self, planned: float, quiet: bool, units: dict[str, str] | None = None) -> None:
        self.console = console(stderr=True)
        self.units = units or {}
        self.quiet = quiet
        self.planned = planned
        self._progress: Any = None
        self._task: Any = None
        self._breached: set[str] = set()

    def __enter__(self) -> _Progress:
        if not self.quiet:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                                      console=self.console, transient=True)
            self._progress.__enter__()
            self._task = self._progress.add_task("preflight", total=self.planned)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def __call__(self, e: dict[str, Any]) -> None:
        if self.quiet:
            return
        ev = e["event"]
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=min(e.get("rel", 0.0), self.planned))
        line = None
        if ev == "phase":
            if self._progress is not None:
                self._progress.update(self._task, description=e["phase"])
            line = f"[bold]{e['phase']}[/bold]"
        elif ev == "fault-inject":
            line = f"[red]inject[/red] {escape(str(e['fault']))} → {escape(', '.join(map(str, e.get('targets', []))))}"
        elif ev == "fault-remove":
            line = f"[green]remove[/green] {escape(str(e['fault']))} (active {e.get('active_s', 0):.2f}s)"
        elif ev == "probe" and e.get("trusted") is False and ("?" + e["probe"]) not in self._breached:
            self._breached.add("?" + e["probe"])  # once per probe: an untrustworthy reading is evidence of nothing
            why = (e.get("instrument") or {}).get("why", "instrument untrustworthy")
            line = f"[yellow]untrustworthy[/yellow] {escape(e['probe'])}: {escape(str(why))}"
        elif ev == "probe" and e.get("ok") is False and e["probe"] not in self._breached:
            self._breached.add(e["probe"])
            line = f"[yellow]deviation[/yellow] {escape(e['probe'])}: {escape(str(e.get('reason')))}"
        elif ev == "probe" and e.get("checkpoint"):
            mark = "✓" if e.get("ok") else "✗"
            shown = fmt.quantity(e.get("value"), self.units.get(e["probe"], ""))
            line = f"  {mark} {escape(e['probe'])} ({e['checkpoint']}): {escape(shown)} {escape(e.get('reason') or '')}"
        elif ev == "baseline-unsettled":
            line = f"[yellow]baseline not met[/yellow] (check {e['attempt']}; settling up to {e['settle']:g}s): {escape(str(e['reason']))}"
        elif ev == "baseline-settled":
            line = f"[green]baseline settled[/green] after {e['waited']:.1f}s ({e['attempts']} checks)"
        elif ev in ("step-end", "fault-revert-action"):
            what = escape(str(e.get("step") or f"revert of {e.get('fault')}"))
            line = (f"[cyan]step[/cyan] {what}: exit {e.get('exit_code')} ({e.get('duration_s', 0):.2f}s)"
                    if e.get("ok") else f"[magenta]step failed[/magenta] {what}: {escape(str(e.get('error')))}")
        elif ev in ("stop-requested", "error", "signal-ignored", "fault-inject-failed", "fault-remove-failed"):
            line = f"[magenta]{ev}[/magenta] {escape(str(e.get('reason') or e.get('message') or e.get('error') or ''))}"
        if line:
            self.console.print(f"{e.get('rel', 0):7.2f}s {line}")


def run(
    experiment: Path = typer.Argument(..., help="Experiment file (YAML).", show_default=False),
    journal: Path | None = typer.Option(None, "--journal", "-j", help="Journal path (JSON Lines)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and touch nothing."),
    set_: list[str] = typer.Option([], "--set", help="Override a field: --set phases.baseline=2s (repeatable)."),
    var: list[str] = typer.Option([], "--var", help="Give a variable of the file a value: --var PORT=8080 (repeatable; "
                                  "the environment gives the others)."),
    report: Path | None = typer.Option(None, "--report", help="Write a report directory for this run."),
    postmortem: bool = typer.Option(False, "--postmortem", help="With --report: also write a blameless experiment record."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only print the verdict."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    """Run an experiment and exit with its verdict.

    Exit codes: 0 passed, 1 failed, 2 invalid, 3 aborted, 4 not-run (baseline not met),
    5 errored (a fault could not be injected or removed, a target was unreachable),
    6 inconclusive (the instruments could not be trusted or nothing was measured under the fault),
    7 refused ('mlchaos stop' is in force; nothing was touched).
    """
    v = load_validated(experiment, set_, json_out, var)
    if dry_run:
        print_plan(v)
        raise typer.Exit(0)
    from mlchaos.engine.runner import run_experiment

    jpath = journal or _default_journal(v.spec.title)
    _defer_late_signals()
    with _Progress(v.planned_length(), quiet or json_out, probe_units(v)) as progress:
        result = run_experiment(v, journal_path=jpath, on_event=progress)
    _ignore_late_signals()
    if report is not None:
        from mlchaos.report import write_report

        write_report([result.summary], report, journals=[jpath], postmortems=postmortem)
    if json_out:
        print(json.dumps(result.summary, default=str))
    else:
        _print_verdict(result.summary, jpath)
    raise typer.Exit(result.exit_code)


def probe_units(v: Any) -> dict[str, str]:
    """Probe label → display unit (``s``, ``ratio``...), so the live view shows ``113 ms``, not ``0.1134``."""
    return {p.name or p.probe: fmt.spec_unit(p.model_dump(mode="json")) for p in [*v.steady_state, *v.abort]}


def _defer_late_signals() -> None:
    """A Ctrl-C after the faults are removed must not turn the verdict's exit code into 130."""
    import signal

    def note(signum: int, frame: Any) -> None:
        print(f"mlchaos: {signal.Signals(signum).name} received; finishing the verdict", file=sys.stderr)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, note)


def _ignore_late_signals() -> None:
    """The verdict is decided: from now on SIGINT/SIGTERM are ignored at the OS level.

    A Python-level handler is not enough: interpreter shutdown resets such handlers to the default,
    and a Ctrl-C arriving then (a double Ctrl-C) killed the process with 130 although stdout and
    the journal already said e.g. "ABORTED (exit 3)".  SIG_IGN survives shutdown.
    """
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def _print_verdict(s: dict[str, Any], jpath: Path) -> None:
    colour = {"passed": "green", "failed": "red", "aborted": "yellow", "not-run": "yellow",
              "inconclusive": "yellow", "refused": "yellow"}.get(s["status"], "magenta")
    c = console()
    c.print(f"[bold {colour}]{s['status'].upper()}[/bold {colour}] (exit {s['exit_code']}): {escape(str(s['reason']))}")
    lv = s.get("load_validity")
    if lv is not None:
        c.print("load: VALID" if lv.get("valid") else f"load: INVALID ({escape(str(lv.get('reason')))})")
    from mlchaos.report.llm import llm_line

    if (llm := llm_line(s)) is not None:  # an LLM load: TTFT, ITL, TPOT, e2e, goodput, [DONE], errors by kind
        c.print(escape(llm))
    inst = s.get("instruments") or {}
    if inst.get("untrusted"):
        c.print(f"instruments: {inst['untrusted']} of {inst['evaluations']} evaluations untrustworthy "
                f"({escape('; '.join(inst.get('why') or []))})")
    if s.get("removal_latency_s") is not None:
        c.print(f"faults removed {fmt.seconds(s['removal_latency_s'])} after the abort")
    c.print(f"journal: {jpath}")
