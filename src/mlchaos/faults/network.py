"""Network and HTTP faults, injected through an mlchaos fault proxy's control API.

Each plugin is a thin adapter: its ``Spec`` is the proxy fault's JSON with
units, and its methods map one to one onto control API calls.  The proxy holds
the fault under a lease (``ttl = lease.ttl``); if the runner dies, the proxy
drops the fault by itself when the lease lapses, and ``revert`` needs only
``{"control": url, "id": fault_id}``.

Registered names (entry point group ``mlchaos.faults``): ``latency``,
``bandwidth``, ``timeout``, ``reset``, ``refuse``, ``slow-close``,
``http-error``, ``abort``, ``json-corrupt``, and ``proxy`` (any kind by name,
parameters under ``params``).

Where is the proxy?  ``control:`` in the step, else the target's
``proxy_control_url`` (attribute or method) or its spec's ``proxy_control``
field.  A token, when the proxy requires one, is read from the environment
variable named by ``token_env`` (default ``MLCHAOS_PROXY_TOKEN``), so no
secret is written into the journal.

This module imports only pydantic and the stdlib at import time.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from mlchaos.plugin import Applied, Context, Fault, FaultError, FaultSpec, StrictModel
from mlchaos.spec.types import Duration, Percent, Size

if TYPE_CHECKING:
    from mlchaos.contract.lease import Lease
    from mlchaos.proxy.client import ProxyClient


class ProxyMatch(StrictModel):
    """Blast-radius matchers (HTTP-mode proxies only)."""

    method: list[str] | str | None = Field(default=None, description="HTTP method(s), e.g. 'GET'.")
    path: str | None = Field(default=None, description="Glob on the request path, e.g. '/features/*'.")
    headers: dict[str, str] = Field(default_factory=dict, description="Header -> glob on its value ('*': present).")


class NetworkSpec(FaultSpec):
    """Fields shared by every proxy-driven fault."""

    control: str | None = Field(default=None, description="Control API URL of the proxy, e.g. 'http://127.0.0.1:8474'.")
    token_env: str = Field("MLCHAOS_PROXY_TOKEN", description="Environment variable holding the bearer token.")
    probability: Percent = Field(1.0, description="Share of requests (HTTP) or connections (TCP) hit, e.g. '10%'.")
    match: ProxyMatch = Field(default_factory=ProxyMatch, description="Only requests matching these are eligible.")
    direction: Literal["request", "response", "both"] | None = Field(
        None, description="Which path the fault acts on (default depends on the kind)."
    )
    seed: int | None = Field(default=None, description="Seed of the proxy's coin for this fault (reproducible runs).")


class LatencySpec(NetworkSpec):
    delay: Duration = Field(description="Delay (fixed), mean (uniform/normal) or median (lognormal), e.g. '200ms'.")
    jitter: Duration = Field(0.0, description="Uniform half-width or normal standard deviation.")
    distribution: Literal["fixed", "uniform", "normal", "exponential", "lognormal"] | None = None
    p99: Duration | None = Field(default=None, description="Lognormal only: the 99th percentile.")


class BandwidthSpec(NetworkSpec):
    rate: Size = Field(gt=0, le=10**12, description="Bytes per second, e.g. '10KB'; more than 0, at most 1 TB/s.")


class TimeoutSpec(NetworkSpec):
    close_after: Duration | None = Field(default=None, description="Close after this long; default: hold forever.")


class ResetSpec(NetworkSpec):
    after: Duration = Field(0.0, description="Reset this long after the request / first byte.")


class RefuseSpec(NetworkSpec):
    pass


class SlowCloseSpec(NetworkSpec):
    delay: Duration = Field(description="How late the close reaches the client.")


class HttpErrorSpec(NetworkSpec):
    status: int = Field(503, ge=200, le=599, description="HTTP status to answer with.")
    body: str | None = Field(default=None, description="Response body (default: a small JSON error).")
    content_type: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    # the proxy's own rule (mlchaos.proxy.headertext): refused here too, so `mlchaos validate` names the line
    @field_validator("content_type")
    @classmethod
    def _ctype(cls, v: str | None) -> str | None:
        from mlchaos.proxy import headertext

        return v if v is None else headertext.check_value(v, "content_type")

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        from mlchaos.proxy import headertext

        return headertext.check_headers(v)


class AbortSpec(NetworkSpec):
    fraction: float = Field(0.5, ge=0.0, lt=1.0, description="Share of the body sent before the RST.")


class JsonCorruptSpec(NetworkSpec):
    fields: list[str] = Field(min_length=1, description="Dotted paths in the JSON response, e.g. 'features.amount'.")
    action: Literal["null", "nan", "wrong_type", "scale", "stale"] = "null"
    factor: float = Field(10.0, description="Multiplier for action 'scale'.")


class GenericSpec(NetworkSpec):
    kind: str = Field(description="Proxy fault kind, e.g. 'latency' (GET /kinds on the proxy lists them).")
    params: dict[str, Any] = Field(default_factory=dict, description="The kind's parameters.")

    @field_validator("params")
    @classmethod
    def _params(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """A kind this mlchaos knows gets its parameters checked by the proxy's own model now, at
        ``mlchaos validate``, rather than by the proxy at preflight (CR/LF in headers, a zero rate...)."""
        from pydantic import ValidationError

        from mlchaos.proxy.faults import KINDS

        model = KINDS.get(str(info.data.get("kind")))
        if model is None:
            return v  # unknown here: the proxy's preflight check answers for it
        try:
            model.params_model.model_validate(v)
        except ValidationError as exc:
            e = exc.errors()[0]
            where = ".".join(str(p) for p in e["loc"])
            raise ValueError(f"{where}: {e['msg'].removeprefix('Value error, ')}" if where else e["msg"]) from None
        except ArithmeticError as exc:
            raise ValueError(f"a parameter is out of range: {exc}") from None
        return v


_COMMON = set(NetworkSpec.model_fields)


class ProxyFault(Fault):
    """Base of the proxy-driven faults: one control API call per method."""

    Spec: ClassVar[type[FaultSpec]] = NetworkSpec
    kind: ClassVar[str] = ""

    def __init__(self, spec: FaultSpec, ctx: Context) -> None:
        super().__init__(spec, ctx)
        self.fault_id: str | None = None
        self._control: str | None = None

    # -- helpers ------------------------------------------------------------------------------
    @property
    def nspec(self) -> NetworkSpec:
        assert isinstance(self.spec, NetworkSpec)
        return self.spec

    def control_url(self) -> str:
        """The proxy's control URL from the step, else from the target."""
        if self._control:
            return self._control
        url = self.nspec.control
        if not url:
            target = self.ctx.target(self.nspec.target)
            found = getattr(target, "proxy_control_url", None)
            if callable(found):
                found = found()
            if not found:
                found = getattr(getattr(target, "spec", None), "proxy_control", None)
            if not isinstance(found, str) or not found:
                raise FaultError(
                    f"{self.spec.fault}: no proxy to drive; set 'control: http://HOST:PORT' on the step "
                    f"or use a target that runs a proxy (target {self.nspec.target!r} has none)"
                )
            url = found
        self._control = url
        return url

    def client(self) -> ProxyClient:
        from mlchaos.proxy.client import ProxyClient

        return ProxyClient(self.control_url(), token=os.environ.get(self.nspec.token_env) or None)

    def params(self) -> dict[str, Any]:
        """The kind's parameters, from the spec fields that are not common ones."""
        base = set(FaultSpec.model_fields) | _COMMON
        data = self.spec.model_dump(mode="json", exclude_none=True)
        return {k: v for k, v in data.items() if k not in base}

    def fault_json(self) -> dict[str, Any]:
        s = self.nspec
        body: dict[str, Any] = {"kind": self.kind, **self.params(), "probability": s.probability}
        match = s.match.model_dump(exclude_none=True, exclude_defaults=True)
        if match:
            body["match"] = match
        if s.direction:
            body["direction"] = s.direction
        if s.seed is not None:
            body["seed"] = s.seed
        if s.name:
            body["name"] = s.name
        return body

    async def _call(self, fn: Any, *args: Any) -> Any:
        from mlchaos.proxy.client import ProxyError

        try:
            return await asyncio.to_thread(fn, *args)
        except ProxyError as exc:
            raise FaultError(f"{self.spec.fault} via proxy {self._control}: {exc}") from None

    # -- the plugin contract ------------------------------------------------------------------
    async def preflight(self) -> dict[str, Any]:
        """The control API answers and accepts these parameters; nothing is injected."""
        c = self.client()
        health = await self._call(c.health)
        await self._call(c.validate, {**self.fault_json(), "ttl": max(self.ctx.lease_ttl, 0.001)})
        return {"proxy": self.control_url(), "listen": health.get("listen"), "mode": health.get("mode"),
                "upstream": health.get("upstream"), **self.fault_json()}

    async def intent(self, lease: Lease) -> dict[str, Any]:
        """Choose the proxy rule's id ahead (the proxy accepts a caller's id), so the undo record exists first.

        A runner killed while its POST is in flight may leave a rule added
        after the watchdog's DELETE (404, counted as done): the proxy's own
        lease (``ttl``) drops that one, the second clock.
        """
        self._planned_id = f"mlchaos-{self.ctx.run_id}-{lease.id}"[:64]
        return {"control": self.control_url(), "id": self._planned_id, "token_env": self.nspec.token_env}

    async def inject(self, lease: Lease) -> Applied:
        c = self.client()
        body = self.fault_json()
        planned_id = getattr(self, "_planned_id", None)
        if planned_id:
            body["id"] = planned_id
        self.fault_id = await self._call(c.add, body, lease.ttl)
        view = await self._call(c.stats, self.fault_id)
        return Applied(
            targets=[self.control_url()],
            planned={"probability": self.nspec.probability, **body},
            actual={"fault_id": self.fault_id, "kind": view.get("kind"), "probability": view.get("probability"),
                    "match": view.get("match"), "ttl": view.get("ttl")},
            undo={"control": self.control_url(), "id": self.fault_id, "token_env": self.nspec.token_env},
        )

    async def renew(self, lease: Lease) -> None:
        if self.fault_id is None:
            return
        c = self.client()
        await self._call(c.renew, self.fault_id, lease.ttl)

    async def remove(self) -> None:
        if self.fault_id is None:
            return
        c = self.client()
        await self._call(c.remove, self.fault_id)

    async def observed(self) -> dict[str, Any]:
        """``seen``/``affected`` as counted by the proxy (the report's proof that 10 % meant 10 %)."""
        if self.fault_id is None:
            return {}
        view = await self._call(self.client().stats, self.fault_id)
        seen, hit = int(view.get("seen", 0)), int(view.get("affected", 0))
        return {"seen": seen, "affected": hit, "ratio": (hit / seen) if seen else None,
                "planned_probability": self.nspec.probability}

    @classmethod
    def revert(cls, undo: dict[str, Any]) -> None:
        """Delete the fault from its proxy; 404 (already gone) and a dead proxy both count as done."""
        from mlchaos.proxy.client import ProxyClient, ProxyError

        token = os.environ.get(str(undo.get("token_env") or "MLCHAOS_PROXY_TOKEN")) or None
        try:
            ProxyClient(str(undo["control"]), token=token).remove(str(undo["id"]))
        except ProxyError as exc:
            if exc.status != 0:  # 0: the proxy process is gone, and its faults with it
                raise FaultError(f"could not remove proxy fault {undo.get('id')}: {exc}") from None


