"""Run a proxy: data-path listener(s), the control API, and (optionally) N worker processes.

One process (``workers=1``, the default) runs the data path and the control
API in one event loop, sharing the fault table directly.

With ``workers=N>1``, one control plane and N forked data planes share one ``SO_REUSEPORT`` port:
that mode, and why it is built so, is :mod:`mlchaos.proxy.workers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import logging
import os
import signal
import socket
import stat
import sys
from collections.abc import Callable
from typing import Any, cast

from mlchaos.proxy.control import Control, ControlProtocol
from mlchaos.proxy.http_path import HttpProxy
from mlchaos.proxy.limits import Limits
from mlchaos.proxy.sockets import loopback_addresses
from mlchaos.proxy.stats import Stats
from mlchaos.proxy.table import FaultTable
from mlchaos.proxy.tcp_path import TcpProxy

log = logging.getLogger("mlchaos.proxy")


class ConfigError(ValueError):
    """The proxy cannot start with these settings; the message says why."""


@dataclasses.dataclass
class Config:
    listen: tuple[str, int]
    upstream: tuple[str, int]
    mode: str = "http"
    control: tuple[str, int] = ("127.0.0.1", 0)
    token: str | None = None
    workers: int = 1
    loop: str = "auto"
    """'auto' (uvloop when installed), 'uvloop' or 'asyncio'."""
    limits: Limits = dataclasses.field(default_factory=Limits)

    def check(self) -> None:
        """Refuse settings the proxy cannot or must not run with; pin a tokenless control API to loopback."""
        if self.mode not in ("http", "tcp"):
            raise ConfigError(f"mode must be 'http' or 'tcp', not {self.mode!r}")
        if not self.token:
            addrs = loopback_addresses(self.control[0])
            if addrs is None:
                raise ConfigError(
                    f"the control API would listen on {self.control[0]}, beyond loopback (not an address, or a "
                    "name resolving only to addresses, of the loopback interface): set a token (--token-file or "
                    "$MLCHAOS_PROXY_TOKEN) or bind it to 127.0.0.1"
                )
            # bind the address that was checked, not the name again (its answer could change in between)
            self.control = (addrs[0], self.control[1])
        if self.workers < 1:
            raise ConfigError("workers must be at least 1")
        if self.loop not in ("auto", "uvloop", "asyncio"):
            raise ConfigError("loop must be auto, uvloop or asyncio")
        try:
            self.limits.check()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


TOKEN_ENV = "MLCHAOS_PROXY_TOKEN"


def load_token(flag: str | None, token_file: str | None, env: dict[str, str] | None = None) -> str | None:
    """The control API token from ``--token-file``, else ``$MLCHAOS_PROXY_TOKEN``, else ``--token``.

    A token on the command line is readable by every local user in ``/proc/PID/cmdline``, so the
    file (which must not be readable by group or others) and the environment are the ways meant
    for it; ``--token`` still works and logs a warning.
    """
    if token_file:
        try:
            st = os.stat(token_file)
            if not stat.S_ISREG(st.st_mode):
                raise ConfigError(f"--token-file {token_file}: not a regular file")
            if st.st_mode & 0o077:
                raise ConfigError(
                    f"--token-file {token_file}: readable by group or others (mode {stat.S_IMODE(st.st_mode):o}); "
                    f"chmod 600 {token_file}"
                )
            with open(token_file, encoding="utf-8") as fh:
                token = fh.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--token-file {token_file}: cannot read it: {exc}") from None
        if not token:
            raise ConfigError(f"--token-file {token_file}: the file is empty")
        return token
    env_token = (os.environ if env is None else env).get(TOKEN_ENV)
    if env_token:
        return env_token
    if flag:
        log.warning("--token on the command line is readable by any local user (/proc/PID/cmdline); "
                    "prefer --token-file or $%s", TOKEN_ENV)
    return flag or None


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    """uvloop when available (half the user CPU of the default loop), else the asyncio default."""
    if kind in ("auto", "uvloop"):
        try:
            import uvloop

            return uvloop.new_event_loop()
        except ImportError:
            if kind == "uvloop":
                raise ConfigError("--loop uvloop: uvloop is not installed: pip install 'mlchaos[fast]'") from None
    return asyncio.new_event_loop()


def listen_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def data_path(cfg: Config, table: FaultTable, stats: Stats) -> HttpProxy | TcpProxy:
    """The data path of this proxy process, made once at its start-up.  What exists by then (modules,
    configuration, ~50k objects) lives as long as the process: frozen, the cycle collector never walks
    it again, so an occasional full collection costs the live connections only (~1 ms) instead of
    5-50 ms, a pause every stream in flight would see (issue #20).  Here, in the proxy's own process,
    and not in ``HttpProxy``: freezing is process-wide, not a library's call to make for its host."""
    gc.freeze()
    if cfg.mode == "http":
        return HttpProxy(table, cfg.upstream, stats, cfg.limits)
    return TcpProxy(table, cfg.upstream, stats, cfg.limits)


def stop_event(loop: asyncio.AbstractEventLoop) -> asyncio.Event:
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


def _raise_fd_limit(connections: int) -> None:
    """Let the process hold ``--max-connections`` clients and their upstream connections.

    The usual soft limit (1024 descriptors) would make accept() fail with EMFILE near 500 clients, long
    before the connection cap answers its clear 503; the soft limit is raised toward the hard one.
    """
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 2 * connections + 256
        if soft != resource.RLIM_INFINITY and soft < want:
            new = want if hard == resource.RLIM_INFINITY else min(want, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    except (ImportError, ValueError, OSError) as exc:  # not fatal: the cap and EMFILE still protect us
        log.warning("could not raise the open-file limit: %s", exc)


def run(cfg: Config, ready: Callable[[dict[str, Any]], None] | None = None) -> int:
    """Run until SIGTERM/SIGINT.  ``ready`` receives the bound addresses once traffic can flow."""
    cfg.check()
    _raise_fd_limit(cfg.limits.max_connections)
    if cfg.workers == 1:
        loop = new_loop(cfg.loop)
        try:
            return loop.run_until_complete(_single(cfg, ready))
        finally:
            loop.close()
    from mlchaos.proxy.workers import run_workers  # only the multi-process mode needs it

    return run_workers(cfg, ready)


async def _single(cfg: Config, ready: Callable[[dict[str, Any]], None] | None) -> int:
    loop = asyncio.get_running_loop()
    stop = stop_event(loop)
    table = FaultTable(cfg.limits.max_faults)
    stats = Stats()
    dp = data_path(cfg, table, stats)
    sock = listen_socket(*cfg.listen, reuse_port=False)
    server = await loop.create_server(dp.protocol, sock=sock, backlog=4096)
    listen = addr_text(sock)
    control = Control(table, cfg.mode, listen, cfg.upstream, cfg.token, lambda: stats)
    csrv = await loop.create_server(lambda: ControlProtocol(control), *cfg.control)
    info = ready_info(cfg, listen, csrv, 1)
    if ready is not None:
        ready(info)
    await stop.wait()
    server.close()
    csrv.close()
    dp.close()
    return 0


def addr_text(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def ready_info(cfg: Config, listen: str, csrv: asyncio.AbstractServer, workers: int) -> dict[str, Any]:
    chost, cport = cast(asyncio.Server, csrv).sockets[0].getsockname()[:2]
    chost = f"[{chost}]" if ":" in chost else chost
    return {
        "listen": listen, "control": f"http://{chost}:{cport}", "mode": cfg.mode,
        "upstream": f"{cfg.upstream[0]}:{cfg.upstream[1]}", "pid": os.getpid(), "workers": workers,
    }


def print_ready(info: dict[str, Any]) -> None:
    """Announce the bound addresses as one JSON line on stdout (read by :func:`mlchaos.proxy.spawn`)."""
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
