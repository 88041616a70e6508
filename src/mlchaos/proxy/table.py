"""The rules of one proxy process: the table the data path asks for a plan, leases, counters.

Split from :mod:`mlchaos.proxy.rules` (what a rule *is*: its models, parsing and matching) because
this is the other concept: *which* rules are active and what each request gets.  Every request of
the data path calls :meth:`FaultTable.plan_http` / :meth:`FaultTable.plan_tcp`, so the per-request
work stays here, in one place, and adding or removing a rule takes effect from the very next
request.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable, Iterable
from typing import Any

from mlchaos.proxy import clock
from mlchaos.proxy.faults import Plan
from mlchaos.proxy.rules import Rule, TableFull

__all__ = ["FaultTable"]


class FaultTable:
    """The rules of one process, with lease expiry and the per-request decision.

    ``on_change`` callbacks run after every add/remove/renew/expiry (the
    control plane uses it to broadcast the table to worker processes).
    """

    def __init__(self, max_rules: int = 1000) -> None:
        self.max_rules = max_rules
        """Active rules at most; :meth:`add` refuses one more (every request scans the rules with matchers)."""
        self.rules: list[Rule] = []
        self.by_id: dict[str, Rule] = {}
        self.retired: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        self.on_change: list[Callable[[], None]] = []
        self._timers: dict[str, clock.Timer] = {}
        self.version = 0
        self.matchers = False
        """True while some rule matches on method, path or headers (the HTTP relay path then steps aside)."""
        self.body_match = False
        """True while some rule matches on the body's ``model`` (requests then wait for their body)."""
        self.earliest = math.inf
        """The first lease deadline among the rules: per-rule expiry checks only once it has passed."""
        self.count = 0
        """Requests (connections in TCP mode) decided so far."""
        self.next_due = math.inf
        """The request number of the next hit of any rule without matchers."""

    # -- lifecycle --------------------------------------------------------------------------
    def add(self, rule: Rule, schedule: bool = True) -> None:
        """Add (or replace, same id) ``rule``; :class:`TableFull` when ``max_rules`` are active."""
        if rule.id not in self.by_id and len(self.rules) >= self.max_rules:
            raise TableFull(
                f"the proxy holds {len(self.rules)} faults, its limit (--max-faults {self.max_rules}); "
                "remove some (DELETE /faults/{id} or DELETE /faults) or let their leases lapse"
            )
        if rule.id in self.by_id:
            self.remove(rule.id, reason="replaced")
        self.by_id[rule.id] = rule
        self._attach(rule)
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
        self._detach(rule, self.count)
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
        self._attach(rule)  # in case a lapsed lease was detached before its timer fired
        self._schedule(rule)
        self._changed()
        return rule

    def clear(self) -> int:
        """Remove every rule in one pass (one change notification, not one per rule)."""
        rules, self.rules, self.by_id = self.rules, [], {}
        for rule in rules:
            timer = self._timers.pop(rule.id, None)
            if timer is not None:
                timer.cancel()
            self._detach(rule, self.count)
            self.retired[rule.id] = {**rule.view(), "state": "removed", "expires_in": 0.0}
        while len(self.retired) > 1000:
            self.retired.popitem(last=False)
        if rules:
            self._changed()
        return len(rules)

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

    def _attach(self, rule: Rule) -> None:
        """Start counting and scheduling ``rule`` by the table's request count (rules without matchers)."""
        if not rule.matchers and rule.table is None:
            rule.table = self
            rule.mark = self.count
            rule.due = self.count + rule.gap()

    def _detach(self, rule: Rule, upto: int) -> None:
        """Stop counting for ``rule``: its ``seen`` keeps the requests up to number ``upto``."""
        if rule.table is self:
            rule._seen += upto - rule.mark
            rule.table = None

    def _changed(self) -> None:
        self.matchers = any(r.matchers for r in self.rules)
        self.body_match = any(r.model is not None for r in self.rules)
        self.earliest = min((r.expires_at for r in self.rules), default=math.inf)
        self.next_due = min((r.due for r in self.rules if r.table is self), default=math.inf)
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
        kept = {id(r) for r in new}
        for r in self.rules:
            if id(r) not in kept:
                self._detach(r, self.count)
        for r in new:
            self._attach(r)
        self.by_id = {r.id: r for r in new}
        self.rules = new
        self.matchers = any(r.matchers for r in new)
        self.body_match = any(r.model is not None for r in new)
        self.earliest = min((r.expires_at for r in new), default=math.inf)
        self.next_due = min((r.due for r in new if r.table is self), default=math.inf)
        self.version += 1

    # -- the decision -----------------------------------------------------------------------
    def plan_http(
        self, method: bytes, url: bytes, headers: list[tuple[bytes, bytes]], model: str | None = None
    ) -> Plan | None:
        """Decide one HTTP request: None means pass-through untouched.

        Runs for every request while any rule is active.  While no rule has matchers (the
        usual "10 % of requests" fault), a request no rule is due to hit costs a counter and
        two comparisons: each such rule draws the distance to its next hit from the geometric
        law (the law of a coin per request) and the table counts the requests for all of them.
        """
        c = self.count = self.count + 1
        t = clock.now()
        lapsed = t >= self.earliest  # a lease ran out and its timer has not fired yet
        if c < self.next_due and not lapsed and not self.matchers:
            return None
        first: Rule | None = None
        plan: Plan | None = None
        due = math.inf
        for rule in self.rules:
            if lapsed and rule.expires_at <= t:
                self._detach(rule, c - 1)  # this request and later ones are not its to count
                continue
            if rule.table is self:
                nxt = rule.due
                if nxt > c:  # not this request
                    if nxt < due:
                        due = nxt
                    continue
                nxt = rule.due = c + (1 if rule.always else rule.gap())
                if nxt < due:
                    due = nxt
            else:
                if rule.matchers and not rule.selects(method, url, headers, model):
                    continue
                rule._seen += 1
                left = rule.left - 1
                if left:
                    rule.left = left
                    continue
                rule.left = 1 if rule.always else rule.gap()
            rule.affected += 1
            if first is None:
                first = rule  # usually the only hit: its shared plan, or one built below
                continue
            if plan is None:
                plan = first.fresh_plan()
            rule.fault.apply(plan, rule.rng)
            plan.rules.append(rule)
        self.next_due = due
        if plan is not None or first is None:
            return plan
        return first.solo or first.fresh_plan()

    def plan_tcp(self) -> Plan | None:
        """Decide one TCP connection: None means pass-through untouched."""
        return self.plan_http(b"", b"", [])
