"""The lab supervisor: starts the services, restarts dead replicas, autoscales the feature service.

One long-lived process per lab directory (started detached by
:meth:`mlchaos.lab.Lab.up`).  It plays the part Kubernetes plays in
production: a ReplicaSet (a dead replica is started again after
``restart_delay``, on the same port, and takes ``load_delay`` to load its
model), an HPA for the feature service (:mod:`mlchaos.lab.scaling`), and the place
where variants, model versions and dependency URLs are changed at run time.
What each system runs comes from the table in :mod:`mlchaos.lab.topology`;
restarts and readiness polls are :mod:`mlchaos.lab.monitor`'s.  Its state is
written to ``state.json`` and served by a small control API on 127.0.0.1
(:mod:`mlchaos.lab.control`).  Every ``POST``
needs the lab's admin token, which the supervisor writes to ``admin.token``
when it starts and sends on its own admin calls to the services (see
:mod:`mlchaos.lab.auth`); its services die with it (:mod:`mlchaos.lab.lifetime`).

The online feature store is SQLite unless the supervisor is given a Redis URL
(``--feature-store redis://…`` or ``$MLCHAOS_LAB_REDIS_URL``): then it copies
the built rows into Redis once, before the first system starts, and starts
every feature-service replica on Redis.  ``state.json`` records which store
is in use, so feature-store faults (and their watchdog reverts) find it.

``--exit-with PID:START`` gives the lab an owner (``mlchaos demo`` passes its own), whose
death, however it comes, brings the lab down (:func:`mlchaos.lab.lifetime.down_when_gone`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from mlchaos.atomic import write_json_atomic
from mlchaos.contract.proc import process_start_time
from mlchaos.lab import auth, featurestore, lifetime, monitor, procs
from mlchaos.lab import observability as obs
from mlchaos.lab.autoscaler import Autoscaler, AutoscalerPolicy
from mlchaos.lab.build import ensure_built
from mlchaos.lab.models import resolve_fraud_version
from mlchaos.lab.monitor import Proc
from mlchaos.lab.paths import HOST, LabPaths, free_port
from mlchaos.lab.topology import (
    BY_NAME,
    SYSTEMS,
    TABLE,
    VARIANTS,
    Entry,
    callers,
    entries,
    expand,
    placeholders,
    system_variant,
)
from mlchaos.lab.upstream import Upstream

__all__ = ["SYSTEMS", "VARIANTS", "Proc", "Supervisor", "main", "system_variant"]

_STARTED_AT = psutil.Process().create_time()
"""This supervisor's start (epoch s), in state.json for people to read."""
_START = process_start_time(os.getpid())
"""Its start stamp (ticks since boot): a later reader tells it from a process that reused its pid."""


