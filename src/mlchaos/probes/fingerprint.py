"""Which model a server really serves, without its help: a fixed canary batch and the answers it got at baseline.

Why: a model fault on a serving stack (``model-swap``, a stale or rolled-back
model, a swap whose restart never happened, or a restart after which the old
model stayed in memory) is invisible to latency and error rate, and most
servers do not report which weights they loaded.  The same input must get the
same answers from the same model, so this probe POSTs one fixed batch, keeps
the answers of its first baseline measurement, and compares every later one:

* ``stat: changed`` — the share of rows whose answer differs from the
  baseline's (numbers within ``atol`` are equal), e.g. ``max: 0``;
* ``stat: equal`` — 1 when the fingerprint (a hash of the answers rounded to
  ``decimals``) is the baseline's, else 0, e.g. ``equals: 1``.

The batch is a body given inline or in a JSON file, or rows (``rows:`` /
``rows_file:`` JSON or CSV) wrapped by ``protocol:`` in the envelope the
server expects (MLflow ``dataframe_split``/``instances``, KServe v1
``instances``, Open Inference Protocol ``inputs``; see
:mod:`mlchaos.probes.protocols`).  A model that answers the same batch
differently from one call to the next (sampling, dropout at inference) makes
the baseline itself differ: the run is ``not-run``, which is the truth — a
canary cannot identify such a model; raise ``atol`` or pick ``stat: changed``
with a tolerance.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from mlchaos import jsonpath
from mlchaos.plugin import Measurement, Probe, ProbeError, ProbeSpec, TargetError
from mlchaos.probes import protocols
from mlchaos.spec.types import Duration


class FingerprintSpec(ProbeSpec):
    probe: Literal["model-fingerprint"] = "model-fingerprint"
    url: str | None = Field(None, description="Where the batch is POSTed: an absolute URL or a path on the target. "
                                              "Default from protocol: /invocations (mlflow), "
                                              "/v1/models/MODEL:predict (kserve-v1), /v2/models/MODEL/infer (oip).")
    protocol: protocols.Protocol | None = Field(None, description=protocols.PROTOCOL_HELP
                                                + " It also wraps 'rows' in the protocol's request envelope.")
    model: str | None = Field(None, description="Model name in KServe / OIP URLs.")
    body: Any = Field(None, description="The canary request body, sent as is (JSON).")
    body_file: str | None = Field(None, description="A JSON file holding the canary request body.")
    rows: list[Any] | None = Field(None, min_length=1, description="Canary rows (lists of feature values, or "
                                                                    "objects); 'protocol' builds the envelope.")
    rows_file: str | None = Field(None, description="Canary rows from a file: JSON (a list of rows) or CSV (a "
                                                    "header line gives the columns).")
    columns: list[str] | None = Field(None, description="Column names of list rows (MLflow dataframe_split; "
                                                        "one OIP input per column).")
    input: str = Field("input-0", description="protocol: oip, rows without columns: the input tensor's name.")
    output: str | None = Field(None, description="protocol: oip: the output tensor compared (default: the first).")
    field: str | None = Field(None, description="JSON path to the rows of the answer (default: the protocol's, "
                                                "else the whole answer as one row).")
    stat: Literal["changed", "equal"] = Field(
        "changed", description="changed: share of rows whose answer differs from baseline's; equal: 1 when the "
                               "fingerprint (hash of the rounded answers) equals baseline's, else 0.")
    atol: float = Field(0.0, ge=0, description="stat: changed: numbers this close to the baseline's are equal.")
    decimals: int = Field(6, ge=0, le=15, description="stat: equal: answers are rounded to this many decimals "
                                                      "before hashing.")
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: Duration = Field(5.0, description="Request timeout; a timeout is a failed observation.")

    @model_validator(mode="after")
    def _check(self) -> FingerprintSpec:
        given = [k for k in ("body", "body_file", "rows", "rows_file") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give the canary batch once: one of body, body_file, rows, rows_file"
                             + (f" (got {', '.join(given)})" if given else ""))
        if given[0] in ("rows", "rows_file") and self.protocol is None:
            raise ValueError(f"'{given[0]}' needs a protocol (mlflow, kserve-v1, oip) to build the request envelope; "
                             "or give the whole body with 'body'")
        if self.output is not None and not protocols.is_oip(self.protocol):
            raise ValueError("'output' names an Open Inference Protocol output: it needs protocol: oip")
        if self.url is None:
            self.url = protocols.default_infer_path(self.protocol, self.model)
            if self.url is None:
                raise ValueError("give 'url'" + (f" (protocol {self.protocol} needs 'model' to build it)"
                                                 if self.protocol else ""))
        if self.field is None:
            self.field = protocols.default_field(self.protocol, self.output)
        if self.field is not None:
            try:
                jsonpath.compile(self.field)
            except jsonpath.JsonPathError as exc:
                raise ValueError(f"field: {exc}") from None
        return self


def read_rows(path: str) -> tuple[list[Any], list[str] | None]:
    """Rows from a JSON list or a CSV with a header (numbers parsed); ProbeError naming the file otherwise."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProbeError(f"cannot read the canary rows {path}: {exc}") from None
    if p.suffix.lower() == ".csv":
        reader = csv.reader(text.splitlines())
        header = next(reader, None)
        data = [[_number(c) for c in r] for r in reader if r]
        if not header or not data:
            raise ProbeError(f"{path}: a CSV of canary rows needs a header line and at least one row")
        return data, header
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ProbeError(f"{path}: not JSON: {exc}") from None
    if not isinstance(doc, list) or not doc:
        raise ProbeError(f"{path}: canary rows are a non-empty JSON list")
    return doc, None