class Latency(ProxyFault):
    """Add latency (fixed, jitter or a distribution) to requests through a proxy."""

    Spec = LatencySpec
    kind = "latency"


class Bandwidth(ProxyFault):
    """Throttle bytes through a proxy."""

    Spec = BandwidthSpec
    kind = "bandwidth"


class Timeout(ProxyFault):
    """Swallow requests: they never get an answer."""

    Spec = TimeoutSpec
    kind = "timeout"


class Reset(ProxyFault):
    """Reset connections (RST)."""

    Spec = ResetSpec
    kind = "reset"


class Refuse(ProxyFault):
    """Make the dependency look down: connections reset before reaching it."""

    Spec = RefuseSpec
    kind = "refuse"


class SlowClose(ProxyFault):
    """Delay connection close."""

    Spec = SlowCloseSpec
    kind = "slow-close"


class HttpError(ProxyFault):
    """Answer with an HTTP error status (e.g. 503) instead of the dependency."""

    Spec = HttpErrorSpec
    kind = "http-error"


class Abort(ProxyFault):
    """Cut responses mid-body."""

    Spec = AbortSpec
    kind = "abort"


class JsonCorrupt(ProxyFault):
    """Corrupt named fields of JSON responses (null, NaN, wrong type, scaled, stale)."""

    Spec = JsonCorruptSpec
    kind = "json-corrupt"


class Generic(ProxyFault):
    """Any proxy fault kind by name, with its parameters under ``params``."""

    Spec = GenericSpec

    def fault_json(self) -> dict[str, Any]:
        s = self.spec
        assert isinstance(s, GenericSpec)
        body = super().fault_json()
        body.pop("params", None)
        return {**body, **s.params, "kind": s.kind}

    def params(self) -> dict[str, Any]:
        return {}