@dataclass
class Supervisor:
    """One lab directory's running systems: what should run (from the table), what runs, and its state.

    The monitor loop (:func:`mlchaos.lab.monitor.watch`) and the control API (:mod:`mlchaos.lab.control`)
    both act through this object; it is only ever used from the supervisor's one event loop.
    """

    paths: LabPaths
    control_port: int
    load_delay: float = 1.5
    restart_delay: float = 0.5
    procs: dict[str, Proc] = field(default_factory=dict)
    systems: list[str] = field(default_factory=list)
    variants: dict[str, str] = field(default_factory=dict)
    dependency_overrides: dict[str, str] = field(default_factory=dict)
    autoscaler: Autoscaler = field(default_factory=Autoscaler)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    stopping: bool = False
    feature_store: str | None = None
    """Redis URL of the online store; None: the SQLite file under ``data/``."""
    token: str | None = None
    """The lab's admin token (``admin.token``): sent on every admin call to a service."""
    owner: tuple[int, float | None] | None = None
    """(pid, start time) of the process this lab must not outlive (``--exit-with``); None: no owner."""

    def __post_init__(self) -> None:
        self.log = obs.JsonLog("supervisor")
        self.client = httpx.AsyncClient(  # control calls (rare)
            timeout=httpx.Timeout(1.0, connect=0.5), headers=auth.bearer(self.token) if self.token else None
        )
        self.probe = Upstream(limit=50)  # readiness and stats polls (frequent)
        self._last_written: str | None = None
        self._next: dict[str, int] = {}  # replica set → next replica index
        self._store_loaded = False

    # --- what to run (from the topology table) ----------------------------------------------
    def dependency_url(self, service: str) -> str:
        """Where ``service`` sends its dependency calls: an override, else the lab's fault proxy."""
        if service in self.dependency_overrides:
            return self.dependency_overrides[service]
        via = BY_NAME[service].calls or ""
        if via in self.procs:
            return self.procs[via].url
        return self.procs[BY_NAME[via].upstream or ""].url

    def args_for(self, p: Proc) -> list[str]:
        """``p``'s arguments: its entry's template with this lab's values (see ``topology.PLACEHOLDERS``)."""
        e = BY_NAME[p.entry]
        values: dict[str, str | list[str]] = {
            "models": str(self.paths.models),
            "model_version": p.model_version or "current",
            "load_delay": str(self.load_delay),
            "variant": self.variants.get(p.system, "naive"),
            "feature_db": str(self.paths.feature_db),
            "store": ["--store", self.feature_store] if self.feature_store else [],
            "listen": f"{HOST}:{p.port}",
            "control": f"{HOST}:{p.control_port}",
        }
        needed = placeholders(e.args)
        if "backends" in needed:
            values["backends"] = [a for q in self.group(e.group or "") for a in ("--backend", f"{q.name}={q.url}")]
        if "upstream" in needed:
            values["upstream"] = f"{HOST}:{self.procs[e.upstream or ''].port}"
        if "dependency" in needed:
            values["dependency"] = self.dependency_url(p.name)
        if "routes" in needed:
            values["routes"] = [a for label, n in e.routes for a in ("--backend", f"{label}={self.procs[n].url}")]
        return expand(e.args, values)

    def group(self, g: str) -> list[Proc]:
        """The live replicas of group ``g`` (what its balancer sends to)."""
        return [p for p in self.procs.values() if p.group == g and p.role == "replica" and p.desired]

    def balancer_of(self, g: str) -> Proc | None:
        return next((p for p in self.procs.values() if p.group == g and p.role == "lb"), None)

    def autoscaled_entries(self) -> list[Entry]:
        return [e for e in TABLE if e.autoscaled and e.system in self.systems]

    def plan(self, system: str, ports: dict[str, int]) -> list[Proc]:
        """The processes ``system`` runs, in start order (a ``job`` runs on demand: no process)."""
        out: list[Proc] = []
        for e in entries(system):
            if e.role == "job":
                continue
            if e.replicated:
                n = self.autoscaler.policy.min_replicas if e.autoscaled else e.replicas
                out += [self.new_replica(e, ports) for _ in range(n)]
            else:
                out.append(self._proc(e, e.name, ports))
        return out

    def new_replica(self, e: Entry, ports: dict[str, int] | None = None) -> Proc:
        """The next replica of replica set ``e`` (``<name>-<n>``)."""
        i = self._next.get(e.name, 0)
        self._next[e.name] = i + 1
        return self._proc(e, f"{e.name}-{i}", ports or {})

    @staticmethod
    def _proc(e: Entry, name: str, ports: dict[str, int]) -> Proc:
        def port(key: str) -> int:
            return int(ports.get(key) or free_port())

        return Proc(name, e.system, e.role, e.module, port(name), group=e.group, model_version=e.model_version,
                    control_port=port(f"{name}-control") if e.control_port else None, upstream=e.upstream,
                    entry=e.name)

    # --- process control -----------------------------------------------------------------------
    def spawn(self, p: Proc) -> None:
        own = BY_NAME[p.entry].own_flags
        argv = self.args_for(p) if own else ["--name", p.name, "--port", str(p.port), *self.args_for(p)]
        # the admin token file's path (the token never goes on a command line); and no proxy token from the
        # user's shell: the lab's own fault proxies answer the supervisor's readiness checks without one
        env: dict[str, str | None] = {auth.TOKEN_ENV: str(self.paths.token), "MLCHAOS_PROXY_TOKEN": None}
        monitor.spawn(p, argv, str(self.paths.log_for(p.name)), env, self.log)

    async def reap(self, ps: list[Proc], grace: float = 3.0) -> None:
        await monitor.reap(ps, grace)

    async def up(self, systems: list[str], variant: str, ports: dict[str, int]) -> None:
        await asyncio.gather(asyncio.to_thread(ensure_built, self.paths), asyncio.to_thread(procs.warm_up))
        if self.feature_store and not self._store_loaded:
            # once per supervisor: a later `up` of another system must not undo a fault on the store
            n = await asyncio.to_thread(featurestore.load_redis, self.feature_store, self.paths.feature_db)
            self._store_loaded = True
            self.log("feature_store_loaded", backend="redis", url=self.feature_store, rows=n)
        new: list[Proc] = []
        running = [
            s for s in systems if s in self.systems and self.variants.get(s) != system_variant(s, variant)
        ]
        if running:  # already up in another variant: switch it, as asked
            await self.set_variant(running, variant)
        for s in systems:
            if s in self.systems:
                continue
            self.variants[s] = system_variant(s, variant)
            self.systems.append(s)
            for p in self.plan(s, ports):
                self.procs[p.name] = p
                new.append(p)
        for p in new:
            self.spawn(p)
        self.log("up", systems=systems, variants=self.variants, started=[p.name for p in new])
        self.write_state()

    async def post(self, p: Proc, path: str, body: Any, method: str = "POST") -> None:
        try:
            await self.client.request(method, p.url + path, json=body)
        except httpx.HTTPError as exc:
            self.log("control_failed", level="warning", service=p.name, path=path, error=type(exc).__name__)

    async def set_variant(self, systems: list[str], variant: str) -> None:
        for s in systems:
            v = system_variant(s, variant)
            self.variants[s] = v
            for e in entries(s):
                if e.variant_route and e.name in self.procs:
                    path, key = e.variant_route
                    await self.post(self.procs[e.name], path, {key: v})
            self.log("variant", system=s, variant=v)
        self.write_state()

    async def set_model(self, version: str, names: list[str] | None) -> list[str]:
        targets = names or [p.name for p in self.group("serving")]
        for n in targets:
            p = self.procs[n]
            p.model_version = version
            await self.post(p, "/admin/model", {"version": version})
        self.log("model_version", services=targets, version=version)
        self.write_state()
        return targets

    async def set_dependency(self, service: str, url: str | None) -> str:
        if url:
            self.dependency_overrides[service] = url.rstrip("/")
        else:
            self.dependency_overrides.pop(service, None)
        resolved = self.dependency_url(service)
        if service in self.procs:
            await self.post(self.procs[service], "/admin/dependency", {"url": resolved})
        self.log("dependency", service=service, url=resolved)
        self.write_state()
        return resolved

    # --- state ---------------------------------------------------------------------------------
    def services(self) -> list[dict[str, Any]]:
        out = [{"name": p.name, "system": p.system, "role": p.role, "pid": p.pid, "port": p.port, "url": p.url,
                "ready": p.ready and p.pid is not None, "variant": self.variants.get(p.system),
                "model_version": self.resolve(p.model_version), "model_alias": p.model_version,
                "restarts": p.restarts, "alive": p.pid is not None, "started_at": p.started_at,
                "start": p.start, "group": p.group, "control_url": p.control_url}
               for p in self.procs.values()]
        for job in (e for e in TABLE if e.role == "job" and e.system in self.systems):
            # a job has no process: it is ready once its input, the offline store, is built
            out.append({"name": job.name, "system": job.system, "role": "job", "pid": None, "port": None,
                        "url": None, "ready": self.paths.offline.exists(), "variant": self.variants.get(job.system),
                        "model_version": self.resolve(job.model_version), "model_alias": job.model_version,
                        "restarts": 0, "alive": True, "started_at": None, "group": None})
        return out

    def resolve(self, alias: str | None) -> str | None:
        """Model version id for an alias (``current`` → ``fraud-v2``), as the replica reports it."""
        if alias is None:
            return None
        try:
            return resolve_fraud_version(self.paths.models, alias)
        except (OSError, ValueError):
            return alias

    def state(self) -> dict[str, Any]:
        return {
            "dir": str(self.paths.root),
            "supervisor": {
                "pid": os.getpid(),
                "pgid": os.getpgid(0),
                "started_at": _STARTED_AT,
                "start": _START,
                "port": self.control_port,
                "url": f"http://{HOST}:{self.control_port}",
                "owner": {"pid": self.owner[0], "started_at": self.owner[1]} if self.owner else None,
            },
            "systems": self.systems,
            "variants": self.variants,
            "dependency_urls": {
                s: self.dependency_url(s) for s in callers() if s in self.procs
            },
            "services": self.services(),
            "autoscaler": {"policy": self.autoscaler.policy.__dict__, "decisions": self.decisions[-20:]},
            "load_delay": self.load_delay,
            "feature_store": self.feature_store_info(),
            "updated_at": time.time(),
        }

    def feature_store_info(self) -> dict[str, str]:
        """Which online store the feature service reads: ``backend`` and ``url`` (a Redis URL or the SQLite path)."""
        if self.feature_store:
            return {"backend": "redis", "url": self.feature_store}
        return {"backend": "sqlite", "url": str(self.paths.feature_db)}

    def write_state(self) -> None:
        """Write ``state.json`` atomically, only when something other than the timestamp changed."""
        st = self.state()
        st.pop("updated_at")
        text = json.dumps(st, indent=1)
        if text == self._last_written:
            return
        self._last_written = text
        write_json_atomic(self.paths.state, {**st, "updated_at": time.time()}, indent=1)

    async def shutdown(self) -> None:
        self.stopping = True
        await self.reap(list(self.procs.values()))
        for p in self.procs.values():
            p.ready = False
        self.write_state()
        self.log("stopped")


