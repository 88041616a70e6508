"""``mlchaos demo``: every classic experiment of chaos engineering for ML, naive vs mitigated.

The demo brings up the built-in lab in its own directory, runs the ten
shipped scenarios against the naive and then the mitigated variant of each
system, brings the lab down (on every exit path), and writes one report
directory: ``index.html``, ``summary.json``, ``junit.xml`` and the journals.
It exits 0 when every verdict is the expected one (naive → failed or aborted,
mitigated → passed), 1 otherwise, so it doubles as an end-to-end test.

The lab the demo starts goes down with it however it ends: SIGINT, SIGTERM, SIGHUP abort the scenario
in progress, bring the lab down and exit 128 + the signal's number (:mod:`._demo_signals`); after ``kill -9``
the lab's supervisor sees the demo gone and stops the lab itself (``Lab.up(owner=...)``), and the
engine's watchdog reverts the faults.  A lab already running in ``--lab-dir`` is reused, not owned.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any

import typer

from mlchaos.cli._common import fail_json
from mlchaos.cli._demo_signals import Interrupted, Signals


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    file: str
    systems: tuple[str, ...]
    naive_variant: str = "naive"
    prepare: str | None = None
    """``module:function(lab)`` run before the experiment (set-up the scenario needs)."""
    finish: str | None = None
    """``module:function(lab)`` run after it (leave the lab as the next scenario expects)."""


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("replica-kill", "replica-kill.yaml", ("serving",)),
    Scenario("batch-corruption", "batch-corruption.yaml", ("batch",)),
    Scenario("feature-latency", "feature-latency.yaml", ("realtime",)),
    Scenario("fraud-feature-store-delay", "fraud-feature-store-delay.yaml", ("realtime",)),
    Scenario("embedding-outage", "embedding-outage.yaml", ("recommender",)),
    Scenario("silent-zeros", "silent-zeros.yaml", ("realtime",), naive_variant="silent-zeros"),
    Scenario("validation-outage", "validation-outage.yaml", ("serving",),
             prepare="mlchaos.lab.delivery.scenario:prepare", finish="mlchaos.lab.delivery.scenario:finish"),
    # LLM serving (docs/llm.md): the token-stream scenarios on the lab's llm system
    Scenario("llm-stream-stall", "llm-stream-stall.yaml", ("llm",)),
    Scenario("llm-overload", "llm-overload.yaml", ("llm",)),
    Scenario("llm-gray-failure", "llm-gray-failure.yaml", ("llm",)),
)


def _hook(ref: str | None, lab: Any) -> None:
    if ref:
        import importlib

        module, _, attr = ref.partition(":")
        getattr(importlib.import_module(module), attr)(lab)


def run_validation_outage(variant: str, lab_dir: Path, journal: Path, *, load_delay: float = 0.5) -> Any:
    """Run scenario 7 ``validation-outage`` alone in ``variant`` (``naive`` | ``mitigated``) on ``lab_dir``.

    It brings up the lab's serving system in that variant, prepares it
    (:func:`mlchaos.lab.delivery.scenario.prepare`), runs the experiment with
    the engine and brings the lab down again (only if this call started it).
    Returns the engine's :class:`~mlchaos.engine.runner.RunResult`: naive →
    ``failed`` (an unvalidated model reached serving), mitigated → ``passed``.
    Here, not in the lab, because the lab is a system under test and must not
    import the engine.
    """
    from mlchaos.engine.runner import run_experiment
    from mlchaos.lab import Lab
    from mlchaos.lab.delivery.scenario import EXPERIMENT, experiment, prepare
    from mlchaos.spec.loader import load_dict

    if variant not in ("naive", "mitigated"):
        raise ValueError(f"variant must be naive or mitigated, got {variant!r}")
    lab_dir = Path(lab_dir)
    lab = Lab(lab_dir, load_delay=load_delay)
    started = not lab.is_up()
    try:
        lab.up(["serving"], variant=variant, owner=os.getpid())  # a lab it starts goes down with this process
        prepare(lab)
        return run_experiment(load_dict(experiment(lab_dir), source=str(EXPERIMENT)), journal_path=journal)
    finally:
        if started:
            lab.down()
EXPECTED = {"naive": ["failed", "aborted"], "mitigated": ["passed"]}


def scenario_path(s: Scenario) -> Path:
    from mlchaos.examples import path

    return path("scenarios/" + s.file)


class _Board:
    """The live table: one row per scenario, one column per variant, updated as runs progress."""

    def __init__(self, scenarios: list[Scenario], variants: list[str], quiet: bool) -> None:
        self.scenarios, self.variants, self.quiet = scenarios, variants, quiet
        self.cells: dict[tuple[str, str], str] = {}
        self.live: Any = None
        self.started = time.monotonic()
        self.note = ""

    def __enter__(self) -> _Board:
        import sys

        # a live table only redraws on a terminal; piped (CI logs, tee) it would print nothing until the
        # end, so there each finished run is one line instead (see finished())
        if not self.quiet and sys.stderr.isatty():
            from rich.live import Live

            from mlchaos.cli._common import console

            self.live = Live(self.render(), console=console(stderr=True), refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def finished(self, scenario: str, variant: str, text: str, reason: str) -> None:
        """A run is over: its cell on the live table, or one line on stderr when that is not a terminal."""
        self.set(scenario, variant, text)
        if self.live is None and not self.quiet:
            import sys

            word = text.split()[0] if text else ""
            mark = "ok " if word in EXPECTED.get(variant, []) else "BAD"
            print(f"{time.monotonic() - self.started:5.0f}s {mark} {scenario} [{variant}] {text}: {reason}",
                  file=sys.stderr, flush=True)

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.update(self.render())
            self.live.__exit__(*exc)

    def set(self, scenario: str, variant: str, text: str, note: str | None = None) -> None:
        self.cells[(scenario, variant)] = text
        if note is not None:
            self.note = note
        if self.live is not None:
            self.live.update(self.render())

    def render(self) -> Any:
        from rich.table import Table

        colours = {"passed": "green", "failed": "red", "aborted": "yellow", "not-run": "magenta", "errored": "magenta"}
        t = Table(title=f"mlchaos demo — {time.monotonic() - self.started:.0f}s  {self.note}", expand=False)
        t.add_column("scenario")
        for v in self.variants:
            t.add_column(v)
        for s in self.scenarios:
            row = [s.name]
            for v in self.variants:
                text = self.cells.get((s.name, v), "·")
                word = text.split()[0] if text else ""
                ok = word in EXPECTED.get(v, [])
                style = colours.get(word)
                row.append(f"[{style}]{text}[/{style}]" + (" ✓" if ok else " ✗") if style else text)
            t.add_row(*row)
        return t


def _warm_up(lab: Any, systems: list[str], requests: int = 150) -> None:
    """First requests pay for lazy imports, model warm-up and connection set-up: not what a baseline measures."""
    import itertools
    import json

    import httpx

    from mlchaos.examples import path

    ep = lab.endpoints()
    calls: list[tuple[str, str, list[Any]]] = []
    if "serving" in systems:
        bodies = [json.loads(x) for x in path("scenarios/serving-requests.jsonl").read_text().splitlines()[:50]]
        calls.append(("POST", ep["serving"] + "/predict", bodies))
    if "realtime" in systems:
        bodies = [json.loads(x) for x in path("scenarios/fraud-requests.jsonl").read_text().splitlines()[:300]]
        calls.append(("POST", ep["realtime"] + "/predict", bodies))
    if "recommender" in systems:
        calls.append(("GET", ep["recommender"] + "/recommend/42?k=10", [None]))
    if "llm" in systems:  # a few generations: each costs tens of milliseconds, not one
        body = {"model": "primary", "messages": [{"role": "user", "content": "return the value"}], "max_tokens": 8}
        calls.append(("POST", ep["llm"] + "/v1/chat/completions", [body] * 8))
    with httpx.Client(timeout=5.0) as client:
        for method, url, bodies in calls:
            count = len(bodies) if "/v1/" in url else max(requests, len(bodies))
            for body in itertools.islice(itertools.cycle(bodies), count):
                with contextlib.suppress(httpx.HTTPError):
                    client.request(method, url, json=body)


def run_demo(
    out: Path,
    *,
    lab_dir: Path | None = None,
    only: list[str] | None = None,
    variants: list[str] | None = None,
    quiet: bool = False,
    retries: int = 1,
) -> list[dict[str, Any]]:
    """Run the scenarios and write the report; return one summary per run (with scenario, variant, expected).

    A run whose verdict is not the expected one is run again up to ``retries`` times; the earlier
    attempts stay in the report (``earlier_attempts``), so a retry can never hide a real regression
    that repeats, and a one-off stall of a shared machine does not fail the demo.
    Raises :class:`Interrupted` (lab down, no report) on SIGINT, SIGTERM or SIGHUP.
    """
    from mlchaos.engine.runner import run_experiment
    from mlchaos.engine.state import state_dir
    from mlchaos.lab import Lab
    from mlchaos.lab.paths import resolve_lab_dir
    from mlchaos.report import write_report
    from mlchaos.spec.loader import load_file

    chosen = [s for s in SCENARIOS if not only or s.name in only]
    variants = variants or ["naive", "mitigated"]
    lab_dir = resolve_lab_dir(lab_dir or state_dir() / "demo-lab")  # absolute: it goes into the environment
    os.environ["MLCHAOS_LAB_DIR"] = str(lab_dir)  # the lab targets of the shipped experiments resolve it
    journals = out / "journals"
    journals.mkdir(parents=True, exist_ok=True)
    lab = Lab(lab_dir)
    runs: list[dict[str, Any]] = []
    paths: list[Path] = []
    systems = sorted({sys for s in chosen for sys in s.systems})
    with Signals() as signals, _Board(chosen, variants, quiet) as board:
        try:
            board.set(chosen[0].name, variants[0], "starting lab…", note=f"lab up: {', '.join(systems)}")
            # owner: a lab this starts goes down with the demo even after kill -9 (one already up is reused)
            lab.up(systems, variant=variants[0], timeout=120, owner=os.getpid())
            board.set(chosen[0].name, variants[0], "warming up…", note="warm-up")
            _warm_up(lab, systems)
            for variant in variants:
                for s in chosen:
                    lab_variant = s.naive_variant if variant == "naive" else variant
                    lab.set_variant(lab_variant, list(s.systems))
                    journal = journals / f"{s.name}-{variant}.jsonl"

                    def progress(e: dict[str, Any], s: Scenario = s, variant: str = variant) -> None:
                        signals.noted(e)
                        if e["event"] in ("phase", "fault-inject", "fault-remove", "stop-requested"):
                            label = e.get("phase") or e["event"]
                            board.set(s.name, variant, f"running: {label}")

                    earlier: list[dict[str, Any]] = []
                    for attempt in range(1, retries + 2):
                        board.set(s.name, variant, "running" if attempt == 1 else f"re-running ({attempt})",
                                  note=f"{s.name} [{variant}]")
                        _warm_up(lab, list(s.systems), requests=60)  # connections and caches after the switch
                        _hook(s.prepare, lab)
                        signals.check()
                        signals.in_run = True
                        try:
                            result = run_experiment(load_file(scenario_path(s)), journal_path=journal,
                                                    on_event=progress)
                        finally:
                            signals.in_run = False
                            _hook(s.finish, lab)
                        signals.check()  # aborted by a signal: the demo ends here, no retry
                        if result.status.value in EXPECTED[variant] or attempt > retries:
                            break
                        # an unexpected verdict on a shared machine may be a CPU stall, not the system: keep
                        # this attempt's journal, say so in the summary and the report, and run it once more
                        kept = journals / f"{s.name}-{variant}-attempt{attempt}.jsonl"
                        journal.replace(kept)
                        earlier.append({"attempt": attempt, "status": result.status.value,
                                        "reason": result.reason, "journal": kept.name})
                    run = {**result.summary, "scenario": s.name, "variant": variant, "lab_variant": lab_variant,
                           "expected": EXPECTED[variant], "earlier_attempts": earlier}
                    runs.append(run)
                    paths.append(journal)
                    again = f", attempt {len(earlier) + 1}" if earlier else ""
                    board.finished(s.name, variant,
                                   f"{result.status.value} ({result.summary['timing']['duration_s']:.0f}s{again})",
                                   result.reason)
        finally:
            try:
                board.set(chosen[0].name, variants[0], board.cells.get((chosen[0].name, variants[0]), ""),
                          note="lab down")
            finally:
                lab.down()
    write_report(runs, out, journals=paths)
    return runs


def demo(
    out: Path = typer.Option(Path("mlchaos-report"), "--out", "-o", help="Report directory."),
    lab_dir: Path | None = typer.Option(None, "--lab-dir", help="Lab directory (default: <state dir>/demo-lab)."),
    only: list[str] = typer.Option([], "--only", help="Run only these scenarios (repeatable)."),
    variant: list[str] = typer.Option([], "--variant", help="Run only these variants: naive, mitigated."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live table."),
    retries: int = typer.Option(1, "--retries", min=0, max=3,
                                help="Re-run a scenario whose verdict is unexpected (reported), up to N times."),
    json_out: bool = typer.Option(False, "--json", help="Print every run's verdict as JSON on stdout."),
) -> None:
    """Run the classic ML chaos experiments on the built-in lab, naive vs mitigated, and write a report.

    The lab it starts goes down with it, however the demo ends (Ctrl-C, SIGTERM, a closed terminal: exit
    128 + the signal, no report; kill -9: the lab's supervisor notices).  A lab already running in
    --lab-dir is reused.
    """
    known = {s.name for s in SCENARIOS}
    bad = [o for o in only if o not in known]
    if bad:
        raise fail_json(json_out, f"demo: unknown scenario {', '.join(bad)} (known: {', '.join(sorted(known))})",
                        flag="--only")
    bad = [v for v in variant if v not in EXPECTED]
    if bad:
        raise fail_json(json_out, f"demo: unknown variant {', '.join(bad)} (naive, mitigated)", flag="--variant")
    t0 = time.monotonic()
    try:
        runs = run_demo(out, lab_dir=lab_dir, only=only or None, variants=variant or None, quiet=quiet,
                        retries=retries)
    except Interrupted as exc:
        with contextlib.suppress(OSError):  # a closed terminal (SIGHUP) has nowhere to print
            if json_out:
                import json

                print(json.dumps({"status": "interrupted", "exit_code": 128 + exc.signum, "reason": str(exc)}))
            print(f"mlchaos demo: {exc}; the lab is down, no report written", file=sys.stderr)
        raise typer.Exit(128 + exc.signum) from None
    ok = all(r["status"] in r["expected"] for r in runs)
    if json_out:
        import json

        keys = ("scenario", "variant", "status", "expected", "exit_code", "reason", "run_id", "earlier_attempts")
        print(json.dumps({"status": "ok" if ok else "unexpected", "exit_code": 0 if ok else 1,
                          "report": str(out / "index.html"), "duration_s": round(time.monotonic() - t0, 1),
                          "runs": [{k: r.get(k) for k in keys} for r in runs]}, default=str))
        raise typer.Exit(0 if ok else 1)
    for r in runs:
        mark = "ok " if r["status"] in r["expected"] else "BAD"
        print(f"{mark} {r['scenario']:27} {r['variant']:10} {r['status']:8} {r['reason']}")
        for a in r.get("earlier_attempts", []):
            print(f"    attempt {a['attempt']} was {a['status']}: {a['reason']}")
    print(f"{sum(r['status'] in r['expected'] for r in runs)}/{len(runs)} verdicts as expected "
          f"in {time.monotonic() - t0:.0f}s; report: {out / 'index.html'}")
    raise typer.Exit(0 if ok else 1)
