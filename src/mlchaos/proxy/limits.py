"""Resource limits of the proxy: what one client (or many) may cost it before it says no.

The proxy sits next to production services and any local process can reach its data
path.  Without limits, one endless header grew its RSS from 41 to 240 MB (and the CPU
quadratically: the parser concatenates a partial header on every read), 500 slowloris
connections stayed open for good, and 10,000 faults made every request pay a scan.
Each limit below is checked where the proxy looks at the bytes anyway (header parsing,
a sweep once per ``tick``), so the relay path of a normal request pays one comparison.

The defaults are far above what a model server or its clients send (requests with a
few hundred bytes of headers, keep-alive pools that reuse a connection within seconds),
so turning them on changes nothing for real traffic; docs/proxy.md lists them.
"""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class Limits:
    """Per-process limits (each worker of a ``--workers N`` proxy applies them to its own connections)."""

    max_header_bytes: int = 64 * 1024
    """Request line plus headers of one request; more gets 431 and the connection is closed."""
    max_header_lines: int = 1000
    """Header lines of one request; more gets 431."""
    header_timeout: float = 10.0
    """A request's headers must be complete this long after its first byte (slowloris); else 408 and close."""
    idle_timeout: float = 300.0
    """A keep-alive connection with no request in progress, or a request body that stalls, is closed
    after this long without a byte from the client."""
    max_connections: int = 10_000
    """Concurrent client connections; one more is answered 503 and closed at once."""
    max_body_buffer: int = 64 * 1024 * 1024
    """Request body bytes the proxy holds while a fault delays forwarding (latency, http-error);
    more gets 413.  A body that streams upstream is never buffered and has no limit."""
    max_faults: int = 1000
    """Active faults in the table; one more is refused with 429 by the control API."""
    tick: float = 0.5
    """How often the timeout sweep runs: timeouts fire at most this late."""

    def check(self) -> None:
        """ValueError naming the flag when a limit makes no sense."""
        ints = {"max_header_bytes": ("--max-header-size", 1024), "max_header_lines": ("--max-header-lines", 8),
                "max_connections": ("--max-connections", 1), "max_body_buffer": ("--max-body-buffer", 0),
                "max_faults": ("--max-faults", 1)}
        for field, (flag, low) in ints.items():
            v = getattr(self, field)
            if not low <= v <= 1 << 40:
                raise ValueError(f"{flag} must be between {low} and {1 << 40}, got {v}")
        for field, flag in (("header_timeout", "--header-timeout"), ("idle_timeout", "--idle-timeout")):
            v = getattr(self, field)
            if not (math.isfinite(v) and 0.05 <= v <= 7 * 86400):
                raise ValueError(f"{flag} must be between 50ms and 7 days, got {v}")
        if not (math.isfinite(self.tick) and 0.01 <= self.tick <= 5):
            raise ValueError(f"tick must be between 0.01 and 5 s, got {self.tick}")

    @property
    def relay_cap(self) -> int:
        """Reads up to this size cannot exceed either header limit (a header line takes at least 4 bytes),
        so the relay path skips the exact check for them."""
        return min(self.max_header_bytes, 4 * self.max_header_lines)

    def to_args(self) -> list[str]:
        """The command-line flags that reproduce these limits (for :func:`mlchaos.proxy.spawn`)."""
        d = Limits()
        out: list[str] = []
        for field, flag in FLAGS.items():
            v = getattr(self, field)
            if v != getattr(d, field):
                out += [flag, repr(v) if isinstance(v, float) else str(v)]
        return out


FLAGS = {
    "max_header_bytes": "--max-header-size", "max_header_lines": "--max-header-lines",
    "header_timeout": "--header-timeout", "idle_timeout": "--idle-timeout",
    "max_connections": "--max-connections", "max_body_buffer": "--max-body-buffer", "max_faults": "--max-faults",
}
