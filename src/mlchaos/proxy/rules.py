"""Active faults ("rules"): parsing the control API's JSON, blast-radius matching, leases, counters.

A rule is one fault instance with its blast radius (probability, matchers,
direction) and a lease.  ``FaultTable`` is the only place rules live in a
process; the data path asks it for a :class:`Plan` per HTTP request or per
TCP connection, so adding or removing a fault takes effect from the very next
request (no connection re-roll as in Toxiproxy).
"""

from __future__ import annotations

import fnmatch
import math
import random
import re
import secrets
import time
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from mlchaos.proxy import clock, jsonspan
from mlchaos.proxy.faults import KINDS, Plan, ProxyFault
from mlchaos.spec.types import Duration, Percent

if TYPE_CHECKING:
    from mlchaos.proxy.table import FaultTable

MAX_TTL = 24 * 3600.0
COMMON_KEYS = frozenset({"kind", "probability", "match", "direction", "ttl", "seed", "name", "id"})
MATCH_BODY = 64 * 1024
"""Bytes of a request body the proxy reads, at most, to find its JSON ``model`` (``match.model``).

Only while some rule matches on ``model``: the request is then held until its body is in or this many
bytes arrived, whichever is first.  Chat requests put ``model`` first or near it; a body longer than this
whose ``model`` comes later is not matched (the rule does not select it)."""
_MODEL_PATH = jsonspan.parse_path("model")


class RuleError(ValueError):
    """Bad fault JSON; ``errors`` is a list of ``{"field", "error"}`` for the 400 body."""

    def __init__(self, message: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or [{"field": "", "error": message}]


class TableFull(RuntimeError):
    """The table holds ``max_rules`` rules; the control API answers 429."""


def _one_or_many(v: Any) -> Any:
    return [v] if isinstance(v, str) else v


class Match(BaseModel):
    """Which requests a rule may hit (HTTP mode).  All given matchers must hold."""

    model_config = ConfigDict(extra="forbid")
    method: Annotated[list[str] | None, BeforeValidator(_one_or_many, json_schema_input_type=list[str] | str | None)] = (
        Field(default=None, description="HTTP method(s), e.g. 'GET' or ['GET', 'POST'].")
    )
    path: str | None = Field(default=None, description="Glob on the path without query, e.g. '/features/*'.")
    headers: dict[str, str] = Field(default_factory=dict, description="Header name -> glob on the value ('*' = present).")
    model: str | None = Field(
        default=None,
        description="Glob on the 'model' field of a JSON request body (OpenAI-style APIs), e.g. 'llama-*'. "
                    "The proxy reads up to the first 64 KiB of the body to find it.",
    )


def body_model(pieces: list[bytes]) -> str | None:
    """The top-level ``model`` string of a JSON request body (its first MATCH_BODY bytes), else None."""
    if not pieces:
        return None
    doc = b"".join(pieces)[:MATCH_BODY]
    try:
        span = jsonspan.first(doc, _MODEL_PATH)
        if span is None:
            return None
        value = orjson.loads(doc[span[0] : span[1]])
    except (jsonspan.JsonSpanError, orjson.JSONDecodeError, ValueError, IndexError):
        return None
    return value if isinstance(value, str) else None


class Blast(BaseModel):
    """A fault's blast radius: which share of which requests it hits, on which path.

    The one declaration of these fields: the proxy's fault JSON (:class:`Common`) and the
    experiment side's proxy faults (``mlchaos.faults.network.NetworkSpec``) both inherit it,
    so ``mlchaos validate`` and the proxy accept the same values.
    """

    model_config = ConfigDict(extra="forbid")
    probability: Percent = Field(1.0, description="Share of requests (HTTP) or connections (TCP) hit, e.g. '10%'.")
    match: Match = Field(default_factory=Match, description="Only requests matching these are eligible.")
    direction: str | None = Field(None, description="Which path the fault acts on (default depends on the kind).")
    seed: int | None = Field(default=None, description="Seed of the proxy's coin for this fault (reproducible runs).")

    @field_validator("probability")
    @classmethod
    def _fraction(cls, v: float) -> float:
        if not 0.0 <= v <= 1.0:
            raise ValueError("probability must be within [0, 1] (or 0%..100%)")
        return v


class Common(Blast):
    """Fields every fault JSON may carry besides its kind's parameters."""

    kind: str
    ttl: Duration = 60.0
    name: str | None = None
    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, v: float) -> float:
        if not 0.0 < v <= MAX_TTL:
            raise ValueError(f"ttl must be > 0 and at most {MAX_TTL:.0f}s")
        return v


