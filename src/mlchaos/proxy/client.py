"""A small synchronous client for the proxy's control API (stdlib only, safe in any process).

Example::

    from mlchaos.proxy.client import ProxyClient
    c = ProxyClient("http://127.0.0.1:8474")
    fid = c.add({"kind": "latency", "delay": "200ms", "probability": "10%"}, ttl=30)
    c.renew(fid, 30)
    print(c.stats(fid))       # {"seen": ..., "affected": ..., ...}
    c.remove(fid)

Synchronous on purpose: ``Fault.revert`` must work from a watchdog or
``mlchaos stop`` with no event loop; async callers wrap it in
``asyncio.to_thread``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class ProxyError(Exception):
    """The control API refused a call (``status`` is the HTTP status, 0 when unreachable)."""

    def __init__(self, status: int, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.details = details


class ProxyClient:
    """Drive one proxy's control API at ``control_url`` (e.g. ``http://127.0.0.1:8474``)."""

    def __init__(self, control_url: str, token: str | None = None, timeout: float = 5.0) -> None:
        self.url = control_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                payload = json.loads(raw)
                message, details = payload.get("error", raw.decode()), payload.get("details")
            except ValueError:
                message, details = raw.decode(errors="replace"), None
            raise ProxyError(exc.code, f"{method} {path}: {exc.code} {message}", details) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ProxyError(0, f"control API {self.url} unreachable: {reason}") from None
        if not raw:
            return None
        ctype_json = raw[:1] in (b"{", b"[")
        return json.loads(raw) if ctype_json else raw.decode()

    def health(self) -> dict[str, Any]:
        """Mode, addresses and active fault count; raises :class:`ProxyError` when unreachable."""
        return self._call("GET", "/health")

    def add(self, fault: dict[str, Any], ttl: float | str | None = None, force: bool = False) -> str:
        """Add a fault (JSON as in docs/proxy.md) with a lease of ``ttl``; return its id."""
        body = dict(fault)
        if ttl is not None:
            body["ttl"] = ttl
        return str(self._call("POST", "/faults" + ("?force=1" if force else ""), body)["id"])

    def validate(self, fault: dict[str, Any]) -> dict[str, Any]:
        """Check a fault without adding it; raises :class:`ProxyError` (400) when it is wrong."""
        return self._call("POST", "/faults/validate", dict(fault))

    def renew(self, fault_id: str, ttl: float | str | None = None) -> dict[str, Any]:
        """Extend a fault's lease (by its ttl, or a new ``ttl``); 404 -> :class:`ProxyError`."""
        return self._call("POST", f"/faults/{fault_id}/renew", {} if ttl is None else {"ttl": ttl})

    def remove(self, fault_id: str, missing_ok: bool = True) -> bool:
        """Remove a fault; True if it was active.  Idempotent unless ``missing_ok`` is False."""
        try:
            self._call("DELETE", f"/faults/{fault_id}")
            return True
        except ProxyError as exc:
            if exc.status == 404 and missing_ok:
                return False
            raise

    def clear(self) -> int:
        """Remove every fault; return how many were active."""
        return int(self._call("DELETE", "/faults")["removed"])

    def list(self) -> list[dict[str, Any]]:
        """Active faults with their counters."""
        return list(self._call("GET", "/faults")["faults"])

    def stats(self, fault_id: str) -> dict[str, Any]:
        """One fault's view including ``seen`` and ``affected``; works after removal/expiry too."""
        return self._call("GET", f"/faults/{fault_id}")

    def metrics(self) -> str:
        """Prometheus text."""
        return str(self._call("GET", "/metrics"))
