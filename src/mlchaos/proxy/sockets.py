"""Small socket helpers shared by both data paths."""

from __future__ import annotations

import asyncio
import contextlib
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


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")
