"""JSON response corruption of chosen fields: null, NaN, a wrong type, scaled, or a stale value."""

from __future__ import annotations

import random
import threading
from typing import Any, Literal

import orjson
from pydantic import Field, model_validator

from mlchaos.proxy import jsonspan
from mlchaos.proxy.faults.base import Direction, Params, Plan, ProxyFault


class JsonCorruptParams(Params):
    fields: list[str] = Field(min_length=1, description="Dotted paths, e.g. 'features.amount', 'vector.*'.")
    action: Literal["null", "nan", "wrong_type", "scale", "stale"] = "null"
    factor: float = Field(10.0, description="Multiplier for action 'scale'.")

    @model_validator(mode="after")
    def _check(self) -> JsonCorruptParams:
        for f in self.fields:
            if not f.strip(".") or ".." in f:
                raise ValueError(f"invalid field path {f!r}: use dotted keys like 'features.amount'")
        return self


def _wrong_type(value: Any) -> Any:
    """A value of another JSON type that a lenient client might still accept."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return 0
    if value is None:
        return "null"
    return orjson.dumps(value).decode()


def _scale(value: Any, factor: float) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return value * factor
    if isinstance(value, list):
        return [_scale(v, factor) for v in value]
    if isinstance(value, dict):
        return {k: _scale(v, factor) for k, v in value.items()}
    return value


class JsonCorrupt(ProxyFault[JsonCorruptParams]):
    """Rewrite only the named fields of a JSON response body; every other byte stays identical.

    ``stale`` replays the value the field had in the first response this
    fault saw (a feature store serving yesterday's value).
    """

    kind = "json-corrupt"
    fixed_effect = True
    params_model = JsonCorruptParams
    http_only = True
    directions = ("response",)

    def __init__(self, params: JsonCorruptParams, direction: Direction) -> None:
        super().__init__(params, direction)
        assert isinstance(params, JsonCorruptParams)
        self._paths = [(f, jsonspan.parse_path(f)) for f in params.fields]
        # one field without wildcards (the usual fault): located by jsonspan.first, no generators
        self._one = self._paths[0] if len(self._paths) == 1 and "*" not in params.fields[0].split(".") else None
        self._stale: dict[str, bytes] = {}
        self._lock = threading.Lock()
        # For the C fast path (http_wire.corrupt_response): the one path's keys as quoted JSON, when
        # every key has a single byte form, and the replacement once it no longer depends on the value.
        one = self._one
        self.needles = (
            tuple(n[0] for _, n in one[1]) if one is not None and all(len(n) == 1 for _, n in one[1]) else None
        )
        self.constant: bytes | None = {"null": b"null", "nan": b"NaN"}.get(params.action)

    def apply(self, plan: Plan, rng: random.Random) -> None:
        plan.corrupt.append(self)

    def _replacement(self, field: str, raw: bytes) -> bytes | None:
        p = self.params
        assert isinstance(p, JsonCorruptParams)
        match p.action:
            case "null":
                return b"null"
            case "nan":
                return b"NaN"
            case "stale":
                with self._lock:
                    old = self._stale.setdefault(field, raw)
                    if self._one is not None:
                        self.constant = old  # captured: from now on a constant replacement
                return old
            case "wrong_type":
                return orjson.dumps(_wrong_type(orjson.loads(raw)))
            case _:
                return orjson.dumps(_scale(orjson.loads(raw), p.factor))

    def corrupt(self, body: bytes) -> bytes | None:
        """Return the patched body, or None when no named field is present (or the body is not JSON)."""
        edits: list[tuple[int, int, bytes]] = []
        if self._one is not None:  # the common case: one field, one span
            field, path = self._one
            try:
                span = jsonspan.first(body, path)
                if span is None:
                    return None
                start, end = span
                old = body[start:end]
                new = self._replacement(field, old)
                return None if new is None or new == old else body[:start] + new + body[end:]
            except (jsonspan.JsonSpanError, orjson.JSONDecodeError, ValueError):
                return None
        try:
            for field, path in self._paths:
                for n, (start, end) in enumerate(jsonspan.spans(body, path)):
                    new = self._replacement(field if n == 0 else f"{field}#{n}", body[start:end])
                    if new is not None and new != body[start:end]:
                        edits.append((start, end, new))
        except (jsonspan.JsonSpanError, orjson.JSONDecodeError, ValueError):
            return None
        if not edits:
            return None
        edits.sort()
        out: list[bytes] = []
        pos = 0
        for start, end, new in edits:
            if start < pos:  # overlapping paths (e.g. 'a' and 'a.b'): the outer edit wins
                continue
            out.append(body[pos:start])
            out.append(new)
            pos = end
        out.append(body[pos:])
        return b"".join(out)
