"""``Lab``: the library face of the lab, used by the CLI, the engine and the tests.

A ``Lab`` is a handle on one lab directory.  ``up`` starts (or extends) a
detached supervisor process there and waits until every service is ready;
everything else talks to that supervisor's control API, or reads the
``state.json`` it keeps, so any process (another CLI call, the engine) can
attach to a running lab by its directory alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx
import psutil

from mlchaos.lab import auth, lifetime
from mlchaos.lab.lifetime import reap_if_child as _reap_if_child
from mlchaos.lab.lifetime import stop_pid as _stop_pid
from mlchaos.lab.paths import LabPaths, free_port, port_is_free, resolve_lab_dir
from mlchaos.lab.status import ServiceStatus, why_not_ready
from mlchaos.lab.topology import BY_NAME, DEFAULT_SYSTEMS, ENTRYPOINTS, SYSTEMS, VARIANTS


class LabError(RuntimeError):
    """The lab could not be started, reached or stopped as asked."""


class LabInputError(LabError):
    """A name given to the lab (a model version, a service) that cannot be one: bad input, not a lab failure."""


class Lab:
    """A lab directory and the processes its supervisor runs.

    >>> lab = Lab("/tmp/lab")
    >>> lab.up(["serving", "realtime"], variant="mitigated")
    >>> lab.endpoints()["serving"]      # the load balancer in front of the 3 replicas
    >>> lab.set_model_version("stale", replicas=["serving-1"])
    >>> lab.down()
    """

    def __init__(
        self,
        dir: Path | str | None = None,
        *,
        load_delay: float = 1.5,
        autoscale: Mapping[str, float] | None = None,
        feature_store: str | None = None,
    ) -> None:
        """``load_delay``: model-load time of a serving replica (s).  ``autoscale``: fields of
        :class:`mlchaos.lab.autoscaler.AutoscalerPolicy` for the feature service (``min_replicas``,
        ``max_replicas``, ``target_concurrency``, ``target_latency_ms``, ``up_cooldown``, ``down_cooldown``).
        ``feature_store``: ``"sqlite"`` or a ``redis://HOST:PORT/DB`` URL for the online store (default:
        ``$MLCHAOS_LAB_REDIS_URL`` if set, else SQLite).  All three apply when this handle starts the
        supervisor; a running lab keeps the store it was started with (see ``state()["feature_store"]``)."""
        self.paths = LabPaths(resolve_lab_dir(dir))
        self.load_delay = load_delay
        self.autoscale = dict(autoscale or {})
        self.feature_store = feature_store
        self._sup: subprocess.Popen[bytes] | None = None

    # --- reading state -------------------------------------------------------------------------
    def _state(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.paths.state.read_text())
        except (OSError, ValueError):
            return None
        return data

    def _control_url(self) -> str | None:
        st = self._state()
        if not st:
            return None
        if not lifetime.supervisor_runs(st.get("supervisor") or {}):
            return None  # gone, or its pid now belongs to another process
        return str(st["supervisor"]["url"])

    def is_up(self) -> bool:
        """True while this directory's supervisor runs."""
        return self._control_url() is not None

    def _call(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> dict[str, Any]:
        url = self._control_url()
        if url is None:
            raise LabError(f"no lab running in {self.paths.root} (run `mlchaos lab up`)")
        headers = auth.bearer(self._token()) if method != "GET" else None
        r = httpx.request(method, url + path, json=body, timeout=timeout, headers=headers)
        if r.status_code in (401, 404, 422):  # refused: say why, in the supervisor's words
            try:
                detail = r.json().get("detail") or r.json().get("error")
            except ValueError:
                detail = r.text[:500]
            error = LabInputError if r.status_code == 422 else LabError
            raise error(f"the lab refused {method} {path} ({r.status_code}): {detail}")
        r.raise_for_status()
        out: dict[str, Any] = r.json()
        return out

    def _token(self) -> str:
        """The running lab's admin token (``admin.token``, readable by the lab's owner only)."""
        try:
            return auth.read_token(self.paths.token)
        except (OSError, ValueError) as exc:
            raise LabError(f"cannot read the lab's admin token {self.paths.token}: {exc}") from None

    def reap_dead(self) -> dict[int, str]:
        """Stop what a dead lab (its supervisor killed) left running; return those processes (pid → name).

        Its services die with it by themselves (:mod:`mlchaos.lab.lifetime`); this is for those that
        could not (stopped, wedged).  Every ``lab`` command calls it first, and says what it reaped.
        """
        st = self._state()
        left = lifetime.leftovers(st) if st else {}
        if left:
            lifetime.reap(left)
        return left

    def state(self) -> dict[str, Any]:
        """The supervisor's full state (live if it runs, else the last written ``state.json``)."""
        if self.is_up():
            return self._call("GET", "/state")
        return self._state() or {}

    def status(self) -> list[ServiceStatus]:
        """Every service with pid, port, readiness, variant and model version."""
        return [ServiceStatus.from_dict(d) for d in self.state().get("services", [])]

    def endpoints(self) -> dict[str, str]:
        """Service name → base URL; also ``serving``, ``realtime``, ``recommender``, ``features`` → entry points."""
        out = {s.name: s.url for s in self.status() if s.url}
        for alias, name in ENTRYPOINTS.items():
            if name in out:
                out[alias] = out[name]
        st = self.state()
        if st.get("supervisor"):
            out["supervisor"] = st["supervisor"]["url"]
        return out

    def pids(self) -> dict[str, int]:
        """Service name → pid of every running process (the supervisor included)."""
        out = {s.name: s.pid for s in self.status() if s.pid}
        st = self._state()
        if st and self.is_up():
            out["supervisor"] = st["supervisor"]["pid"]
        return out

    # --- lifecycle ------------------------------------------------------------------------------
    def up(
        self,
        systems: Iterable[str] | None = None,
        variant: str = "naive",
        *,
        ports: Mapping[str, int] | None = None,
        dependency_urls: Mapping[str, str] | None = None,
        timeout: float = 60.0,
        wait: bool = True,
        owner: int | None = None,
    ) -> list[ServiceStatus]:
        """Start ``systems`` (default: all) in ``variant``; wait until all are ready.

        ``ports`` pins service ports by name (e.g. ``{"serving-lb": 8000}``), the
        rest are chosen free.  ``dependency_urls`` points ``fraud`` (→ feature
        service) or ``recommender`` (→ embedding service) at another URL, e.g. a
        fault proxy.  Adding systems to a running lab keeps the running ones
        (switched to ``variant`` if they run another one).

        ``owner``: a pid (``os.getpid()`` for the caller itself) whose exit brings the lab down, however
        it dies (``kill -9`` included), when this call starts the supervisor; a lab that already runs
        keeps its lifetime.  ``mlchaos demo`` passes its own; ``mlchaos lab up`` none (the lab outlives it).
        """
        chosen = list(systems or DEFAULT_SYSTEMS)
        for s in chosen:
            if s not in SYSTEMS:
                raise LabError(f"unknown system {s!r}; choose from {', '.join(SYSTEMS)}")
        if variant not in VARIANTS:
            raise LabError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
        if not self.is_up():
            self.reap_dead()
            self._start_supervisor(timeout, owner)
        try:
            self._call(
                "POST",
                "/up",
                {
                    "systems": chosen,
                    "variant": variant,
                    "ports": dict(ports or {}),
                    "dependency_urls": dict(dependency_urls or {}),
                },
                timeout=timeout,
            )
        except httpx.HTTPStatusError as exc:
            raise LabError(
                f"the supervisor could not start {', '.join(chosen)} ({exc.response.status_code}); "
                f"see {self.paths.log_for('supervisor')}"
            ) from None
        if wait:
            self.wait_ready(timeout)
        return self.status()

    def _feature_store_arg(self) -> str:
        """The store to start the supervisor with; a Redis URL must answer now (a clear error, not a
        half-started lab whose feature service fails on every request)."""
        from mlchaos.lab import featurestore

        try:
            url = featurestore.configured_url(self.feature_store)
            if url is None:
                return "sqlite"
            featurestore.open_store(url).close()
        except featurestore.FeatureStoreError as exc:
            raise LabError(f"feature store: {exc}") from None
        return url

    def _start_supervisor(self, timeout: float, owner: int | None = None) -> None:
        store = self._feature_store_arg()
        try:  # the owner's start time too: a pid reused after the owner died must not keep the lab up
            owned = ["--exit-with", lifetime.owner_arg(owner)] if owner is not None else []
        except psutil.NoSuchProcess:
            raise LabError(f"owner pid {owner} does not run") from None
        self.paths.ensure()
        self.paths.state.unlink(missing_ok=True)
        port = free_port()
        log = open(self.paths.log_for("supervisor"), "ab")  # noqa: SIM115 - handed to the child
        try:
            self._sup = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mlchaos.lab.supervisor",
                    "--dir",
                    str(self.paths.root),
                    "--port",
                    str(port),
                    "--load-delay",
                    str(self.load_delay),
                    "--feature-store",
                    store,
                    *(a for k, v in self.autoscale.items() for a in ("--autoscale", f"{k}={v}")),
                    *owned,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.paths.root,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._sup.poll() is not None:
                raise LabError(
                    f"supervisor exited with {self._sup.returncode}; see {self.paths.log_for('supervisor')}"
                )
            st = self._state()
            if st and st["supervisor"]["pid"] == self._sup.pid:
                try:
                    httpx.get(st["supervisor"]["url"] + "/health", timeout=0.5).raise_for_status()
                    return
                except httpx.HTTPError:
                    pass
            time.sleep(0.05)
        raise LabError("supervisor did not start in time")

    def wait_ready(self, timeout: float = 60.0, names: Iterable[str] | None = None) -> list[ServiceStatus]:
        """Block until every service (or those named) is ready; raise :class:`LabError` on timeout."""
        wanted = set(names) if names is not None else None
        deadline = time.monotonic() + timeout
        pending: list[str] = []
        st: list[ServiceStatus] = []
        while time.monotonic() < deadline:
            st = self.status()
            pending = [s.name for s in st if not s.ready and (wanted is None or s.name in wanted)]
            if st and not pending:
                return st
            time.sleep(0.1)
        why = [why_not_ready(s, self.paths.log_for(s.name), port_is_free) for s in st if s.name in pending]
        raise LabError(f"not ready after {timeout:.0f}s: {'; '.join(why) or ', '.join(pending)}")

    def down(self, timeout: float = 15.0) -> None:
        """Stop every process this lab started; leave no orphan (killed if it does not stop in time)."""
        st = self._state()
        pids = [s.get("pid") for s in (st or {}).get("services", []) if s.get("pid")]
        sup_pid = (st or {}).get("supervisor", {}).get("pid")
        if self.is_up() and sup_pid:
            # the fork server and multiprocessing's resource tracker too: they exit after the supervisor
            with contextlib.suppress(psutil.NoSuchProcess):
                pids += [c.pid for c in psutil.Process(sup_pid).children(recursive=True)]
        if self.is_up():
            with contextlib.suppress(httpx.HTTPError, LabError):
                self._call("POST", "/down", timeout=timeout)
        else:
            self.reap_dead()
        deadline = time.monotonic() + timeout
        for pid in [sup_pid, *pids]:
            if not pid:
                continue
            _stop_pid(int(pid), deadline)
        if self._sup is not None:
            self._sup.wait(timeout=5)
            self._sup = None
        elif sup_pid:
            _reap_if_child(int(sup_pid))

    # --- run-time changes -----------------------------------------------------------------------
    def set_variant(self, variant: str, systems: Iterable[str] | None = None) -> None:
        """Switch ``systems`` (default: all running) to ``variant`` without restarting them."""
        if variant not in VARIANTS:
            raise LabError(f"unknown variant {variant!r}")
        self._call("POST", "/variant", {"variant": variant, "systems": list(systems) if systems else None})

    def set_model_version(self, version: str, replicas: Iterable[str] | None = None) -> list[str]:
        """Serve model ``version`` (``current``, ``stale`` or a version id) on the named processes.

        Default: every serving replica.  Names may also include ``fraud``.  The
        supervisor remembers it, so a restarted replica comes back with the
        same version (as a bad deploy would).  ``version`` is a name, never a path.
        """
        try:
            auth.check_name(version, "version")
        except auth.BadName as exc:
            raise LabInputError(str(exc)) from None
        out = self._call(
            "POST", "/model", {"version": version, "services": list(replicas) if replicas else None}
        )
        return list(out["services"])

    def set_dependency_url(self, service: str, url: str | None) -> str:
        """Point ``fraud`` (its feature service) or ``recommender`` (its embedding service) at ``url``.

        This is the hook for a fault proxy: start the proxy with the current
        dependency as its upstream (``dependency_urls()``), then point the
        service at the proxy; ``url=None`` restores the direct connection.
        """
        return str(self._call("POST", "/dependency", {"service": service, "url": url})["url"])

    def dependency_urls(self) -> dict[str, str]:
        """The URL each dependent service calls now (``fraud``, ``recommender``)."""
        return dict(self.state().get("dependency_urls", {}))

    def log_path(self, service: str) -> Path:
        """``logs/<service>.log``; LabError unless ``service`` is a plain name."""
        try:
            return self.paths.log_for(service)
        except auth.BadName as exc:
            raise LabInputError(str(exc)) from None

    def run_batch(
        self,
        variant: str | None = None,
        date: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 120.0,
    ) -> dict[str, Any]:
        """Run the batch pipeline once (in a subprocess, so armed failpoints apply); return its result JSON.

        ``variant`` defaults to the batch system's variant in the running lab,
        else ``naive``.  The result has ``status`` (``ok`` or ``halted``),
        ``run_id``, ``output`` (None when halted), ``manifest`` and ``report``.
        """
        if date is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
            raise LabInputError(f"date: expected YYYY-MM-DD, got {date!r}")
        if variant is None:
            variant = (self._state() or {}).get("variants", {}).get("batch", "naive")
        cmd = [
            sys.executable,
            "-m",
            BY_NAME["batch"].module,
            "--dir",
            str(self.paths.root),
            "--variant",
            str(variant),
        ]
        if date:
            cmd += ["--date", date]
        r = subprocess.run(
            cmd, capture_output=True, timeout=timeout, env={**os.environ, **(env or {})}, check=False
        )
        lines = r.stdout.decode().strip().splitlines()
        if not lines and r.returncode == 2:
            raise LabInputError(r.stderr.decode(errors="replace").strip()[-2000:])
        if not lines:
            raise LabError(f"batch run produced no result (exit {r.returncode}): {r.stderr.decode()[-2000:]}")
        out: dict[str, Any] = json.loads(lines[-1])
        out["exit_code"] = r.returncode
        return out
