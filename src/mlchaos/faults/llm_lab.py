"""The gray failure of an LLM engine: its generation loop stops while ``/health`` keeps answering 200.

What users of vLLM, TGI and SGLang report: the engine's scheduler loop dies
or wedges (a CUDA error, a deadlock, a stuck collective) while the HTTP
front end lives on; a load balancer probing ``/health`` keeps sending
traffic, and every request waits forever.  ``llm-engine-hang`` does that to
a lab engine (:mod:`mlchaos.lab.services.llm_engine`): no step runs, nothing
is admitted, streams stall mid-generation, ``/health`` and ``/ready`` stay
200.  Removal resumes the loop, and the requests that waited are served.

It goes through the engine's admin API (``POST /admin/hang``, ``DELETE
/admin/hang/{id}``) with the lab's token (:mod:`mlchaos.lab.auth`).  The
engine holds the hang under the lease (``ttl``): if the runner dies, the
loop resumes by itself when the lease lapses, the second clock; ``revert``
needs only the undo record (URL, id, lab directory for the token).  The id
is chosen in ``intent``, before the call.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import Field

from mlchaos.plugin import Applied, Fault, FaultError, FaultSpec

__all__ = ["LlmEngineHang"]


class LlmEngineHangSpec(FaultSpec):
    fault: Literal["llm-engine-hang"] = "llm-engine-hang"
    service: str = Field("llm-primary", description="The lab's engine service whose generation loop stops.")
    url: str | None = Field(None, description="The engine's base URL (default: the lab service's).")
    lab_dir: str | None = Field(None, description="Lab directory, for the service's URL and the admin token "
                                "(default: the target's, else $MLCHAOS_LAB_DIR).")


def _call(method: str, url: str, token: str, body: Any = None) -> dict[str, Any]:
    import httpx

    from mlchaos.lab.auth import bearer

    try:
        r = httpx.request(method, url, json=body, headers=bearer(token), timeout=10)
    except httpx.HTTPError as exc:
        raise FaultError(f"{method} {url}: {type(exc).__name__}: {exc}") from None
    if r.status_code != 200:
        raise FaultError(f"{method} {url}: {r.status_code} {r.text[:300]}")
    out: dict[str, Any] = r.json()
    return out


class LlmEngineHang(Fault):
    """Stop a lab LLM engine's generation loop (its HTTP server, /health included, keeps answering)."""

    Spec = LlmEngineHangSpec
    spec: LlmEngineHangSpec

    def _lab(self) -> Any:
        from mlchaos.lab import Lab

        directory = self.spec.lab_dir
        if directory is None:
            try:
                directory = str(self.ctx.target(self.spec.target).lab.paths.root)  # type: ignore[attr-defined]
            except Exception:  # not a lab target (or none): the default lab directory
                directory = None
        return Lab(directory)

    def _where(self) -> tuple[str, str, str]:
        """(engine URL, admin token, lab dir); FaultError naming what is missing."""
        from mlchaos.lab.lab import LabError

        lab = self._lab()
        url = self.spec.url
        if url is None:
            url = lab.endpoints().get(self.spec.service)
            if url is None:
                raise FaultError(f"service: no lab service {self.spec.service!r} running in {lab.paths.root}")
        try:
            token = lab._token()
        except LabError as exc:
            raise FaultError(str(exc)) from None
        return url.rstrip("/"), token, str(lab.paths.root)

    async def preflight(self) -> dict[str, Any]:
        url, token, _ = await asyncio.to_thread(self._where)
        info = await asyncio.to_thread(_call, "GET", url + "/info", token)
        return {"engine": url, "model": info.get("model"), "scheduler": info.get("scheduler")}

    async def intent(self, lease: Any) -> dict[str, Any]:
        url, token, directory = await asyncio.to_thread(self._where)
        self._plan = (url, token, f"mlchaos-{self.ctx.run_id}-{lease.id}"[:64])
        return {"url": url, "id": self._plan[2], "lab_dir": directory}

    async def inject(self, lease: Any) -> Applied:
        plan = getattr(self, "_plan", None)
        if plan is None:
            await self.intent(lease)
            plan = self._plan
        url, token, hang_id = plan
        view = await asyncio.to_thread(_call, "POST", url + "/admin/hang", token, {"id": hang_id, "ttl": lease.ttl})
        self._undo = {"url": url, "id": hang_id, "lab_dir": self.spec.lab_dir or str(self._lab().paths.root)}
        return Applied(targets=[url], planned={"service": self.spec.service, "ttl": lease.ttl},
                       actual={"hung": view.get("hung"), "running": view.get("running"),
                               "waiting": view.get("waiting")}, undo=self._undo)

    async def renew(self, lease: Any) -> None:
        plan = getattr(self, "_plan", None)
        if plan is not None and getattr(self, "_undo", None):
            url, token, hang_id = plan
            await asyncio.to_thread(_call, "POST", url + "/admin/hang", token, {"id": hang_id, "ttl": lease.ttl})

    async def remove(self) -> None:
        undo = getattr(self, "_undo", None)
        if undo:
            await asyncio.to_thread(self.revert, undo)

    @classmethod
    def revert(cls, undo: dict[str, Any]) -> None:
        """End the hang; an engine that is gone (its loop with it) counts as done."""
        import httpx

        from mlchaos.lab import Lab
        from mlchaos.lab.auth import bearer
        from mlchaos.lab.lab import LabError

        if not undo.get("url") or not undo.get("id"):
            return
        try:
            token = Lab(undo.get("lab_dir"))._token()
        except LabError as exc:  # no token: a lab that is down took its engines (and their hangs) with it
            try:
                httpx.get(f"{undo['url']}/health", timeout=5)
            except httpx.ConnectError:
                return
            except httpx.HTTPError:
                pass
            raise FaultError(f"cannot end the engine hang {undo['id']}: {exc}") from None
        try:
            r = httpx.delete(f"{undo['url']}/admin/hang/{undo['id']}", headers=bearer(token), timeout=10)
        except httpx.ConnectError:
            return
        except httpx.HTTPError as exc:
            raise FaultError(f"cannot end the engine hang {undo['id']}: {exc}") from None
        if r.status_code != 200:
            raise FaultError(f"cannot end the engine hang {undo['id']}: {r.status_code} {r.text[:300]}")
