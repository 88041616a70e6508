"""The lab supervisor: starts the services, restarts dead replicas, autoscales the feature service.

One long-lived process per lab directory (started detached by
:meth:`mlchaos.lab.Lab.up`).  It plays the part Kubernetes plays in
production: a ReplicaSet (a dead replica is started again after
``restart_delay``, on the same port, and takes ``load_delay`` to load its
model), an HPA for the feature service (see :mod:`mlchaos.lab.autoscaler`),
and the place where variants, model versions and dependency URLs are changed
at run time.  Its state is written to ``state.json`` and served by a small
control API on 127.0.0.1 (``GET /state``, ``POST /up``, ``/variant``,
``/model``, ``/dependency``, ``/down``, ``GET /metrics``).  Every ``POST``
needs the lab's admin token, which the supervisor writes to ``admin.token``
when it starts and sends on its own admin calls to the services (see
:mod:`mlchaos.lab.auth`); its services die with it (:mod:`mlchaos.lab.lifetime`).

The online feature store is SQLite unless the supervisor is given a Redis URL
(``--feature-store redis://…`` or ``$MLCHAOS_LAB_REDIS_URL``): then it copies
the built rows into Redis once, before the first system starts, and starts
every feature-service replica on Redis.  ``state.json`` records which store
is in use, so feature-store faults (and their watchdog reverts) find it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import httpx
import psutil
from fastapi import Body, FastAPI, HTTPException
from prometheus_client import Counter, Gauge

from mlchaos.atomic import write_json_atomic
from mlchaos.lab import auth, featurestore, procs
from mlchaos.lab import observability as obs
from mlchaos.lab.autoscaler import Autoscaler, AutoscalerPolicy, Decision
from mlchaos.lab.build import ensure_built
from mlchaos.lab.models import RECS_VERSION, resolve_fraud_version
from mlchaos.lab.paths import HOST, LabPaths, free_port
from mlchaos.lab.upstream import Upstream

SYSTEMS = ("serving", "realtime", "batch", "recommender")
VARIANTS = ("naive", "mitigated", "silent-zeros")
SERVING_REPLICAS = 3

AS_REPLICAS = Gauge("mlchaos_autoscaler_replicas", "Replicas of the autoscaled service.", ["service", "kind"])
AS_DECISIONS = Counter(
    "mlchaos_autoscaler_decisions_total", "Scaling decisions applied.", ["service", "direction"]
)
AS_CONCURRENCY = Gauge(
    "mlchaos_autoscaler_concurrency", "Average in-flight requests (Little's law).", ["service"]
)
_STARTED_AT = psutil.Process().create_time()
"""This supervisor's start (epoch s), in state.json: a later reader tells it from a process that reused its pid."""
RESTARTS = Counter("mlchaos_supervisor_restarts_total", "Processes restarted after exiting.", ["service"])


def system_variant(system: str, variant: str) -> str:
    """``silent-zeros`` exists only for realtime; other systems treat it as naive."""
    if variant == "silent-zeros" and system != "realtime":
        return "naive"
    return variant


@dataclass
class Proc:
    name: str
    system: str
    role: str  # replica | lb | service
    module: str
    port: int
    group: str | None = None
    model_version: str | None = None
    restart: bool = True
    popen: BaseProcess | None = None
    started_at: float = 0.0
    restarts: int = 0
    ready: bool = False
    desired: bool = True
    restart_at: float | None = None
    backoff: float = 0.0
    control_port: int | None = None
    upstream: str | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def control_url(self) -> str | None:
        return f"http://{HOST}:{self.control_port}" if self.control_port else None

    @property
    def ready_url(self) -> str:
        # a fault proxy forwards every data-path path upstream: ask its own control API instead
        return (self.control_url + "/health") if self.control_url else self.url + "/ready"

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None and self.popen.exitcode is None else None


