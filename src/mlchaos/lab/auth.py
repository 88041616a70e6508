"""Who may change the lab, and which names may become file paths.

Every lab process listens on 127.0.0.1, and every local user can reach
127.0.0.1: "loopback only" keeps the network out, not the other users of the
machine.  So the endpoints that change what the lab does (the supervisor's
``POST`` control API, the services' ``/admin/*``, the balancers' ``/lb/*``
writes) require a per-lab token, sent as ``Authorization: Bearer <token>``.
The supervisor writes a fresh random token to ``<lab dir>/admin.token``
(mode 0600, so only the lab's owner can read it) each time it starts; the
services it starts read that file (its path comes in
``$MLCHAOS_LAB_TOKEN_FILE``, never the token on a command line, which
``/proc/PID/cmdline`` shows to everyone); :class:`mlchaos.lab.Lab` reads it
for the CLI, the engine and the demo.  Health, readiness, metrics, state and
the data path (``/predict``, ``/features``, ...) stay open: probes and load
must not need a secret.

Names that arrive in requests (model versions, service names) are checked
against an allow-list of characters and resolved inside their directory
before they touch the filesystem (:func:`check_name`, :func:`inside`): a
model version is a file name, and unpickling a file is running its code.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from mlchaos.atomic import write_bytes_atomic

if TYPE_CHECKING:  # types only: importing auth must stay cheap (experiment validation uses check_name)
    from mlchaos.lab.observability import ASGIApp, Receive, Scope, Send

TOKEN_FILE = "admin.token"
TOKEN_ENV = "MLCHAOS_LAB_TOKEN_FILE"
"""Environment variable naming the token file a lab service checks admin calls against."""

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
"""What a name that becomes part of a path may look like (a model version, a service name)."""


class BadName(ValueError):
    """A request or flag named something that cannot be a file of the lab."""


def check_name(value: object, what: str) -> str:
    """``value`` if it is a plain name (letters, digits, ``.``, ``_``, ``-``; no ``..``); else BadName."""
    if not isinstance(value, str) or not NAME.match(value) or ".." in value:
        raise BadName(
            f"{what}: invalid name {value!r} (1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, no '..')"
        )
    return value


def inside(directory: Path, name: str, suffix: str, what: str) -> Path:
    """``directory/<name><suffix>`` resolved, refused unless it stays inside ``directory`` (symlinks too)."""
    base = directory.resolve()
    path = (base / f"{check_name(name, what)}{suffix}").resolve()
    if not path.is_relative_to(base):
        raise BadName(f"{what}: {name!r} resolves outside {base}")
    return path


def write_token(path: Path) -> str:
    """Write a fresh random token to ``path`` (0600, replaced atomically) and return it."""
    token = secrets.token_urlsafe(32)
    write_bytes_atomic(path, token.encode() + b"\n", mode=0o600)  # 0600 whatever the umask
    return token


def read_token(path: Path) -> str:
    """The token in ``path``; OSError if it cannot be read, ValueError if it is empty."""
    token = path.read_text().strip()
    if not token:
        raise ValueError(f"{path}: empty token file")
    return token


def bearer(token: str) -> dict[str, str]:
    """The request header that carries ``token``."""
    return {"Authorization": f"Bearer {token}"}


def _norm(path: str) -> str:
    return "/" + path.lstrip("/").lower()


def service_admin(method: str, path: str) -> bool:
    """A lab service's admin calls: ``/admin/*``, and the balancer's ``/lb/*`` writes."""
    p = _norm(path)
    return p.startswith("/admin") or (p.startswith("/lb/") and method not in ("GET", "HEAD"))


def control_writes(method: str, path: str) -> bool:
    """The supervisor's control API: everything but reads (``/health``, ``/state``, ``/metrics``)."""
    return method not in ("GET", "HEAD")


class AdminGuard:
    """ASGI middleware: requests ``protected(method, path)`` selects need the bearer token, else 401.

    With ``token=None`` (a service started without a token file) those
    requests are always refused: an admin API nobody can authenticate to is
    closed, not open.
    """

    def __init__(self, app: ASGIApp, token: str | None, protected: Callable[[str, str], bool]) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None
        self.protected = protected

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.protected(scope["method"], scope["path"]):
            got = next((v for k, v in scope.get("headers", []) if k.lower() == b"authorization"), b"")
            if self.expected is None or not hmac.compare_digest(got, self.expected):
                await _unauthorized(send, configured=self.expected is not None)
                return
        await self.app(scope, receive, send)


async def _unauthorized(send: Send, configured: bool) -> None:
    msg = (
        f"admin endpoint: send 'Authorization: Bearer <token>' with the token in <lab dir>/{TOKEN_FILE}"
        if configured
        else f"admin endpoint disabled: this service was started without a token file (${TOKEN_ENV})"
    )
    body = orjson.dumps({"error": msg})
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b"Bearer"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def guard_from_env(app: ASGIApp) -> AdminGuard:
    """Wrap a lab service's app: admin calls need the token in the file ``$MLCHAOS_LAB_TOKEN_FILE`` names."""
    path = os.environ.get(TOKEN_ENV)
    token = None
    if path:
        try:
            token = read_token(Path(path))
        except (OSError, ValueError) as exc:
            print(f"admin token not readable ({exc}): admin endpoints disabled", flush=True)
    return AdminGuard(app, token, service_admin)
