"""The experiment-side schemas of the proxy's fault kinds: one per kind, built from the kind's own model.

Each step's ``Spec`` is :class:`NetworkSpec` (where the proxy is, the proxy's own blast-radius model)
plus the kind's ``params_model`` fields and field validators, and its validation runs the kind's
cross-field rules.  ``mlchaos validate``, ``mlchaos schema`` and the proxy therefore cannot disagree
about a value (tests/proxy/test_schema_agreement.py walks every kind).  Kept apart from
:mod:`mlchaos.faults.network`, which drives the proxy's control API with them.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationError, ValidationInfo, create_model, field_validator, model_validator

from mlchaos.plugin import FaultSpec
from mlchaos.proxy.faults import KINDS
from mlchaos.proxy.faults import ProxyFault as ProxyKind
from mlchaos.proxy.faults.base import Params
from mlchaos.proxy.rules import Blast, bad_values


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
