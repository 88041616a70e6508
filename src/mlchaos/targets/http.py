"""Any HTTP service: a base URL that probes, load and the fault proxy point at."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from mlchaos.plugin import Target, TargetError, TargetSpec
from mlchaos.spec.types import Duration
from mlchaos.targets.process import _join


class HttpTargetSpec(TargetSpec):
    platform: str = "http"
    url: str = Field(description="Base URL, e.g. http://127.0.0.1:8000")
    health: str | None = Field(None, description="Path that must answer (status < 500) at preflight.")
    timeout: Duration = 2.0


class HttpTarget(Target):
    Spec = HttpTargetSpec

    async def preflight(self) -> dict[str, Any]:
        import httpx

        spec: HttpTargetSpec = self.spec  # type: ignore[assignment]
        url = self.url(spec.health or "")
        try:
            async with httpx.AsyncClient(timeout=spec.timeout) as client:
                r = await client.get(url)
        except httpx.HTTPError as exc:
            raise TargetError(f"{url} unreachable: {type(exc).__name__}: {exc}") from None
        if spec.health and r.status_code >= 500:
            raise TargetError(f"{url} answered {r.status_code}")
        return {"url": spec.url, "status": r.status_code}

    def url(self, path: str = "") -> str:
        return _join(self.spec.url, path)  # type: ignore[attr-defined]