def _errors(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    return [
        {"field": prefix + ".".join(str(p) for p in e["loc"]), "error": e["msg"].removeprefix("Value error, ")}
        for e in exc.errors()
    ]


class Rule:
    """One active fault: the fault object, its blast radius, its lease and its counters."""

    def __init__(self, common: Common, fault: ProxyFault, spec: dict[str, Any]) -> None:
        self.id = common.id or secrets.token_hex(6)
        self.kind = common.kind
        self.name = common.name
        self.fault = fault
        self.probability = common.probability
        self.ttl = common.ttl
        self.expires_at = clock.now() + common.ttl
        self.created = time.time()
        self.spec = {**spec, "id": self.id}
        self.rng = random.Random(common.seed)
        # Blast radius by countdown: the number of eligible requests up to and including the next hit
        # is drawn from the geometric law, which is exactly the law of a coin flipped per request;
        # the data path then pays a subtraction per request instead of a random draw.
        self._log_miss = math.log1p(-common.probability) if 0.0 < common.probability < 1.0 else None
        self._seen = 0
        self.affected = 0
        self.table: FaultTable | None = None
        """Set while the table counts this rule's eligible requests for it (rules without matchers)."""
        self.mark = 0
        """The table's request count when it last folded its count into ``_seen``."""
        self.due = 0
        """The table's request number of this rule's next hit (rules without matchers)."""
        m = common.match
        self.methods = {x.upper().encode() for x in m.method} if m.method else None
        self.path = re.compile(fnmatch.translate(m.path).encode()) if m.path else None
        self.headers = [
            (k.lower().encode(), re.compile(fnmatch.translate(v).encode(), re.I)) for k, v in m.headers.items()
        ]
        self.always = self.probability >= 1.0
        self.left = self.gap()
        self.model = re.compile(fnmatch.translate(m.model)) if m.model is not None else None
        self.matchers = bool(self.methods or self.path or self.headers or self.model)
        self.solo = self.fresh_plan() if fault.fixed_effect else None
        """The plan of a request only this rule hits, built once (see ProxyFault.fixed_effect)."""

    @property
    def seen(self) -> int:
        """Eligible requests so far.  Without matchers every request the table decides is eligible,
        so the table counts them once for all such rules instead of once per rule and request."""
        table = self.table
        return self._seen + (table.count - self.mark if table is not None else 0)

    @seen.setter
    def seen(self, value: int) -> None:  # the control plane adds its workers' counts
        self._seen += value - self.seen

    def gap(self) -> int:
        """Eligible requests until this rule's next hit, counting the hit (1 = the next one)."""
        if self.always:
            return 1
        if self._log_miss is None:  # probability 0: never
            return 1 << 62
        return 1 + int(math.log(1.0 - self.rng.random()) / self._log_miss)

    def fresh_plan(self) -> Plan:
        """A new plan holding this rule's effect."""
        plan = Plan()
        self.fault.apply(plan, self.rng)
        plan.rules.append(self)
        return plan

    def selects(
        self, method: bytes, url: bytes, headers: list[tuple[bytes, bytes]], model: str | None = None
    ) -> bool:
        """True when the request is inside this rule's blast radius (before its countdown)."""
        if self.model is not None and (model is None or not self.model.match(model)):
            return False
        if self.methods is not None and method not in self.methods:
            return False
        if self.path is not None and not self.path.match(url.split(b"?", 1)[0]):
            return False
        for name, pattern in self.headers:
            for k, v in headers:
                if k.lower() == name and pattern.match(v):
                    break
            else:
                return False
        return True

    def view(self) -> dict[str, Any]:
        """The rule as the control API shows it."""
        remaining = self.expires_at - clock.now()
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "direction": self.fault.direction,
            "probability": self.probability,
            "params": self.fault.describe(),
            "match": self.spec.get("match") or {},
            "ttl": self.ttl,
            "expires_in": round(max(0.0, remaining), 3),
            "expires_at": time.time() + remaining,
            "created": self.created,
            "seen": self.seen,
            "affected": self.affected,
        }