def _owner(value: str) -> tuple[int, float | None]:  # argparse: a message naming the flag
    try:
        return lifetime.parse_owner(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None

def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--load-delay", type=float, default=1.5)
    p.add_argument("--restart-delay", type=float, default=0.5)
    p.add_argument("--min-features", type=int, default=1)
    p.add_argument("--max-features", type=int, default=3)
    p.add_argument(
        "--autoscale",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="AutoscalerPolicy field, e.g. target_concurrency=2 (repeatable)",
    )
    p.add_argument(
        "--feature-store",
        default=None,
        help=f"'sqlite' or a Redis URL for the online store (default: ${featurestore.ENV_REDIS_URL}, else sqlite)",
    )
    p.add_argument("--exit-with", type=_owner, default=None, metavar="PID[:START]",
                   help="bring the lab down when this process exits (START, epoch s: a reused pid does not count)")
    a = p.parse_args(argv)
    policy = AutoscalerPolicy(min_replicas=a.min_features, max_replicas=a.max_features)
    for kv in a.autoscale:
        key, _, value = kv.partition("=")
        setattr(policy, key, type(getattr(policy, key))(float(value)))
    paths = LabPaths(a.dir)
    paths.ensure()
    token = auth.write_token(paths.token)  # before state.json: whoever sees the state can read the token
    sup = Supervisor(
        paths,
        a.port or free_port(),
        load_delay=a.load_delay,
        restart_delay=a.restart_delay,
        autoscaler=Autoscaler(policy),
        feature_store=featurestore.configured_url(a.feature_store),
        token=token,
        owner=a.exit_with,
    )
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if sup.owner:  # the lab goes down with its owner, by the path of `mlchaos lab down` (POST /down)
        lifetime.down_when_gone(sup.owner, f"http://{HOST}:{sup.control_port}", token,
                                stopping=lambda: sup.stopping, log=sup.log)
    from mlchaos.lab.control import run

    asyncio.run(run(sup))


if __name__ == "__main__":
    main()