@dataclass
class Supervisor:
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

    def __post_init__(self) -> None:
        self.log = obs.JsonLog("supervisor")
        self.client = httpx.AsyncClient(  # control calls (rare)
            timeout=httpx.Timeout(1.0, connect=0.5), headers=auth.bearer(self.token) if self.token else None
        )
        self.probe = Upstream(limit=50)  # readiness and stats polls (frequent)
        self._last_written: str | None = None
        self._next_feature = 0
        self._store_loaded = False

    # --- process specs -------------------------------------------------------------------------
    def dependency_url(self, service: str) -> str:
        """Where ``service`` sends its dependency calls: an override, else the lab's fault proxy."""
        if service in self.dependency_overrides:
            return self.dependency_overrides[service]
        proxy, direct = {"fraud": ("features-proxy", "features-lb"), "recommender": ("embedding-proxy", "embedding")}[service]
        return self.procs[proxy].url if proxy in self.procs else self.procs[direct].url

    def args_for(self, p: Proc) -> list[str]:
        models, variant = str(self.paths.models), self.variants.get(p.system, "naive")
        if p.role == "proxy":
            upstream = self.procs[p.upstream or ""]
            return ["--listen", f"{HOST}:{p.port}", "--upstream", f"{HOST}:{upstream.port}", "--mode", "http",
                    "--control", f"{HOST}:{p.control_port}"]
        if p.module == "mlchaos.lab.services.model_server":
            return [
                "--models",
                models,
                "--version",
                p.model_version or "current",
                "--load-delay",
                str(self.load_delay),
            ]
        if p.module == "mlchaos.lab.services.balancer":
            mode = "mitigated" if p.group == "features" else system_variant("serving", variant)
            backs = [f"{q.name}={q.url}" for q in self.group(p.group or "")]
            return ["--mode", mode, *(a for b in backs for a in ("--backend", b))]
        if p.module == "mlchaos.lab.services.feature_service":
            store = ["--store", self.feature_store] if self.feature_store else []
            return ["--db", str(self.paths.feature_db), *store]
        if p.module == "mlchaos.lab.services.fraud_service":
            return [
                "--models",
                models,
                "--version",
                p.model_version or "current",
                "--feature-url",
                self.dependency_url("fraud"),
                "--variant",
                variant,
            ]
        if p.module == "mlchaos.lab.services.embedding_service":
            return ["--models", models]
        if p.module == "mlchaos.lab.services.recommender_service":
            return [
                "--models",
                models,
                "--embedding-url",
                self.dependency_url("recommender"),
                "--variant",
                system_variant("recommender", variant),
            ]
        raise ValueError(p.module)

    def group(self, g: str) -> list[Proc]:
        return [p for p in self.procs.values() if p.group == g and p.role == "replica" and p.desired]

    def plan(self, system: str, ports: dict[str, int]) -> list[Proc]:
        def port(name: str) -> int:
            return int(ports.get(name) or free_port())

        if system == "serving":
            reps = [
                Proc(
                    f"serving-{i}",
                    "serving",
                    "replica",
                    "mlchaos.lab.services.model_server",
                    port(f"serving-{i}"),
                    group="serving",
                    model_version="current",
                )
                for i in range(SERVING_REPLICAS)
            ]
            return [
                *reps,
                Proc(
                    "serving-lb", "serving", "lb", "mlchaos.lab.services.balancer", port("serving-lb"), group="serving"
                ),
            ]
        if system == "realtime":
            n = self.autoscaler.policy.min_replicas
            reps = [self._feature_replica(ports) for _ in range(n)]
            return [
                *reps,
                Proc(
                    "features-lb",
                    "realtime",
                    "lb",
                    "mlchaos.lab.services.balancer",
                    port("features-lb"),
                    group="features",
                ),
                Proc("features-proxy", "realtime", "proxy", "mlchaos.proxy.__main__", port("features-proxy"),
                     control_port=port("features-proxy-control"), upstream="features-lb"),
                Proc(
                    "fraud",
                    "realtime",
                    "service",
                    "mlchaos.lab.services.fraud_service",
                    port("fraud"),
                    model_version="current",
                ),
            ]
        if system == "recommender":
            return [
                Proc(
                    "embedding",
                    "recommender",
                    "service",
                    "mlchaos.lab.services.embedding_service",
                    port("embedding"),
                    model_version=RECS_VERSION,
                ),
                Proc("embedding-proxy", "recommender", "proxy", "mlchaos.proxy.__main__", port("embedding-proxy"),
                     control_port=port("embedding-proxy-control"), upstream="embedding"),
                Proc(
                    "recommender",
                    "recommender",
                    "service",
                    "mlchaos.lab.services.recommender_service",
                    port("recommender"),
                    model_version=RECS_VERSION,
                ),
            ]
        return []  # batch runs on demand (python -m mlchaos.lab.batch), it has no long-lived process

    def _feature_replica(self, ports: dict[str, int] | None = None) -> Proc:
        name = f"features-{self._next_feature}"
        self._next_feature += 1
        port = int((ports or {}).get(name) or free_port())
        return Proc(name, "realtime", "replica", "mlchaos.lab.services.feature_service", port, group="features")

    # --- process control -----------------------------------------------------------------------
    def spawn(self, p: Proc) -> None:
        argv = self.args_for(p) if p.role == "proxy" else ["--name", p.name, "--port", str(p.port), *self.args_for(p)]
        # the admin token file's path (the token never goes on a command line); and no proxy token from the
        # user's shell: the lab's own fault proxies answer the supervisor's readiness checks without one
        env: dict[str, str | None] = {auth.TOKEN_ENV: str(self.paths.token), "MLCHAOS_PROXY_TOKEN": None}
        p.popen = procs.start(p.name, p.module, argv, str(self.paths.log_for(p.name)), env)
        p.started_at, p.ready, p.restart_at = time.time(), False, None
        self.log("spawned", service=p.name, pid=p.popen.pid, port=p.port)

    def terminate(self, p: Proc) -> None:
        p.desired = False
        if p.popen is not None and p.popen.exitcode is None:
            p.popen.terminate()

    async def reap(self, procs: list[Proc], grace: float = 3.0) -> None:
        for p in procs:
            self.terminate(p)
        deadline = time.monotonic() + grace
        for p in procs:
            if p.popen is None:
                continue
            while p.popen.exitcode is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if p.popen.exitcode is None:
                p.popen.kill()
            p.popen.join(timeout=5)

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

    async def post(self, p: Proc, path: str, body: dict[str, Any], method: str = "POST") -> None:
        try:
            await self.client.request(method, p.url + path, json=body)
        except httpx.HTTPError as exc:
            self.log("control_failed", level="warning", service=p.name, path=path, error=type(exc).__name__)

    async def set_variant(self, systems: list[str], variant: str) -> None:
        for s in systems:
            v = system_variant(s, variant)
            self.variants[s] = v
            if s == "serving" and "serving-lb" in self.procs:
                await self.post(self.procs["serving-lb"], "/lb/mode", {"mode": v})
            elif s == "realtime" and "fraud" in self.procs:
                await self.post(self.procs["fraud"], "/admin/variant", {"variant": v})
            elif s == "recommender" and "recommender" in self.procs:
                await self.post(self.procs["recommender"], "/admin/variant", {"variant": v})
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

    # --- loops ---------------------------------------------------------------------------------
    async def monitor(self) -> None:
        last_scale = last_full = time.monotonic()
        while not self.stopping:
            now = time.time()
            for p in list(self.procs.values()):
                if not p.desired or p.popen is None:
                    continue
                code = p.popen.exitcode
                if code is None:
                    continue
                if p.restart_at is None:
                    quick = now - p.started_at < 5.0
                    p.backoff = (
                        min(max(p.backoff * 2, self.restart_delay), 10.0) if quick else self.restart_delay
                    )
                    p.restart_at = now + p.backoff
                    p.ready = False
                    self.log("exited", level="warning", service=p.name, code=code, restart_in_s=p.backoff)
                elif now >= p.restart_at and p.restart:
                    p.restarts += 1
                    RESTARTS.labels(p.name).inc()
                    self.spawn(p)
            # not-ready processes every tick (fast start-up detection), all of them once a second
            full = time.monotonic() - last_full >= 1.0
            if full:
                last_full = time.monotonic()
            await self.poll_ready(everyone=full)
            if "realtime" in self.systems and time.monotonic() - last_scale >= 1.0:
                last_scale = time.monotonic()
                await self.autoscale()
            self.write_state()
            await asyncio.sleep(0.25)

    async def poll_ready(self, everyone: bool = True) -> None:
        async def one(p: Proc) -> None:
            if p.pid is None:
                p.ready = False
                return
            try:
                status, _ = await self.probe.get_json(p.ready_url, 0.5)
                ok = status == 200
            except Exception:  # any failure to answer is "not ready"
                ok = False
            if ok and not p.ready:
                self.log("ready", service=p.name, after_s=round(time.time() - p.started_at, 3))
            p.ready = ok

        await asyncio.gather(
            *(one(p) for p in self.procs.values() if p.desired and (everyone or not p.ready))
        )

    async def autoscale(self) -> None:
        reps = self.group("features")
        reqs = lat = 0.0
        for p in reps:
            if p.pid is None:
                continue
            try:
                _, s = await self.probe.get_json(p.url + "/stats", 0.5)
                reqs += s["requests"]
                lat += s["latency_sum_s"]
            except Exception:  # a replica that cannot answer its stats counts as no data
                continue
        d: Decision = self.autoscaler.observe(time.monotonic(), len(reps), reqs, lat)
        AS_CONCURRENCY.labels("features").set(d.concurrency)
        AS_REPLICAS.labels("features", "current").set(len(reps))
        AS_REPLICAS.labels("features", "desired").set(d.desired)
        if d.direction == "hold":
            return
        AS_DECISIONS.labels("features", d.direction).inc()
        rec: dict[str, Any] = {
            "at": time.time(),
            "service": "features",
            "from": d.current,
            "to": d.desired,
            "direction": d.direction,
            "reason": d.reason,
            "concurrency": round(d.concurrency, 3),
            "latency_ms": round(d.latency_ms, 3),
            "rate": round(d.rate, 1),
        }
        self.decisions = [*self.decisions[-49:], rec]
        self.log("autoscale", **rec)
        lb = self.procs.get("features-lb")
        if d.desired > d.current:
            for _ in range(d.desired - d.current):
                p = self._feature_replica()
                self.procs[p.name] = p
                self.spawn(p)
        else:
            victims = sorted(reps, key=lambda q: q.started_at)[d.desired :]
            for v in victims:
                v.desired = False
        if lb is not None:
            await self.post(
                lb,
                "/lb/backends",
                [{"name": q.name, "url": q.url} for q in self.group("features")],  # type: ignore[arg-type]
                method="PUT",
            )
        if d.desired < d.current:
            await asyncio.sleep(0.5)  # let the balancer drain them first
            await self.reap([q for q in reps if not q.desired])
            for q in [q for q in reps if not q.desired]:
                self.procs.pop(q.name, None)

    # --- state ---------------------------------------------------------------------------------
    def services(self) -> list[dict[str, Any]]:
        out = []
        for p in self.procs.values():
            out.append(
                {
                    "name": p.name,
                    "system": p.system,
                    "role": p.role,
                    "pid": p.pid,
                    "port": p.port,
                    "url": p.url,
                    "ready": p.ready and p.pid is not None,
                    "variant": self.variants.get(p.system),
                    "model_version": self.resolve(p.model_version),
                    "model_alias": p.model_version,
                    "restarts": p.restarts,
                    "alive": p.pid is not None,
                    "started_at": p.started_at,
                    "group": p.group,
                    "control_url": p.control_url,
                }
            )
        if "batch" in self.systems:
            out.append(
                {
                    "name": "batch",
                    "system": "batch",
                    "role": "job",
                    "pid": None,
                    "port": None,
                    "url": None,
                    "ready": (self.paths.offline).exists(),
                    "variant": self.variants.get("batch"),
                    "model_version": self.resolve("current"),
                    "model_alias": "current",
                    "restarts": 0,
                    "alive": True,
                    "started_at": None,
                    "group": None,
                }
            )
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
                "port": self.control_port,
                "url": f"http://{HOST}:{self.control_port}",
            },
            "systems": self.systems,
            "variants": self.variants,
            "dependency_urls": {
                s: self.dependency_url(s) for s in ("fraud", "recommender") if s in self.procs
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


def create_control_app(sup: Supervisor, holder: dict[str, Any]) -> FastAPI:
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"alive": True, "pid": os.getpid()}

    @app.get("/state")
    async def state() -> dict[str, Any]:
        return sup.state()

    @app.post("/up")
    async def up(body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        systems, variant, ports = body.get("systems") or list(SYSTEMS), body.get("variant", "naive"), body.get("ports") or {}
        if not isinstance(systems, list) or not set(systems) <= set(SYSTEMS):
            raise HTTPException(422, f"systems: expected some of {', '.join(SYSTEMS)}, got {systems!r}")
        if variant not in VARIANTS:
            raise HTTPException(422, f"variant: expected one of {', '.join(VARIANTS)}, got {variant!r}")
        if not isinstance(ports, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 65536 for v in ports.values()
        ):
            raise HTTPException(422, f"ports: expected {{service: port}}, got {ports!r}")
        await sup.up(list(systems), variant, dict(ports))
        for svc, url in (body.get("dependency_urls") or {}).items():
            await sup.set_dependency(svc, url)
        return sup.state()

    @app.post("/variant")
    async def variant(body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        await sup.set_variant(list(body.get("systems") or sup.systems), str(body["variant"]))
        return sup.state()

    @app.post("/model")
    async def model(body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        try:  # a version is a file name: refuse anything else before any replica sees it
            version = auth.check_name(body.get("version"), "version")
            services = body.get("services")
            if services is not None:
                if not isinstance(services, list):
                    raise auth.BadName(f"services: expected a list of names, got {services!r}")
                unknown = [n for n in services if n not in sup.procs]
                if unknown:
                    raise auth.BadName(f"services: no lab service named {', '.join(map(repr, unknown))}")
        except auth.BadName as exc:
            raise HTTPException(422, str(exc)) from None
        names = await sup.set_model(version, services)
        return {"services": names, "version": version}

    @app.post("/dependency")
    async def dependency(body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        service, url = body.get("service"), body.get("url")
        if service not in ("fraud", "recommender"):
            raise HTTPException(422, f"service: expected 'fraud' or 'recommender', got {service!r}")
        if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
            raise HTTPException(422, f"url: expected an http(s) URL or null, got {url!r}")
        return {"service": service, "url": await sup.set_dependency(service, url)}

    @app.post("/down")
    async def down() -> dict[str, Any]:
        await sup.shutdown()
        holder["server"].should_exit = True
        return {"stopped": True}

    obs.add_metrics_route(app)

    return app


async def run(sup: Supervisor) -> None:
    import uvicorn

    holder: dict[str, Any] = {}
    config = uvicorn.Config(
        auth.AdminGuard(create_control_app(sup, holder), sup.token, auth.control_writes),
        host=HOST,
        port=sup.control_port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    holder["server"] = server
    sup.write_state()
    sup.log("started", pid=os.getpid(), control_port=sup.control_port, dir=str(sup.paths.root))
    mon = asyncio.create_task(sup.monitor())
    try:
        await server.serve()
    finally:
        mon.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await mon
        if not sup.stopping:
            await sup.shutdown()
        await sup.client.aclose()
        await sup.probe.close()


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
    )
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    asyncio.run(run(sup))


if __name__ == "__main__":
    main()
