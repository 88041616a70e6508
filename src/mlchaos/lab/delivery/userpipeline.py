"""A user's own delivery pipeline: the steps are the user's commands, run in order the way a CI job runs them.

Why mlchaos runs them (and not only the lab's fraud pipeline): a team's
train → validate → register pipeline is its own scripts against its own
MLflow server; the delivery faults must act on *those* steps.  So a pipeline
is declared by name and argv (``pipeline: {steps: [{name: train, argv: [python,
train.py]}, ...]}`` on the ``delivery-run`` fault), and every step runs
through :mod:`mlchaos.lab.delivery.stepwrap`, which acts out the faults armed
for that step name (crash, hang, NaN metrics, registry unreachable, corrupted
artifact) around the user's unchanged command.  Failpoints the user put in
their own code (:mod:`mlchaos.failpoints`) meet their faults through the same
failpoint directory (``MLCHAOS_FAILPOINT_DIR`` of every step).

CI semantics, on purpose: a step whose exit code is not its ``expect_exit``
stops the pipeline (the rest are ``skipped``) unless it has
``continue_on_error: true`` — which is exactly the fail-open "validation is
flaky, don't block the release" pipeline that the faults expose.  A step past
its ``timeout`` is killed with its children (``timeout``).  The manifest
(``<runs_dir>/<run_id>/manifest.json``) is rewritten after every step, as in
the lab's pipeline, so a reader sees progress and a killed run leaves a truthful one.

Run: ``python -m mlchaos.lab.delivery.userpipeline --spec FILE --run-id ID`` (``delivery-run`` does it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from mlchaos.plugin import StrictModel
from mlchaos.spec.types import Duration

MODULE = "mlchaos.lab.delivery.userpipeline"


class PipelineStep(StrictModel):
    """One step of a user's pipeline: a shell-free command (``argv`` runs as is, no shell) with a name the
    faults refer to."""

    name: str = Field(description="Step name the delivery faults name in `step:` (e.g. validate).")
    argv: list[str] = Field(min_length=1, description="The program and its arguments, e.g. [python, train.py].")
    timeout: Duration = Field(600.0, description="Kill the step (and its children) after this long: `timeout`.")
    env: dict[str, str] = Field(default_factory=dict, description="Added to the step's environment.")
    cwd: str | None = Field(None, description="Working directory (default: the pipeline's).")
    expect_exit: int = Field(0, description="The exit code that means success.")
    continue_on_error: bool = Field(False, description="A failing step does not stop the pipeline (fail-open).")
    metrics: str | None = Field(None, description="JSON file of metrics the step writes (relative to its cwd): "
                                                  "what validation-nan turns to NaN (or removes).")

    @field_validator("name")
    @classmethod
    def _plain(cls, v: str) -> str:
        from mlchaos.lab.auth import check_name

        return check_name(v, "name")

    @field_validator("argv")
    @classmethod
    def _program(cls, v: list[str]) -> list[str]:
        if not v[0].strip():
            raise ValueError("argv[0] (the program) must not be empty")
        return v


class UserPipeline(StrictModel):
    """The user's pipeline: ordered steps, a common working directory and environment."""

    steps: list[PipelineStep] = Field(min_length=1, description="The steps, run in this order.")
    cwd: str | None = Field(None, description="Working directory of every step (a step's own cwd wins).")
    env: dict[str, str] = Field(default_factory=dict, description="Added to every step's environment.")
    runs_dir: str | None = Field(None, description="Where run manifests and step logs go (default: "
                                                   "<state dir>/delivery-runs).")

    @model_validator(mode="after")
    def _unique(self) -> UserPipeline:
        seen: set[str] = set()
        for s in self.steps:
            if s.name in seen:
                raise ValueError(f"steps: two steps named {s.name!r}")
            seen.add(s.name)
        return self


def default_runs_dir() -> Path:
    state = os.environ.get("MLCHAOS_STATE_DIR")
    return (Path(state) if state else Path.home() / ".local" / "state" / "mlchaos") / "delivery-runs"


def runs_dir(p: UserPipeline) -> Path:
    return Path(p.runs_dir) if p.runs_dir else default_runs_dir()


def step_cwd(p: UserPipeline, step: PipelineStep) -> Path:
    return Path(step.cwd or p.cwd or os.getcwd())


