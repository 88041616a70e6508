"""Any HTTP service: a base URL that probes and load point at, optionally through a fault proxy.

With ``proxy: true`` the target starts an mlchaos fault proxy in front of the
service for the length of the run and routes the experiment's load and HTTP
probes through it, so network and HTTP faults (``latency``, ``http-error``,
``timeout``, ...) work against any service without touching it.  The proxy
is a process this run owns: if the runner dies, the watchdog stops it, and
its faults expire with their leases anyway.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field

from mlchaos.contract.proc import pid_alive, process_start_time
from mlchaos.plugin import Target, TargetError, TargetSpec
from mlchaos.spec.types import Duration


class HttpTargetSpec(TargetSpec):
    platform: str = "http"
    url: str = Field(description="Base URL, e.g. http://127.0.0.1:8000")
    health: str | None = Field(None, description="Path that must answer (status < 500) at preflight.")
    timeout: Duration = 2.0
    proxy: bool = Field(False, description="Put a fault proxy in front for this run (network/HTTP faults need one).")
    proxy_control: str | None = Field(None, description="Control URL of a proxy you already run in front of it.")
    proxy_listen: str | None = Field(
        None, description="With proxy: true, HOST:PORT the proxy listens on (default: any free port). Give one when "
        "another service must be pointed at the proxy, e.g. the fault goes on a dependency of your service.",
    )


class HttpTarget(Target):
    """An HTTP service, reached directly or through a fault proxy the run starts."""

    Spec = HttpTargetSpec
    spec: HttpTargetSpec

    def __init__(self, spec: Any, ctx: Any) -> None:
        super().__init__(spec, ctx)
        self._proxy: Any = None
        self._listeners: list[int] = []
        self._looked = -float("inf")

    def footprint(self) -> list[int]:
        """The processes listening on the URL's port when the service runs on this machine (nginx's master
        and workers, a uvicorn server…), found again only once they are gone; none for a remote service.

        A service we did not start still has its CPU use told apart from other programs' on a saturated
        host (:mod:`mlchaos.engine.cpushare`).  Finding them reads every process's sockets (~15 ms), so
        at most every 30 s.
        """
        alive = [p for p in self._listeners if pid_alive(p)]
        if alive and len(alive) == len(self._listeners):
            return alive
        if time.monotonic() - self._looked >= 30.0:
            self._looked = time.monotonic()
            self._listeners = alive = local_listeners(self.spec.url)
        return alive

    async def start(self) -> None:
        if not self.spec.proxy:
            return
        from mlchaos.proxy import spawn

        parts = urlsplit(self.spec.url)
        if parts.scheme != "http" or not parts.hostname:
            raise TargetError(f"proxy: true needs a plain http:// URL, got {self.spec.url!r}")
        upstream = f"{parts.hostname}:{parts.port or 80}"
        try:
            self._proxy = await _to_thread(spawn, listen=self.spec.proxy_listen or "127.0.0.1:0", upstream=upstream,
                                           mode="http")
        except Exception as exc:
            raise TargetError(f"could not start a fault proxy in front of {upstream}: {exc}") from None
        self.ctx.log("proxy-started", upstream=upstream, listen=self._proxy.listen_addr,
                     control=self._proxy.control_url, pid=self._proxy.pid)

    async def preflight(self) -> dict[str, Any]:
        import httpx

        url = self.url(self.spec.health or "")
        try:
            async with httpx.AsyncClient(timeout=self.spec.timeout) as client:
                r = await client.get(url)
        except httpx.HTTPError as exc:
            raise TargetError(f"{url} unreachable: {type(exc).__name__}: {exc}") from None
        if self.spec.health and r.status_code >= 500:
            raise TargetError(f"{url} answered {r.status_code}")
        return {"url": self.spec.url, "via": self.url(), "status": r.status_code}

    async def stop(self) -> None:
        if self._proxy is not None:
            await _to_thread(self._proxy.stop)
            self._proxy = None

    def owned(self) -> list[list[float]]:
        if self._proxy is None:
            return []
        started = process_start_time(self._proxy.pid, zombies=True)
        return [[self._proxy.pid, started]] if started is not None else []

    def proxy_control_url(self) -> str | None:
        return self._proxy.control_url if self._proxy is not None else self.spec.proxy_control

    def url(self, path: str = "") -> str:
        if self._proxy is not None:
            parts = urlsplit(self.spec.url)
            base = f"http://{self._proxy.listen_addr}{parts.path}"
            return join_url(base, path)
        return join_url(self.spec.url, path)


def join_url(base: str, path: str) -> str:
    """``path`` relative to ``base`` (an absolute URL stays as it is)."""
    if not path:
        return base
    if path.startswith(("http://", "https://")):
        return path
    return base.rstrip("/") + "/" + path.lstrip("/")


async def _to_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    import asyncio  # here, not at the top: validating an experiment imports this module, not an event loop

    return await asyncio.to_thread(fn, *args, **kwargs)


LOCAL = ("localhost", "0.0.0.0", "::1", "::")


def local_listeners(url: str) -> list[int]:
    """Pids of the processes listening on ``url``'s port on this machine; [] for a remote host, or when
    the sockets cannot be read (another user's processes, not Linux)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host not in LOCAL and not host.startswith("127."):
        return []
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        import psutil

        conns = psutil.net_connections("tcp")
    except Exception:
        return []
    return sorted({c.pid for c in conns if c.status == psutil.CONN_LISTEN and c.pid and c.laddr
                   and c.laddr.port == port})
