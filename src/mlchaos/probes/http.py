"""HTTP probe: status, latency or a JSON value of one request.

``value: status`` (default) checks what a health check checks; ``latency``
measures one request's wall time in seconds; ``json`` extracts a value with a
dotted path (``model.version``, ``items[0].score``), so a probe can read what
a model answered, not only whether it answered.  A request that fails (refused,
timed out) is a failed observation with the reason, never a pass.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field, field_validator

from mlchaos.plugin import Measurement, Probe, ProbeError, ProbeSpec, TargetError
from mlchaos.spec.types import Duration


class HttpProbeSpec(ProbeSpec):
    probe: Literal["http"] = "http"
    url: str = Field(description="Absolute URL, or a path relative to the target's URL.")
    method: Literal["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(None, alias="json", description="JSON body to send.")
    timeout: Duration = Field(2.0, description="Request timeout; a timeout is a failed observation.")
    value: Literal["status", "latency", "json"] = Field("status", description="What the tolerance applies to.")
    path: str | None = Field(None, description="JSON path for value: json, e.g. 'model.version', "
                                                "'outputs[name=label].data[0]' (grammar: mlchaos.jsonpath).")
    status: list[int] | None = Field(
        None, description="Acceptable statuses for value latency/json (default: any status below 400)."
    )

    @field_validator("path")
    @classmethod
    def _path_parses(cls, v: str | None) -> str | None:
        """A path that does not parse is a validation error at its line, not a failure mid-run."""
        from mlchaos import jsonpath

        return v if v is None or not v.strip(". ") else jsonpath.check(v)


def json_path(doc: Any, path: str) -> Any:
    """Follow ``a.b[0].c`` through dicts and lists; raise KeyError with the missing part.

    The grammar (wildcards, filters, quoted keys) is :mod:`mlchaos.jsonpath`'s; with a wildcard
    or a filter this is the first match.  An empty path is the document itself.
    """
    from mlchaos import jsonpath

    if not path.strip(". "):
        return doc
    return jsonpath.compile(path).find_one(doc)


class HttpProbe(Probe):
    """A GET/POST against the target: its status, latency, or a field of its JSON answer."""

    Spec = HttpProbeSpec

    def value_unit(self) -> str:
        return "s" if self.spec.value == "latency" else ""  # type: ignore[attr-defined]

    async def start(self) -> None:
        import httpx

        self._client = httpx.AsyncClient(timeout=self.spec.timeout)  # type: ignore[attr-defined]

    async def stop(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            await client.aclose()

    def _url(self) -> str:
        spec: HttpProbeSpec = self.spec  # type: ignore[assignment]
        if spec.url.startswith(("http://", "https://")):
            return spec.url
        try:
            return self.ctx.target(spec.target).url(spec.url)
        except TargetError as exc:
            raise ProbeError(f"cannot resolve {spec.url!r}: {exc}") from None

    async def measure(self) -> Measurement:
        import httpx

        spec: HttpProbeSpec = self.spec  # type: ignore[assignment]
        if getattr(self, "_client", None) is None:
            await self.start()
        url = self._url()
        t0 = time.perf_counter()
        try:
            r = await self._client.request(spec.method, url, headers=spec.headers, json=spec.json_body)
        except httpx.TimeoutException:
            raise ProbeError(f"{spec.method} {url} timed out after {spec.timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise ProbeError(f"{spec.method} {url}: {type(exc).__name__}: {exc}") from None
        latency = time.perf_counter() - t0
        detail = {"status": r.status_code, "latency_s": round(latency, 6)}
        if spec.value == "status":
            return Measurement(r.status_code, detail)
        ok_status = (spec.status is None and r.status_code < 400) or (spec.status and r.status_code in spec.status)
        if not ok_status:
            raise ProbeError(f"{spec.method} {url} answered {r.status_code}")
        if spec.value == "latency":
            return Measurement(latency, detail)
        try:
            doc = r.json()
        except ValueError:
            raise ProbeError(f"{url} did not answer JSON (content-type {r.headers.get('content-type')})") from None
        if not spec.path:
            return Measurement(doc, detail)
        try:
            return Measurement(json_path(doc, spec.path), detail)
        except KeyError as exc:
            raise ProbeError(f"{url}: JSON path {spec.path!r} not found (missing {exc.args[0]!r})") from None