def check(p: UserPipeline) -> list[dict[str, Any]]:
    """Read-only checks (preflight): each step's cwd exists and its program can be found."""
    import shutil

    from mlchaos.plugin import FaultError

    out = []
    for i, s in enumerate(p.steps):
        cwd = step_cwd(p, s)
        if not cwd.is_dir():
            raise FaultError(f"pipeline.steps[{i}] ({s.name}): no such directory {cwd}")
        prog = s.argv[0]
        found = shutil.which(prog) if os.sep not in prog else str(cwd / prog) if (cwd / prog).exists() else None
        if found is None:
            raise FaultError(f"pipeline.steps[{i}].argv[0] ({s.name}): program {prog!r} not found")
        out.append({"name": s.name, "program": found, "cwd": str(cwd)})
    return out


def _kill_tree(pid: int) -> None:
    """Kill a step and everything it started (a step's children stay in the pipeline's process group, so
    ``delivery-run``'s revert, which kills that group, reaches them too)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [*proc.children(recursive=True), proc]
    except psutil.NoSuchProcess:
        return
    for q in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            q.kill()


def run(p: UserPipeline, run_id: str, *, failpoint_dir: str, uris: dict[str, str]) -> dict[str, Any]:
    """Run the pipeline once; returns the final manifest (``status``: ``succeeded`` | ``failed``)."""
    from mlchaos.atomic import write_json_atomic
    from mlchaos.lab.auth import check_name

    run_dir = runs_dir(p) / check_name(run_id, "run id")
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"run_id": run_id, "status": "running", "started_at": time.time(),
                                "ended_at": None, "steps": [], "decision": None, "dir": str(run_dir)}

    def save() -> None:
        write_json_atomic(run_dir / "manifest.json", manifest, indent=2, default=str)

    save()
    failed: str | None = None
    for s in p.steps:
        if failed is not None:
            manifest["steps"].append({"name": s.name, "status": "skipped"})
            continue
        entry = _run_step(p, s, run_dir, failpoint_dir, uris, manifest, save)
        if entry["status"] != "succeeded" and not s.continue_on_error:
            failed = f"{s.name} {entry['status']} (exit {entry['exit_code']})"
    manifest.update(status="failed" if failed else "succeeded", decision=failed or "all steps done",
                    ended_at=time.time())
    save()
    return manifest


def _run_step(p: UserPipeline, s: PipelineStep, run_dir: Path, failpoint_dir: str, uris: dict[str, str],
              manifest: dict[str, Any], save: Any) -> dict[str, Any]:
    cwd = step_cwd(p, s)
    env = {**os.environ, **{k: v for k, v in uris.items() if v}, **p.env, **s.env,
           "MLCHAOS_FAILPOINT_DIR": failpoint_dir, "MLCHAOS_DELIVERY_RUN_DIR": str(run_dir),
           "MLCHAOS_DELIVERY_RUN_ID": manifest["run_id"], "MLCHAOS_DELIVERY_STEP": s.name}
    cmd = [sys.executable, "-m", "mlchaos.lab.delivery.stepwrap", "--step", s.name]
    if s.metrics:
        cmd += ["--metrics", str(cwd / s.metrics)]
    cmd += ["--", *s.argv]
    log = run_dir / f"{s.name}.log"
    entry: dict[str, Any] = {"name": s.name, "status": "running", "started_at": time.time(), "timeout_s": s.timeout,
                             "log": str(log), "exit_code": None, "argv": s.argv}
    manifest["steps"].append(entry)
    save()
    t0 = time.monotonic()
    with open(log, "ab") as fh:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        entry["pid"] = proc.pid
        save()
        try:
            rc: int | None = proc.wait(timeout=s.timeout)
            status = "succeeded" if rc == s.expect_exit else "failed"
        except subprocess.TimeoutExpired:
            _kill_tree(proc.pid)
            rc = proc.wait(timeout=10)
            status = "timeout"
    entry.update(status=status, exit_code=rc, ended_at=time.time(), duration_s=round(time.monotonic() - t0, 3))
    save()
    return entry


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--spec", type=Path, required=True, help="JSON file: pipeline, failpoint_dir, uris")
    ap.add_argument("--run-id", required=True)
    a = ap.parse_args(argv)
    data = json.loads(a.spec.read_text())
    manifest = run(UserPipeline.model_validate(data["pipeline"]), a.run_id, failpoint_dir=data["failpoint_dir"],
                   uris=data.get("uris") or {})
    print(json.dumps(manifest, default=str))
    return 0 if manifest["status"] == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
