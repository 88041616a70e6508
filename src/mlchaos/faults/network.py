"""Network and HTTP faults, injected through an mlchaos fault proxy's control API.

Each plugin is a thin adapter: its ``Spec`` is the proxy fault's JSON with
units, and its methods map one to one onto control API calls.  The proxy holds
the fault under a lease (``ttl = lease.ttl``); if the runner dies, the proxy
drops the fault by itself when the lease lapses, and ``revert`` needs only
``{"control": url, "id": fault_id}``.

Registered names (``mlchaos.registry.BUILTIN``): ``latency``,
``bandwidth``, ``timeout``, ``reset``, ``refuse``, ``slow-close``,
``http-error``, ``abort``, ``json-corrupt``, ``feast-response``, ``stream-delay``, ``stream-stall``,
``stream-cut``, ``stream-corrupt``, and ``proxy`` (any kind by name,
parameters under ``params``).

Where is the proxy?  ``control:`` in the step, else the target's
``proxy_control_url`` (attribute or method) or its spec's ``proxy_control``
field.  A token, when the proxy requires one, is read from the environment
variable named by ``token_env`` (default ``MLCHAOS_PROXY_TOKEN``), so no
secret is written into the journal.

One schema per kind: each step's ``Spec`` is built from the proxy kind's own
``params_model`` (:mod:`mlchaos.proxy.faults`) and the proxy's blast-radius model
(:class:`mlchaos.proxy.rules.Blast`), and its validation runs the kind's own
cross-field rules.  ``mlchaos validate``, ``mlchaos schema`` and the proxy can
therefore not disagree about a value; adding a proxy fault is one module in
``proxy/faults/`` plus its entry in ``KINDS`` (and a line here and in the registry
for a step name of its own).

This module imports pydantic, the stdlib and the proxy's fault models (no I/O, no
event loop) at import time.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, ValidationError, ValidationInfo, create_model, field_validator, model_validator

from mlchaos.plugin import Applied, Context, Fault, FaultError, FaultSpec
from mlchaos.proxy.faults import KINDS
from mlchaos.proxy.faults import ProxyFault as ProxyKind
from mlchaos.proxy.faults.base import Params
from mlchaos.proxy.rules import Blast, Match, bad_values

if TYPE_CHECKING:
    from mlchaos.contract.lease import Lease
    from mlchaos.proxy.client import ProxyClient

ProxyMatch = Match
"""The proxy's own matcher model (kept under its old name here)."""


def _params_error(exc: ValidationError) -> ValueError:
    """The first error of a kind's parameter model as one message naming its field."""
    e = exc.errors()[0]
    where = ".".join(str(p) for p in e["loc"])
    msg = e["msg"].removeprefix("Value error, ")
    return ValueError(f"{where}: {msg}" if where else msg)


class NetworkSpec(Blast, FaultSpec):
    """Fields shared by every proxy-driven fault: where the proxy is, and the blast radius (the proxy's own)."""

    params_model: ClassVar[type[Params]] = Params
    """The proxy kind's parameter model; the step's other fields are the kind's parameters."""

    control: str | None = Field(default=None, description="Control API URL of the proxy, e.g. 'http://127.0.0.1:8474'.")
    token_env: str = Field("MLCHAOS_PROXY_TOKEN", description="Environment variable holding the bearer token.")
    direction: Literal["request", "response", "both"] | None = Field(
        None, description="Which path the fault acts on (default depends on the kind)."
    )

    @model_validator(mode="before")
    @classmethod
    def _representable(cls, data: Any) -> Any:
        """The proxy's own guard on what it is sent (huge or non-finite numbers, deep nesting)."""
        if isinstance(data, dict):
            sent = {k: v for k, v in data.items() if k in cls.params_model.model_fields or k in Blast.model_fields}
            bad = bad_values(sent, "")
            if bad:
                raise ValueError("; ".join(f"{e['field']}: {e['error']}" for e in bad))
        return data

    @model_validator(mode="after")
    def _kind_rules(self) -> NetworkSpec:
        """The kind's cross-field rules (e.g. latency's distribution needs a jitter), as the proxy applies them."""
        names = type(self).params_model.model_fields
        if names:
            try:
                type(self).params_model.model_validate({n: getattr(self, n) for n in names})
            except ValidationError as exc:
                raise _params_error(exc) from None
        return self


def _reuse(check: Any) -> Any:
    """A parameter model's field validator (bound to that model) as one of a spec's own."""
    with_info = len(inspect.signature(check).parameters) > 1

    def validator(cls: type[NetworkSpec], value: Any, info: ValidationInfo) -> Any:
        return check(value, info) if with_info else check(value)

    return classmethod(validator)


