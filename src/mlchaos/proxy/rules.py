"""Active faults ("rules"): parsing the control API's JSON, blast-radius matching, leases, counters.

A rule is one fault instance with its blast radius (probability, matchers,
direction) and a lease.  ``FaultTable`` is the only place rules live in a
process; the data path asks it for a :class:`Plan` per HTTP request or per
TCP connection, so adding or removing a fault takes effect from the very next
request (no connection re-roll as in Toxiproxy).
"""

from __future__ import annotations

import collections
import fnmatch
import random
import re
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mlchaos.proxy import clock
from mlchaos.proxy.faults import KINDS, Plan, ProxyFault
from mlchaos.spec.types import Duration, Percent

MAX_TTL = 24 * 3600.0
COMMON_KEYS = frozenset({"kind", "probability", "match", "direction", "ttl", "seed", "name", "id"})


class RuleError(ValueError):
    """Bad fault JSON; ``errors`` is a list of ``{"field", "error"}`` for the 400 body."""

    def __init__(self, message: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or [{"field": "", "error": message}]


class Match(BaseModel):
    """Which requests a rule may hit (HTTP mode).  All given matchers must hold."""

    model_config = ConfigDict(extra="forbid")
    method: list[str] | None = Field(default=None, description="HTTP methods, e.g. ['GET'].")
    path: str | None = Field(default=None, description="Glob on the path without query, e.g. '/features/*'.")
    headers: dict[str, str] = Field(default_factory=dict, description="Header name -> glob on the value ('*' = present).")

    @field_validator("method", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class Common(BaseModel):
    """Fields every fault JSON may carry besides its kind's parameters."""

    model_config = ConfigDict(extra="forbid")
    kind: str
    probability: Percent = 1.0
    match: Match = Field(default_factory=Match)
    direction: str | None = None
    ttl: Duration = 60.0
    seed: int | None = None
    name: str | None = None
    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")

    @field_validator("probability")
    @classmethod
    def _fraction(cls, v: float) -> float:
        if not 0.0 <= v <= 1.0:
            raise ValueError("probability must be within [0, 1] (or 0%..100%)")
        return v

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
        self.coin = self.rng.random
        self.seen = 0
        self.affected = 0
        m = common.match
        self.methods = {x.upper().encode() for x in m.method} if m.method else None
        self.path = re.compile(fnmatch.translate(m.path).encode()) if m.path else None
        self.headers = [
            (k.lower().encode(), re.compile(fnmatch.translate(v).encode(), re.I)) for k, v in m.headers.items()
        ]
        self.always = self.probability >= 1.0
        self.matchers = bool(self.methods or self.path or self.headers)
        self.solo = self.fresh_plan() if fault.fixed_effect else None
        """The plan of a request only this rule hits, built once (see ProxyFault.fixed_effect)."""

    def fresh_plan(self) -> Plan:
        """A new plan holding this rule's effect."""
        plan = Plan()
        self.fault.apply(plan, self.rng)
        plan.rules.append(self)
        return plan

    def selects(self, method: bytes, url: bytes, headers: list[tuple[bytes, bytes]]) -> bool:
        """True when the request is inside this rule's blast radius (before the coin)."""
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

    def hit(self) -> bool:
        """Count one eligible request or connection and flip this rule's coin."""
        self.seen += 1
        if self.always or self.rng.random() < self.probability:
            self.affected += 1
            return True
        return False

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


def parse_rule(data: Any, mode: str) -> Rule:
    """Validate fault JSON for a proxy in ``mode`` ('tcp' or 'http'); raise :class:`RuleError`."""
    if not isinstance(data, dict):
        raise RuleError("a fault must be a JSON object like {\"kind\": \"latency\", \"delay\": \"200ms\"}")
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
    try:
        params = cls.params_model.model_validate(params_part)
    except ValidationError as exc:
        errors += _errors(exc)
    if common is not None:
        if cls.http_only and mode != "http":
            errors.append({"field": "kind", "error": f"{kind!r} needs an HTTP-mode proxy (this one is {mode})"})
        if mode != "http" and (common.match.method or common.match.path or common.match.headers):
            errors.append({"field": "match", "error": "method/path/header matchers need an HTTP-mode proxy"})
        if common.direction is not None and common.direction not in cls.directions:
            errors.append({
                "field": "direction",
                "error": f"{kind!r} supports direction {' or '.join(cls.directions)}, not {common.direction!r}",
            })
    if errors or common is None or params is None:
        raise RuleError("; ".join(f"{e['field']}: {e['error']}" if e["field"] else e["error"] for e in errors), errors)
    fault = cls(params, common.direction or cls.directions[0])  # type: ignore[arg-type]
    return Rule(common, fault, dict(data))


class FaultTable:
    """The rules of one process, with lease expiry and the per-request decision.

    ``on_change`` callbacks run after every add/remove/renew/expiry (the
    control plane uses it to broadcast the table to worker processes).
    """

    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self.by_id: dict[str, Rule] = {}
        self.retired: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        self.on_change: list[Callable[[], None]] = []
        self._timers: dict[str, clock.Timer] = {}
        self.version = 0
        self.matchers = False
        """True while some rule matches on method, path or headers (the HTTP relay path then steps aside)."""

    # -- lifecycle --------------------------------------------------------------------------
    def add(self, rule: Rule, schedule: bool = True) -> None:
        if rule.id in self.by_id:
            self.remove(rule.id, reason="replaced")
        self.by_id[rule.id] = rule
        self.rules = [*self.rules, rule]  # copy-on-write: a data-path iteration never sees a half change
        if schedule:
            self._schedule(rule)
        self._changed()

    def remove(self, rule_id: str, reason: str = "removed") -> dict[str, Any] | None:
        rule = self.by_id.pop(rule_id, None)
        timer = self._timers.pop(rule_id, None)
        if timer is not None:
            timer.cancel()
        if rule is None:
            return None
        self.rules = [r for r in self.rules if r is not rule]
        view = {**rule.view(), "state": reason, "expires_in": 0.0}
        self.retired[rule_id] = view
        while len(self.retired) > 1000:
            self.retired.popitem(last=False)
        self._changed()
        return view

    def renew(self, rule_id: str, ttl: float | None = None) -> Rule | None:
        rule = self.by_id.get(rule_id)
        if rule is None:
            return None
        if ttl is not None:
            rule.ttl = ttl
        rule.expires_at = clock.now() + rule.ttl
        self._schedule(rule)
        self._changed()
        return rule

    def clear(self) -> int:
        ids = [r.id for r in self.rules]
        for rid in ids:
            self.remove(rid)
        return len(ids)

    def _schedule(self, rule: Rule) -> None:
        import asyncio

        old = self._timers.pop(rule.id, None)
        if old is not None:
            old.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timers[rule.id] = clock.at(loop, rule.expires_at, self._expire, rule.id)

    def _expire(self, rule_id: str) -> None:
        self._timers.pop(rule_id, None)
        rule = self.by_id.get(rule_id)
        if rule is not None and rule.expires_at <= clock.now():
            self.remove(rule_id, reason="expired")

    def _changed(self) -> None:
        self.matchers = any(r.matchers for r in self.rules)
        self.version += 1
        for cb in self.on_change:
            cb()

    def replace_all(self, rules: Iterable[Rule]) -> None:
        """Install a broadcast table (worker processes); keep counters of rules that stay."""
        new: list[Rule] = []
        for r in rules:
            old = self.by_id.get(r.id)
            if old is not None and old.spec == r.spec:
                old.expires_at = r.expires_at
                new.append(old)
            else:
                new.append(r)
        self.by_id = {r.id: r for r in new}
        self.rules = new
        self.matchers = any(r.matchers for r in new)
        self.version += 1

    # -- the decision -----------------------------------------------------------------------
    def plan_http(self, method: bytes, url: bytes, headers: list[tuple[bytes, bytes]]) -> Plan | None:
        """Decide one HTTP request: None means pass-through untouched.

        Runs for every request while any rule is active, so :meth:`Rule.hit` is inlined here
        (a method call per rule and request was a tenth of the proxy's Python time at 10 %).
        """
        first: Rule | None = None
        plan: Plan | None = None
        t = clock.now()
        for rule in self.rules:
            if rule.expires_at <= t:
                continue
            if rule.matchers and not rule.selects(method, url, headers):
                continue
            rule.seen += 1
            if rule.always or rule.coin() < rule.probability:
                rule.affected += 1
                if first is None:
                    first = rule  # usually the only hit: its shared plan, or one built below
                    continue
                if plan is None:
                    plan = first.fresh_plan()
                rule.fault.apply(plan, rule.rng)
                plan.rules.append(rule)
        if plan is not None or first is None:
            return plan
        return first.solo or first.fresh_plan()

    def plan_tcp(self) -> Plan | None:
        """Decide one TCP connection: None means pass-through untouched."""
        return self.plan_http(b"", b"", [])