def _number(cell: str) -> Any:
    for kind in (int, float):
        try:
            return kind(cell)
        except ValueError:
            pass
    return cell


def canonical(value: Any, decimals: int) -> Any:
    """The answer as a hashable JSON shape: floats rounded (-0.0 is 0.0, NaN a string), keys sorted by dumps."""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return round(value, decimals) + 0.0
    if isinstance(value, list):
        return [canonical(v, decimals) for v in value]
    if isinstance(value, dict):
        return {str(k): canonical(v, decimals) for k, v in value.items()}
    return value


def fingerprint(rows: list[Any], decimals: int) -> str:
    blob = json.dumps(canonical(rows, decimals), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def differ(a: Any, b: Any, atol: float) -> bool:
    """Whether two answers differ: numbers beyond ``atol``, lists element by element, objects key by key."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is not b
    if isinstance(a, int | float) and isinstance(b, int | float):
        fa, fb = float(a), float(b)
        if math.isnan(fa) or math.isnan(fb):
            return not (math.isnan(fa) and math.isnan(fb))
        return abs(fa - fb) > atol
    if isinstance(a, list) and isinstance(b, list):
        return len(a) != len(b) or any(differ(x, y, atol) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() != b.keys() or any(differ(a[k], b[k], atol) for k in a)
    return bool(a != b)


async def request(probe: Probe, method: str, url: str, body: Any = None) -> Any:
    """One request of ``probe`` to ``url`` (absolute, or a path on its target): the httpx response.

    Refused, timed out or an error status is a ProbeError (a failed observation, never a pass).
    """
    import httpx

    spec: Any = probe.spec
    if not url.startswith(("http://", "https://")):
        try:
            url = probe.ctx.target(spec.target).url(url)
        except TargetError as exc:
            raise ProbeError(f"cannot resolve {url!r}: {exc}") from None
    try:
        async with httpx.AsyncClient(timeout=spec.timeout) as client:
            r = await client.request(method, url, headers=spec.headers, json=body)
    except httpx.TimeoutException:
        raise ProbeError(f"{method} {url} timed out after {spec.timeout:g}s") from None
    except httpx.HTTPError as exc:
        raise ProbeError(f"{method} {url}: {type(exc).__name__}: {exc}") from None
    if r.status_code >= 400:
        raise ProbeError(f"{method} {url} answered {r.status_code}: {r.text[:200]}")
    return r


class FingerprintProbe(Probe):
    """Sends a fixed canary batch and compares the answers with those of the first baseline measurement."""

    Spec = FingerprintSpec
    spec: FingerprintSpec
    unit: ClassVar[str] = ""

    def __init__(self, spec: Any, ctx: Any) -> None:
        super().__init__(spec, ctx)
        self._body: Any = None
        self._reference: list[Any] | None = None

    def _request_body(self) -> Any:
        s = self.spec
        if self._body is not None:
            return self._body
        if s.body is not None:
            self._body = s.body
        elif s.body_file is not None:
            try:
                self._body = json.loads(Path(s.body_file).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ProbeError(f"cannot read the canary body {s.body_file}: {exc}") from None
        else:
            batch, header = (s.rows, None) if s.rows is not None else read_rows(s.rows_file or "")
            assert s.protocol is not None and batch is not None
            self._body = protocols.envelope(s.protocol, batch, s.columns or header, s.input)
        return self._body

    async def measure(self) -> Measurement:
        s = self.spec
        assert s.url is not None
        r = await request(self, "POST", s.url, self._request_body())
        try:
            doc = r.json()
        except ValueError:
            try:  # NaN / Infinity: Python's reader takes them; an answer of NaNs is an answer
                doc = json.loads(r.text)
            except ValueError:
                raise ProbeError(f"{s.url} did not answer JSON: {r.text[:200]!r}") from None
        if s.field is None:
            rows = [doc]
        else:
            try:
                rows = protocols.rows(doc, jsonpath.compile(s.field))
            except ValueError as exc:
                raise ProbeError(f"{s.field!r}: {exc}") from None
        mine = fingerprint(rows, s.decimals)
        if self._reference is None:
            if self.ctx.phase != "baseline":
                return Measurement(None, {"fingerprint": mine, "rows": len(rows)},
                                   insufficient="no baseline answers to compare against (the canary records "
                                                "them during the baseline phase)")
            self._reference = rows
            self.ctx.log("canary-recorded", probe=s.name or s.probe, fingerprint=mine, rows=len(rows))
        ref = self._reference
        base = fingerprint(ref, s.decimals)
        detail: dict[str, Any] = {"stat": s.stat, "fingerprint": mine, "baseline": base, "rows": len(rows)}
        if s.stat == "equal":
            return Measurement(int(mine == base), detail, samples=len(rows))
        if len(ref) != len(rows):
            return Measurement.share(len(rows) or 1, len(rows) or 1, {**detail, "baseline_rows": len(ref)})
        changed = sum(differ(a, b, s.atol) for a, b in zip(ref, rows, strict=True))
        return Measurement.share(changed, len(rows), {**detail, "changed_rows": changed})