MAX_DEPTH = 8
MAX_DIGITS = 20
_NUMERIC = re.compile(r"\s*[-+]?(\d[\d_]*\.?\d*|\.\d+)([eE][-+]?\d+)?\s*[A-Za-z%/]*\s*")


def bad_values(value: Any, path: str, depth: int = 0) -> list[dict[str, str]]:
    """Numbers no fault field can mean (huge, non-finite) and nesting no fault has, as field errors.

    Checked before the models see them: the unit parsers turn a 401-digit integer or "1e999" into an
    OverflowError, which is not a validation error, and a fault's JSON is never more than a few levels
    deep (``match.headers``).
    """
    here = path or "(fault)"
    if depth > MAX_DEPTH:
        return [{"field": here, "error": f"nested more than {MAX_DEPTH} levels deep; no fault field is"}]
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        if len(str(abs(value))) > MAX_DIGITS:
            return [{"field": here, "error": f"number has more than {MAX_DIGITS} digits"}]
        return []
    if isinstance(value, float):
        return [] if math.isfinite(value) else [{"field": here, "error": f"number must be finite, got {value}"}]
    if isinstance(value, str):
        if depth == 1 and _NUMERIC.fullmatch(value):  # a top-level parameter (delay, rate, ttl...), not a glob
            try:
                num = float(re.sub(r"[^0-9eE.+-]", "", value))
            except ValueError:
                return []
            if not math.isfinite(num):
                return [{"field": here, "error": f"number out of range: {value[:40]!r}"}]
        return []
    if isinstance(value, dict):
        return [e for k, v in value.items() for e in bad_values(v, f"{path}.{k}" if path else str(k), depth + 1)]
    if isinstance(value, list):
        return [e for i, v in enumerate(value) for e in bad_values(v, f"{path}.{i}", depth + 1)]
    return []


def parse_rule(data: Any, mode: str) -> Rule:
    """Validate fault JSON for a proxy in ``mode`` ('tcp' or 'http'); raise :class:`RuleError`."""
    if not isinstance(data, dict):
        raise RuleError("a fault must be a JSON object like {\"kind\": \"latency\", \"delay\": \"200ms\"}")
    bad = bad_values(data, "")
    if bad:
        raise RuleError("; ".join(f"{e['field']}: {e['error']}" for e in bad), bad)
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise RuleError(
            f"unknown fault kind {kind!r}; known kinds: {', '.join(sorted(KINDS))}",
            [{"field": "kind", "error": f"unknown fault kind {kind!r}; known: {', '.join(sorted(KINDS))}"}],
        )
    cls = KINDS[kind]
    common_part = {k: v for k, v in data.items() if k in COMMON_KEYS}
    params_part = {k: v for k, v in data.items() if k not in COMMON_KEYS}
    errors: list[dict[str, str]] = []
    common: Common | None = None
    params = None
    try:
        common = Common.model_validate(common_part)
    except ValidationError as exc:
        errors += _errors(exc)
    except (ArithmeticError, RecursionError) as exc:  # a value the unit parsers cannot represent
        errors.append({"field": "", "error": f"a value is out of range: {exc}"})
    try:
        params = cls.params_model.model_validate(params_part)
    except ValidationError as exc:
        errors += _errors(exc)
    except (ArithmeticError, RecursionError) as exc:
        errors.append({"field": "", "error": f"a parameter is out of range: {exc}"})
    if common is not None:
        if cls.http_only and mode != "http":
            errors.append({"field": "kind", "error": f"{kind!r} needs an HTTP-mode proxy (this one is {mode})"})
        if mode != "http" and (common.match.method or common.match.path or common.match.headers
                               or common.match.model is not None):
            errors.append({"field": "match", "error": "method/path/header/model matchers need an HTTP-mode proxy"})
        if common.direction is not None and common.direction not in cls.directions:
            errors.append({
                "field": "direction",
                "error": f"{kind!r} supports direction {' or '.join(cls.directions)}, not {common.direction!r}",
            })
    if errors or common is None or params is None:
        raise RuleError("; ".join(f"{e['field']}: {e['error']}" if e["field"] else e["error"] for e in errors), errors)
    fault = cls(params, common.direction or cls.directions[0])  # type: ignore[arg-type]
    return Rule(common, fault, dict(data))
