"""Small socket helpers shared by both data paths."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import struct

_LINGER0 = struct.pack("ii", 1, 0)


def reset(transport: asyncio.BaseTransport) -> None:
    """Close with SO_LINGER 0 so the peer receives an RST (ECONNRESET), not a FIN."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER0)
    abort = getattr(transport, "abort", None)
    if abort is not None:
        abort()
    else:
        transport.close()


def parse_hostport(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``'127.0.0.1:8080'``, ``':8080'``, ``'[::1]:80'`` or ``'8080'`` -> (host, port)."""
    text = text.strip()
    if text.isdigit():
        return default_host, int(text)
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    host = host.strip("[]") or default_host
    p = int(port)
    if not 0 <= p <= 65535:
        raise ValueError(f"port out of range in {text!r}")
    return host, p


def loopback_addresses(host: str) -> list[str] | None:
    """The addresses ``host`` resolves to when every one of them is a loopback address, else None.

    Addresses, not names: ``127.attacker.example`` starts like a loopback address and may resolve
    anywhere.  A name that does not resolve is not loopback.
    """
    try:
        return [str(ipaddress.ip_address(host))] if ipaddress.ip_address(host).is_loopback else None
    except ValueError:
        pass  # a name: resolve it
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None
    addrs: list[str] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not ip.is_loopback:
            return None
        if str(ip) not in addrs:
            addrs.append(str(ip))
    return addrs or None


def is_loopback(host: str) -> bool:
    """True when every address ``host`` resolves to is a loopback address (see :func:`loopback_addresses`)."""
    return loopback_addresses(host) is not None
