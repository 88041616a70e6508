"""The supervisor's control API on 127.0.0.1: what ``Lab`` (and so the CLI and the engine) calls.

``GET /health``, ``GET /state``, ``GET /metrics``; ``POST /up``, ``/variant``,
``/model``, ``/dependency``, ``/down``.  Every ``POST`` needs the lab's admin
token (:mod:`mlchaos.lab.auth`).  Input is checked here, before any service
sees it: a bad request is a 422 naming the field.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import TYPE_CHECKING, Any

from fastapi import Body, FastAPI, HTTPException

from mlchaos.lab import auth, monitor
from mlchaos.lab import observability as obs
from mlchaos.lab.paths import HOST
from mlchaos.lab.topology import DEFAULT_SYSTEMS, SYSTEMS, VARIANTS, callers

if TYPE_CHECKING:
    from mlchaos.lab.supervisor import Supervisor


def create_control_app(sup: Supervisor, holder: dict[str, Any]) -> FastAPI:
    """The control app; ``holder["server"]`` is the uvicorn server ``POST /down`` stops."""
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"alive": True, "pid": os.getpid()}

    @app.get("/state")
    async def state() -> dict[str, Any]:
        return sup.state()

    @app.post("/up")
    async def up(body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        systems, variant, ports = body.get("systems") or list(DEFAULT_SYSTEMS), body.get("variant", "naive"), body.get("ports") or {}
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
        if service not in callers():
            expected = " or ".join(map(repr, callers()))
            raise HTTPException(422, f"service: expected {expected}, got {service!r}")
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
    """Serve the control API and run the monitor loop until ``POST /down`` or a signal; then stop everything."""
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
    mon = asyncio.create_task(monitor.watch(sup))
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
