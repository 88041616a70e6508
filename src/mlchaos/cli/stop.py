"""``mlchaos stop``: the big red button."""

from __future__ import annotations

import json
import os
import signal
import time

import typer


def stop(
    release: bool = typer.Option(False, "--release", help="Lift a previous stop so runs may start again."),
    json_out: bool = typer.Option(False, "--json", help="Print what was done as JSON on stdout."),
) -> None:
    """Remove every active fault this machine's runners hold, stop the runners, and refuse new runs.

    Faults a runner was still injecting (its write-ahead intents) are reverted
    too.  Runs stay refused until ``mlchaos stop --release``, also when nothing
    was running (the flag is the point: no run starts while someone looks).
    """
    from mlchaos.contract.proc import pid_alive
    from mlchaos.engine.lease import INTENT, LeaseStore, Unplanned, revert_record
    from mlchaos.engine.state import read_json, state_dir, stop_flag

    base = state_dir()
    flag = stop_flag(base)
    say = (lambda *a, **k: None) if json_out else print
    if release:
        flag.unlink(missing_ok=True)
        say("released: new runs may start")
        if json_out:
            print(json.dumps({"status": "released", "exit_code": 0}))
        return
    flag.write_text(f"stopped at {time.strftime('%Y-%m-%dT%H:%M:%S')} by pid {os.getpid()}\n")
    runners = 0
    for p in (base / "runs").glob("*.json"):
        data = read_json(p)
        pid = int(data.get("pid", 0)) if data else 0
        if pid and pid_alive(pid):
            try:
                os.kill(pid, signal.SIGTERM)
                runners += 1
            except ProcessLookupError:
                pass
    # intents (faults a runner was injecting, maybe half way) and leases alike: see mlchaos.engine.lease
    reverted, half, failed = 0, 0, 0
    warnings: list[str] = []
    errors: list[str] = []
    commands: list[dict[str, object]] = []
    leases = LeaseStore(base).all()
    for path, data in leases:
        what = "intent" if data.get("state") == INTENT else "lease"
        try:
            outcome = revert_record(data)
        except Unplanned as exc:
            warnings.append(str(exc))
            say(f"warning: {exc}")
            path.unlink(missing_ok=True)
            continue
        except Exception as exc:
            failed += 1
            errors.append(f"could not revert {data.get('plugin')} {what} {data.get('lease_id')}: {exc}")
            say(errors[-1])
            continue
        path.unlink(missing_ok=True)
        reverted += 1
        half += what == "intent"
        if outcome is not None:  # the fault's revert: command ran; say what it did, failed or not
            commands.append({"plugin": data.get("plugin"), "lease_id": data.get("lease_id"), **outcome.fields()})
            line = f"revert command {' '.join(outcome.argv)}: " + ("ok" if outcome.ok else outcome.reason())
            if not outcome.ok:
                warnings.append(line)
            say(("warning: " if not outcome.ok else "") + line)
    k8s = _kubernetes_cleanup([d for _, d in leases])
    if json_out:
        print(json.dumps({"status": "stopped" if (runners or leases) else "nothing-running",
                          "exit_code": 5 if failed else 0, "runners_signalled": runners,
                          "faults_removed": reverted, "intents_reverted": half, "faults_not_removed": failed,
                          "kubernetes": k8s or None, "revert_commands": commands, "warnings": warnings,
                          "errors": errors,
                          "refusing_new_runs": True}))
    elif not runners and not leases:
        print("nothing was running: no runner and no fault on this machine")
    else:
        print(f"stopped: {reverted} fault(s) removed"
              + (f" ({half} of them written ahead, injection unconfirmed)" if half else "")
              + f", {runners} runner(s) signalled"
              + (f", {failed} fault(s) could not be removed" if failed else ""))
    if k8s:
        say(f"kubernetes: {k8s}")
    say("new runs are refused until 'mlchaos stop --release'")
    if failed:
        raise typer.Exit(5)


def _kubernetes_cleanup(lease_records: list[dict[str, object]]) -> str:
    """Delete this machine's Chaos Mesh objects in every cluster the leases name (skipped without a config)."""
    try:
        from mlchaos.platforms.kubernetes import cleanup_for_stop
    except ImportError:
        return ""
    try:
        result = cleanup_for_stop(lease_records)
    except Exception as exc:  # the local faults are already removed; report, do not hide
        return f"cleanup failed: {exc}"
    parts = []
    for r in result:
        if r.get("skipped"):
            continue
        deleted = sum(sum(v.values()) for v in (r.get("deleted") or {}).values())
        parts.append(f"{deleted} Chaos Mesh object(s) deleted" + (f", errors: {r['errors']}" if r.get("errors") else ""))
    return "; ".join(parts)
