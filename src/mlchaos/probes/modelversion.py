"""The model version a server reports about itself, compared with the one expected or the baseline's.

Why next to the canary (:mod:`mlchaos.probes.fingerprint`): where a server
does report what it loaded — the Open Inference Protocol's model metadata
``GET /v2/models/{name}`` (``versions``, ``platform``), KServe v1's
``GET /v1/models/{name}``, any JSON endpoint of your own — reading it is
cheaper than a canary and names the version in the report.  It is only as
true as the server's report: a server that says "v3" while serving stale
weights fools it, which is what the canary is for.

MLflow's scoring server has no model metadata endpoint: its ``GET /version``
(what ``protocol: mlflow`` reads) is the *MLflow* version the server runs,
useful to catch a rebuilt image, not a swapped model.

The value is the string read (several matches of a wildcard path are joined
with ``,``); ``expect: "3"`` is ``equals: "3"``; ``stat: changed`` is 1 when
it differs from the value of the first baseline measurement (default
tolerance ``max: 0``).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from mlchaos import jsonpath
from mlchaos.plugin import Measurement, Probe, ProbeError, ProbeSpec
from mlchaos.probes import protocols
from mlchaos.probes.fingerprint import request
from mlchaos.spec.types import Duration


class ModelVersionSpec(ProbeSpec):
    probe: Literal["model-version"] = "model-version"
    url: str | None = Field(None, description="Metadata endpoint: an absolute URL or a path on the target. Default "
                                              "from protocol: /v2/models/MODEL (oip), /v1/models/MODEL (kserve-v1), "
                                              "/version (mlflow: the MLflow version, not the model's).")
    protocol: protocols.Protocol | None = Field(None, description="Fills url and field for a serving protocol.")
    model: str | None = Field(None, description="Model name in KServe / OIP URLs.")
    field: str | None = Field(None, description="JSON path to the version, e.g. 'versions[*]', 'platform', "
                                                "'model.version'. Default: the protocol's; none: the body as text.")
    expect: str | int | float | None = Field(None, description="The version expected (compared as a string); "
                                                               "the same as equals.")
    stat: Literal["value", "changed"] = Field(
        "value", description="value: the version string; changed: 1 when it differs from the baseline's, else 0.")
    method: Literal["GET", "POST"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: Duration = Field(2.0, description="Request timeout; a timeout is a failed observation.")

    @model_validator(mode="after")
    def _check(self) -> ModelVersionSpec:
        default = protocols.default_metadata(self.protocol, self.model)
        if self.url is None:
            if default is None:
                raise ValueError("give 'url'" + (f" (protocol {self.protocol} needs 'model' to build it)"
                                                 if self.protocol else ""))
            self.url = default[0]
            if self.field is None:
                self.field = default[1]
        if self.field is not None:
            try:
                jsonpath.compile(self.field)
            except jsonpath.JsonPathError as exc:
                raise ValueError(f"field: {exc}") from None
        if self.expect is not None:
            if self.stat == "changed":
                raise ValueError("'expect' compares with a given version; stat: changed compares with the baseline's")
            if self.equals is not None and str(self.equals) != str(self.expect):
                raise ValueError("give either 'expect' or 'equals'")
            self.equals = str(self.expect)
        elif self.stat == "changed" and not any(
                getattr(self, k) is not None for k in ("max", "min", "between", "equals", "above", "below")):
            self.max = 0.0
        return self


def as_text(values: list[Any]) -> str:
    return ",".join(v if isinstance(v, str) else _json(v) for v in values)


def _json(v: Any) -> str:
    import json

    return json.dumps(v, sort_keys=True)


class ModelVersionProbe(Probe):
    """Reads the version a metadata endpoint reports; compares with ``expect`` or the baseline's."""

    Spec = ModelVersionSpec
    spec: ModelVersionSpec
    unit: ClassVar[str] = ""

    def __init__(self, spec: Any, ctx: Any) -> None:
        super().__init__(spec, ctx)
        self._reference: str | None = None

    async def measure(self) -> Measurement:
        s = self.spec
        assert s.url is not None
        r = await request(self, s.method, s.url)
        if s.field is None:
            value = r.text.strip()
        else:
            try:
                doc = r.json()
            except ValueError:
                raise ProbeError(f"{s.url} did not answer JSON: {r.text[:200]!r}") from None
            found = jsonpath.compile(s.field).find_all(doc)
            if not found:
                raise ProbeError(f"{s.url}: JSON path {s.field!r} not found in {r.text[:200]!r}")
            value = as_text(found)
        detail: dict[str, Any] = {"url": s.url, "version": value}
        if s.stat == "value":
            return Measurement(value, detail)
        if self._reference is None:
            if self.ctx.phase != "baseline":
                return Measurement(None, detail, insufficient="no baseline version to compare against")
            self._reference = value
        return Measurement.share(int(value != self._reference), 1, {**detail, "baseline": self._reference})
