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
(:class:`mlchaos.proxy.rules.Blast`) in :mod:`mlchaos.faults.network_spec`, and its
validation runs the kind's own cross-field rules.  ``mlchaos validate``, ``mlchaos schema`` and the proxy can
therefore not disagree about a value; adding a proxy fault is one module in
``proxy/faults/`` plus its entry in ``KINDS`` (and a line here and in the registry
for a step name of its own).

This module imports pydantic, the stdlib and the proxy's fault models (no I/O, no
event loop) at import time.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any, ClassVar

from mlchaos.faults.network_spec import (  # the step specs stay importable from here
    AbortSpec,
    BandwidthSpec,
    FeastResponseSpec,
    GenericSpec,
    HttpErrorSpec,
    JsonCorruptSpec,
    LatencySpec,
    NetworkSpec,
    RefuseSpec,
    ResetSpec,
    SlowCloseSpec,
    StreamCorruptSpec,
    StreamCutSpec,
    StreamDelaySpec,
    StreamStallSpec,
    TimeoutSpec,
)
from mlchaos.plugin import Applied, Context, Fault, FaultError, FaultSpec
from mlchaos.proxy.rules import Match

if TYPE_CHECKING:
    from mlchaos.contract.lease import Lease
    from mlchaos.proxy.client import ProxyClient

ProxyMatch = Match
"""The proxy's own matcher model (kept under its old name here)."""


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
