"""Runs one step of a user's pipeline and acts out the delivery faults armed for that step name.

``python -m mlchaos.lab.delivery.stepwrap --step NAME [--metrics FILE] -- ARGV...``

Why a wrapper and not hooks in the user's code: a team's steps are scripts
mlchaos knows only by their argv, yet a crashed, hung or NaN-reporting
validation, an unreachable registry and a corrupted stored artifact are
events *around* a step that need no code change to happen for real.  The
failpoint directory (``MLCHAOS_FAILPOINT_DIR``) carries what to do, under the
fault's lease (see :mod:`mlchaos.lab.delivery.faultpoints`):

* ``delivery.validate.<step>`` — ``crash``: the step exits 1 with the message
  on stderr before the command runs; ``hang``: it sleeps ``hang_s`` first (the
  pipeline's timeout kills it); ``nan`` / ``missing``: the command runs, then
  every number of its ``--metrics`` JSON becomes NaN, or the file becomes ``{}``;
* ``delivery.registry.<step>`` or ``delivery.registry`` (every step) —
  ``unreachable``: the command runs with ``MLFLOW_TRACKING_URI`` /
  ``MLFLOW_REGISTRY_URI`` pointing at a port that refuses connections;
* ``delivery.artifact.<step>`` — after the command succeeded, the newest
  version of ``model`` in the registry gets its stored ``file`` changed
  (``swap`` / ``bitflip`` / ``truncate``), through the MLflow client, so
  the server's artifact store holds the damaged bytes.

With nothing armed the wrapper *becomes* the command (``exec``), so the
step's pid, signals and exit code are the user's own.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mlchaos.lab.delivery import faultpoints


def points(step: str) -> dict[str, str]:
    """The failpoint names a step looks at, by fault family."""
    return {"validate": f"{faultpoints.VALIDATE}.{step}", "registry": f"{faultpoints.REGISTRY}.{step}",
            "artifact": f"{faultpoints.ARTIFACT}.{step}"}


def _say(msg: str) -> None:
    print(f"mlchaos stepwrap: {msg}", file=sys.stderr, flush=True)


def _refusing_port() -> int:
    """A local port nothing listens on (bound, then closed: connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _nan_all(obj: Any) -> Any:
    if isinstance(obj, bool):
        return obj
    if isinstance(obj, int | float):
        return math.nan
    if isinstance(obj, dict):
        return {k: _nan_all(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_all(v) for v in obj]
    return obj


def _spoil_metrics(path: str | None, fault: dict[str, Any], point: str) -> None:
    from mlchaos.atomic import write_json_atomic

    if not path or not Path(path).exists():
        faultpoints.record_effect(point, fault, error=f"no metrics file to spoil ({path or 'step has no metrics:'})")
        _say(f"{fault.get('mode')}: no metrics file {path!r}; nothing changed")
        return
    if fault.get("mode") == "missing":
        new: Any = {}
    else:
        new = _nan_all(json.loads(Path(path).read_text()))
    write_json_atomic(Path(path), new, indent=2)
    faultpoints.record_effect(point, fault, metrics=path)
    _say(f"metrics in {path} made {fault.get('mode')}")


def corrupt_newest(fault: dict[str, Any], point: str) -> None:
    """Damage the stored artifact of the newest version of ``model`` (through the MLflow client)."""
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    from mlchaos.lab.delivery.registry import corrupter

    name = str(fault["model"])
    tracking = fault.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI")
    registry = fault.get("registry_uri") or os.environ.get("MLFLOW_REGISTRY_URI") or tracking
    if tracking:
        os.environ["MLFLOW_TRACKING_URI"] = str(tracking)  # mlflow-artifacts:/ URIs resolve against it
    client = MlflowClient(tracking_uri=tracking, registry_uri=registry)
    versions = client.search_model_versions(f"name='{name}'")
    if not versions:
        faultpoints.record_effect(point, fault, error=f"no version of {name!r} registered")
        return
    mv = max(versions, key=lambda v: int(v.version))
    uri = client.get_model_version_download_uri(name, mv.version)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        local = Path(download_artifacts(artifact_uri=uri, dst_path=tmp))
        files = [f for f in local.rglob("*") if f.is_file()]
        wanted = fault.get("file")
        target = next((f for f in files if f.relative_to(local).as_posix() == wanted), None) if wanted else \
            max(files, key=lambda f: f.stat().st_size, default=None)
        if target is None:
            faultpoints.record_effect(point, fault, error=f"no file {wanted!r} in {uri}")
            return
        target.write_bytes(corrupter(fault)(target.read_bytes()))
        rel = target.relative_to(local).parent.as_posix()
        get_artifact_repository(uri).log_artifact(str(target), None if rel == "." else rel)
    faultpoints.record_effect(point, fault, version=str(mv.version), path=f"{uri}/{target.relative_to(local)}")
    _say(f"stored artifact {target.relative_to(local)} of {name} v{mv.version} damaged ({fault.get('mode')})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--step", required=True)
    ap.add_argument("--metrics")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        ap.error("no command after --")
    names = points(a.step)
    validate = faultpoints.armed(names["validate"])
    outage_point = names["registry"] if faultpoints.armed(names["registry"]) else faultpoints.REGISTRY
    outage = faultpoints.armed(outage_point)
    artifact = faultpoints.armed(names["artifact"])
    if validate is not None:
        faultpoints.record_effect(names["validate"], validate, step=a.step)
        if validate.get("mode") == "crash":
            _say(f"step {a.step} crashed: {validate.get('message', 'injected crash')}")
            return 1
        if validate.get("mode") == "hang":
            _say(f"step {a.step} hangs for {validate.get('hang_s')}s")
            time.sleep(float(validate.get("hang_s", 3600)))
    env = dict(os.environ)
    if outage is not None:
        dead = f"http://127.0.0.1:{_refusing_port()}"
        env.update(MLFLOW_TRACKING_URI=dead, MLFLOW_REGISTRY_URI=dead)
        faultpoints.record_effect(outage_point, outage, step=a.step, uri=dead)
        _say(f"registry unreachable for step {a.step}: MLflow URIs point at {dead}")
    spoil = validate is not None and validate.get("mode") in ("nan", "missing")
    if not (spoil or artifact is not None):
        os.execvpe(cmd[0], cmd, env)  # nothing to do after the command: become it
    rc = subprocess.call(cmd, env=env)
    if rc == 0 and spoil and validate is not None:
        _spoil_metrics(a.metrics, validate, names["validate"])
    if rc == 0 and artifact is not None:
        try:
            corrupt_newest(artifact, names["artifact"])
        except Exception as exc:  # the step itself succeeded; the fault's failure is recorded, not raised
            faultpoints.record_effect(names["artifact"], artifact, error=f"{type(exc).__name__}: {exc}")
            _say(f"could not corrupt the artifact: {type(exc).__name__}: {exc}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