def spec_for(kind: type[ProxyKind], name: str, doc: str) -> type[NetworkSpec]:
    """The experiment-side spec of a proxy fault kind: :class:`NetworkSpec` plus the kind's parameters.

    Fields are the kind's own (type, units, bounds, defaults, descriptions); ``direction`` is narrowed
    to the directions the kind supports, so a wrong one is refused by ``mlchaos validate`` too.
    """
    fields: dict[str, Any] = {n: (f.annotation, f) for n, f in kind.params_model.model_fields.items()}
    directions = kind.directions
    fields["direction"] = (
        Literal[directions] | None,
        Field(None, description=f"Which path the fault acts on: {', '.join(directions)} (default {directions[0]})."),
    )
    # the kind's field validators too (e.g. CR/LF in http-error headers), so their errors point at the field's line
    validators = {
        f"_{vname}": field_validator(*dec.info.fields, mode=dec.info.mode)(_reuse(dec.func))
        for vname, dec in kind.params_model.__pydantic_decorators__.field_validators.items()
    }
    spec: type[NetworkSpec] = create_model(
        name, __base__=NetworkSpec, __doc__=doc, __validators__=validators, **fields
    )
    spec.params_model = kind.params_model
    return spec


LatencySpec = spec_for(KINDS["latency"], "LatencySpec", "Latency: fixed, jittered or drawn from a distribution.")
BandwidthSpec = spec_for(KINDS["bandwidth"], "BandwidthSpec", "Bandwidth: bytes per second in one direction.")
TimeoutSpec = spec_for(KINDS["timeout"], "TimeoutSpec", "Timeout: hold the request, never answer.")
ResetSpec = spec_for(KINDS["reset"], "ResetSpec", "Reset: the client sees an RST.")
RefuseSpec = spec_for(KINDS["refuse"], "RefuseSpec", "Refuse: connections reset before reaching the upstream.")
SlowCloseSpec = spec_for(KINDS["slow-close"], "SlowCloseSpec", "Slow close: the close reaches the client late.")
HttpErrorSpec = spec_for(KINDS["http-error"], "HttpErrorSpec", "HTTP error: answer locally with a status.")
AbortSpec = spec_for(KINDS["abort"], "AbortSpec", "Abort: cut the response mid-body.")
JsonCorruptSpec = spec_for(KINDS["json-corrupt"], "JsonCorruptSpec", "JSON corruption of named response fields.")
StreamDelaySpec = spec_for(KINDS["stream-delay"], "StreamDelaySpec", "Stream delay: first event, per event, rate cap.")
StreamStallSpec = spec_for(KINDS["stream-stall"], "StreamStallSpec", "Stream stall: nothing more after N events or T.")
StreamCutSpec = spec_for(KINDS["stream-cut"], "StreamCutSpec", "Stream cut: end after N events, without [DONE].")
StreamCorruptSpec = spec_for(KINDS["stream-corrupt"], "StreamCorruptSpec",
                             "Stream corruption: malformed, error, duplicated or dropped events.")
FeastResponseSpec = spec_for(KINDS["feast-response"], "FeastResponseSpec",
                             "Feast answers: named features stale, null, not found, old, or entities missing.")


class GenericSpec(NetworkSpec):
    kind: str = Field(description="Proxy fault kind, e.g. 'latency' (GET /kinds on the proxy lists them).")
    params: dict[str, Any] = Field(default_factory=dict, description="The kind's parameters.")

    @field_validator("params")
    @classmethod
    def _params(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """A kind this mlchaos knows gets its parameters checked by the proxy's own model now, at
        ``mlchaos validate``, rather than by the proxy at preflight (CR/LF in headers, a zero rate...)."""
        model = KINDS.get(str(info.data.get("kind")))
        if model is None:
            return v  # unknown here: the proxy's preflight check answers for it
        try:
            model.params_model.model_validate(v)
        except ValidationError as exc:
            raise _params_error(exc) from None
        except ArithmeticError as exc:
            raise ValueError(f"a parameter is out of range: {exc}") from None
        return v

    @model_validator(mode="after")
    def _direction(self) -> GenericSpec:
        model = KINDS.get(self.kind)
        if model is not None and self.direction is not None and self.direction not in model.directions:
            raise ValueError(f"{self.kind!r} supports direction {' or '.join(model.directions)}, not {self.direction!r}")
        return self


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


class FeastResponse(ProxyFault):
    """Rewrite named features of Feast ``/get-online-features`` answers (see proxy.faults.feast_response)."""

    Spec = FeastResponseSpec
    kind = "feast-response"


class StreamDelay(ProxyFault):
    """Delay a token stream's first event or every event, or cap its event rate."""

    Spec = StreamDelaySpec
    kind = "stream-delay"


class StreamStall(ProxyFault):
    """Stall token streams mid-generation: the connection stays open, nothing more comes."""

    Spec = StreamStallSpec
    kind = "stream-stall"


class StreamCut(ProxyFault):
    """Cut token streams after N events, abruptly or cleanly without [DONE]."""

    Spec = StreamCutSpec
    kind = "stream-cut"


class StreamCorrupt(ProxyFault):
    """Break chosen events of token streams (malformed JSON, an in-band error, duplicates, gaps)."""

    Spec = StreamCorruptSpec
    kind = "stream-corrupt"


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
