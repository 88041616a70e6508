"""What a generator process is told: the JSON config built from a load spec, and its TLS context.

Kept apart from :mod:`mlchaos.load.worker` (the process that runs the plan) because the spec side
builds it in the parent (``LoadRunner``, the Locust master) and only its JSON crosses to the
worker, where :func:`tls_context` turns it back into an ``ssl`` context.
"""

from __future__ import annotations

import math
import os
import ssl
from typing import Any
from urllib.parse import urlsplit

import orjson

from mlchaos.load.schedule import RateCurve, curve_for
from mlchaos.load.spec import LoadSpec

__all__ = ["config_for", "read_bodies", "tls_context"]


def read_bodies(spec: LoadSpec) -> list[bytes] | None:
    """Request bodies: the JSONL file's non-empty lines (cycled), the inline body, or none."""
    req = spec.request
    if req.body_file:
        with open(req.body_file, "rb") as fh:
            lines = [ln.strip() for ln in fh if ln.strip()]
        if not lines:
            raise ValueError(f"{req.body_file}: no request bodies")
        for n, ln in enumerate(lines[:1000], 1):  # fail early on a broken file, not mid-run
            try:
                orjson.loads(ln)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"{req.body_file}:{n}: not JSON: {exc}") from None
        return lines
    if req.body is None:
        return None
    if isinstance(req.body, str):
        return [req.body.encode()]
    return [orjson.dumps(req.body)]


def config_for(
    spec: LoadSpec,
    url: str,
    *,
    index: int = 0,
    count: int = 1,
    interval: float = 0.25,
    curve: RateCurve | None = None,
) -> dict[str, Any]:
    """The JSON config of process ``index`` of ``count`` for a spec and a resolved absolute URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"only http:// and https:// URLs are supported, got {url!r}")
    tls = parts.scheme == "https"
    if spec.ca_file is not None and not os.path.isfile(spec.ca_file):
        raise ValueError(f"ca_file: {spec.ca_file}: no such file")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    curve = curve or curve_for(spec)
    peak = spec.peak_rate() / count
    bodies = read_bodies(spec)
    llm = None
    if spec.llm is not None:
        from mlchaos.load.llmrequests import build_bodies

        bodies = build_bodies(spec.llm)
        llm = {"stream": spec.llm.stream, "stall_timeout": spec.llm.stall_timeout,
               "slo": spec.llm.slo.model_dump()}
    max_conn = spec.connections or spec.max_connections or int(min(4096, max(64, math.ceil(peak * spec.timeout))))
    warm = spec.connections or int(min(max_conn, max(4, math.ceil(peak / 250))))
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or (443 if tls else 80),
        "tls": tls,
        "ca_file": os.path.abspath(spec.ca_file) if spec.ca_file else None,
        "insecure": spec.insecure,
        "path": path,
        "method": spec.request.method,
        "headers": spec.request.headers,
        "bodies": [b.decode("utf-8", "surrogateescape") for b in bodies] if bodies else None,
        "curve": [[float(t), float(r)] for t, r in zip(curve.t, curve.r, strict=True)],
        "arrivals": spec.arrivals,
        "index": index,
        "count": count,
        "duration": spec.duration,
        "seed": spec.seed,
        "timeout": spec.timeout,
        "max_connections": max_conn,
        "warm": warm,
        "sample_every": round(1 / spec.sample) if spec.sample > 0 else 0,
        "max_samples": max(1, math.ceil(spec.max_samples_per_second * interval / count)) if spec.sample else 0,
        "loop": spec.loop,
        "spin": spec.spin,
        "interval": interval,
        "drain": spec.timeout,
        "llm": llm,
    }


def tls_context(cfg: dict[str, Any]) -> ssl.SSLContext | None:
    """The client TLS context of an https:// run (None for http://).

    HTTP/1.1 is offered by ALPN, and only it: the client speaks nothing else.  Certificates are verified
    against ``ca_file`` or the system's store unless ``insecure``; a failed handshake is a connection error
    of its own kind (e.g. ``SSLCertVerificationError``), like an expired certificate would be in production.
    """
    if not cfg.get("tls"):
        return None
    ctx = ssl.create_default_context(cafile=cfg.get("ca_file"))
    if cfg.get("insecure"):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx
