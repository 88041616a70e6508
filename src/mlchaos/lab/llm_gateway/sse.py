"""Reading an OpenAI-style Server-Sent-Events stream one event at a time, and what each event means.

The gateway relays a backend's events to its client byte for byte; it only
needs to know, per event, whether it carries text (and which), ends the
stream (``[DONE]``), reports an error in-band, or cannot be parsed, so that
the mitigated variant can tell a broken stream from a healthy one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

MAX_EVENT = 1 << 20
"""Bytes one event may take before the stream counts as broken (a backend must not make the gateway buffer)."""


@dataclass
class Event:
    """One SSE event: its raw bytes (relayed as they came) and what it says."""

    raw: bytes
    kind: str
    """``token`` (carries text), ``meta`` (a role, finish or usage chunk), ``done``, ``error``, ``malformed``."""
    text: str = ""
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    body: dict[str, Any] | None = None


def parse(raw: bytes) -> Event:
    """Classify one event (its ``data:`` lines joined; comments and other fields ignored)."""
    data = b"\n".join(
        line[5:].lstrip(b" ") for line in raw.replace(b"\r\n", b"\n").split(b"\n") if line.startswith(b"data:")
    )
    if not data:
        return Event(raw, "meta")
    if data.strip() == b"[DONE]":
        return Event(raw, "done")
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return Event(raw, "malformed")
    if not isinstance(body, dict):
        return Event(raw, "malformed")
    if "error" in body:
        return Event(raw, "error", body=body)
    choices = body.get("choices") or []
    text, finish = "", None
    if choices and isinstance(choices[0], dict):
        c = choices[0]
        delta = c.get("delta")
        text = (delta.get("content") if isinstance(delta, dict) else c.get("text")) or ""
        finish = c.get("finish_reason")
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else None
    return Event(raw, "token" if text else "meta", text=text, finish_reason=finish, usage=usage, body=body)


async def next_event(content: aiohttp.StreamReader) -> Event | None:
    """The next event of the stream, or None at its end (EOF, with or without a partial event)."""
    buf = bytearray()
    while True:
        line = await content.readline()
        if not line:
            return None  # EOF: a partial event at the end is no event
        if line in (b"\n", b"\r\n"):
            if buf:
                return parse(bytes(buf) + b"\n")
            continue
        buf += line
        if len(buf) > MAX_EVENT:
            return Event(bytes(buf), "malformed")
