"""Run a proxy: data-path listener(s), the control API, and (optionally) N worker processes.

One process (``workers=1``, the default) runs the data path and the control
API in one event loop, sharing the fault table directly.

With ``workers=N>1`` the design is one control plane and N data planes:

* the parent binds nothing but the control API; it forks N workers *before*
  creating its event loop (forking a running loop is unsafe);
* each worker opens its own listening socket on the same port with
  ``SO_REUSEPORT``, so the kernel spreads connections across workers with no
  shared accept lock;
* the parent owns the authoritative fault table and leases, and broadcasts the
  whole table (versioned, a few hundred bytes) over a socketpair to every
  worker on each change; workers apply it before their next request;
* workers send counter deltas to the parent every 50 ms, so ``seen``/
  ``affected`` stay exact (at most 50 ms stale) across workers;
* a worker whose parent vanishes (socketpair EOF) exits; lease expiry is
  also checked per request in the worker, so a fault never outlives its
  lease even if a broadcast were lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
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
from mlchaos.proxy.rules import RuleError, parse_rule
from mlchaos.proxy.sockets import loopback_addresses
from mlchaos.proxy.stats import Stats
from mlchaos.proxy.table import FaultTable
from mlchaos.proxy.tcp_path import TcpProxy

log = logging.getLogger("mlchaos.proxy")
REPORT_EVERY = 0.05


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


def _listen_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _data_path(cfg: Config, table: FaultTable, stats: Stats) -> HttpProxy | TcpProxy:
    if cfg.mode == "http":
        return HttpProxy(table, cfg.upstream, stats, cfg.limits)
    return TcpProxy(table, cfg.upstream, stats, cfg.limits)


def _stop_event(loop: asyncio.AbstractEventLoop) -> asyncio.Event:
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
    return _multi(cfg, ready)


async def _single(cfg: Config, ready: Callable[[dict[str, Any]], None] | None) -> int:
    loop = asyncio.get_running_loop()
    stop = _stop_event(loop)
    table = FaultTable(cfg.limits.max_faults)
    stats = Stats()
    dp = _data_path(cfg, table, stats)
    sock = _listen_socket(*cfg.listen, reuse_port=False)
    server = await loop.create_server(dp.protocol, sock=sock, backlog=4096)
    listen = _addr(sock)
    control = Control(table, cfg.mode, listen, cfg.upstream, cfg.token, lambda: stats)
    csrv = await loop.create_server(lambda: ControlProtocol(control), *cfg.control)
    info = _info(cfg, listen, csrv, 1)
    if ready is not None:
        ready(info)
    await stop.wait()
    server.close()
    csrv.close()
    dp.close()
    return 0


def _addr(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _info(cfg: Config, listen: str, csrv: asyncio.AbstractServer, workers: int) -> dict[str, Any]:
    chost, cport = cast(asyncio.Server, csrv).sockets[0].getsockname()[:2]
    chost = f"[{chost}]" if ":" in chost else chost
    return {
        "listen": listen, "control": f"http://{chost}:{cport}", "mode": cfg.mode,
        "upstream": f"{cfg.upstream[0]}:{cfg.upstream[1]}", "pid": os.getpid(), "workers": workers,
    }


# -- multi-worker ------------------------------------------------------------------------------------

def _multi(cfg: Config, ready: Callable[[dict[str, Any]], None] | None) -> int:
    # Reserve the port first (bound, not listening: the kernel hands connections only to listeners).
    reserve = _listen_socket(*cfg.listen, reuse_port=True)
    port = reserve.getsockname()[1]
    listen = _addr(reserve)
    children: list[tuple[int, socket.socket]] = []
    for _ in range(cfg.workers):
        parent_end, child_end = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # worker
            parent_end.close()
            for _, s in children:
                s.close()
            reserve.close()
            code = 1
            try:
                code = _worker(cfg, (cfg.listen[0], port), child_end)
            finally:
                os._exit(code)
        child_end.close()
        children.append((pid, parent_end))
    loop = new_loop(cfg.loop)
    try:
        return loop.run_until_complete(_parent(cfg, listen, reserve, children, ready))
    finally:
        loop.close()
        for pid, _ in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid, _ in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


class _Lines(asyncio.Protocol):
    """Newline-delimited JSON over a socketpair (parent <-> worker)."""

    def __init__(self, on_message: Callable[[dict[str, Any]], None], on_lost: Callable[[], None]) -> None:
        self.on_message = on_message
        self.on_lost = on_lost
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        for line in lines:
            if line:
                self.on_message(json.loads(line))

    def send(self, msg: dict[str, Any]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(json.dumps(msg).encode() + b"\n")

    def connection_lost(self, exc: Exception | None) -> None:
        self.on_lost()


def _table_message(table: FaultTable) -> dict[str, Any]:
    return {"rules": [{"spec": r.spec, "expires_at": r.expires_at} for r in table.rules], "version": table.version}


async def _parent(
    cfg: Config,
    listen: str,
    reserve: socket.socket,
    children: list[tuple[int, socket.socket]],
    ready: Callable[[dict[str, Any]], None] | None,
) -> int:
    loop = asyncio.get_running_loop()
    stop = _stop_event(loop)
    table = FaultTable(cfg.limits.max_faults)
    stats = Stats()
    links: list[_Lines] = []
    started = 0
    all_up = asyncio.Event()

    def on_message(msg: dict[str, Any]) -> None:
        nonlocal started
        if msg.get("ready"):
            started += 1
            if started == len(children):
                all_up.set()
        for rid, (seen, hit) in msg.get("counts", {}).items():
            rule = table.by_id.get(rid)
            if rule is not None:
                rule.seen += seen
                rule.affected += hit
            elif rid in table.retired:
                table.retired[rid]["seen"] += seen
                table.retired[rid]["affected"] += hit
        stats.add(msg.get("stats", {}))

    for _, sock in children:
        _, link = await loop.connect_accepted_socket(lambda: _Lines(on_message, stop.set), sock)
        links.append(link)

    def broadcast() -> None:
        msg = _table_message(table)
        for link in links:
            link.send(msg)

    table.on_change.append(broadcast)
    await asyncio.wait_for(all_up.wait(), 30)
    reserve.close()
    control = Control(table, cfg.mode, listen, cfg.upstream, cfg.token, lambda: stats, workers=len(children))
    csrv = await loop.create_server(lambda: ControlProtocol(control), *cfg.control)
    if ready is not None:
        ready(_info(cfg, listen, csrv, len(children)))
    await stop.wait()
    csrv.close()
    return 0


def _worker(cfg: Config, addr: tuple[str, int], link_sock: socket.socket) -> int:
    loop = new_loop(cfg.loop)
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_worker_main(cfg, addr, link_sock))
    finally:
        loop.close()


async def _worker_main(cfg: Config, addr: tuple[str, int], link_sock: socket.socket) -> int:
    loop = asyncio.get_running_loop()
    stop = _stop_event(loop)
    table = FaultTable(cfg.limits.max_faults)
    stats = Stats()
    dp = _data_path(cfg, table, stats)
    reported: dict[str, tuple[int, int]] = {}
    last_stats = dataclasses.asdict(stats)

    def on_message(msg: dict[str, Any]) -> None:
        rules = []
        for item in msg.get("rules", []):
            try:
                rule = parse_rule({k: v for k, v in item["spec"].items()}, cfg.mode)
            except RuleError as exc:  # cannot happen: the parent validated it; never crash on it
                log.error("worker %d: bad broadcast rule: %s", os.getpid(), exc)
                continue
            rule.expires_at = item["expires_at"]  # CLOCK_MONOTONIC is system-wide on Linux
            rules.append(rule)
        table.replace_all(rules)

    _, link = await loop.connect_accepted_socket(lambda: _Lines(on_message, stop.set), link_sock)
    sock = _listen_socket(*addr, reuse_port=True)
    server = await loop.create_server(dp.protocol, sock=sock, backlog=4096)
    link.send({"ready": True, "pid": os.getpid()})

    async def report() -> None:
        nonlocal last_stats
        while True:
            await asyncio.sleep(REPORT_EVERY)
            counts: dict[str, tuple[int, int]] = {}
            for r in table.rules:
                prev = reported.get(r.id, (0, 0))
                if (r.seen, r.affected) != prev:
                    counts[r.id] = (r.seen - prev[0], r.affected - prev[1])
                    reported[r.id] = (r.seen, r.affected)
            now_stats = dataclasses.asdict(stats)
            delta = {k: now_stats[k] - last_stats[k] for k in now_stats if now_stats[k] != last_stats[k]}
            last_stats = now_stats
            if counts or delta:
                link.send({"counts": counts, "stats": delta})

    reporter = loop.create_task(report())
    await stop.wait()
    reporter.cancel()
    server.close()
    dp.close()
    return 0


def print_ready(info: dict[str, Any]) -> None:
    """Announce the bound addresses as one JSON line on stdout (read by :func:`mlchaos.proxy.spawn`)."""
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
