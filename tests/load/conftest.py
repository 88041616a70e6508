"""Fixtures of the load tests: real HTTP servers on 127.0.0.1, always stopped."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.fixture
def http_server() -> Iterator[Callable[..., str]]:
    """Factory: ``http_server(stall_every=1.0, stall_for=0.2, tls=None)`` → base URL of a fresh test server."""
    procs: list[subprocess.Popen[str]] = []

    def start(stall_every: float = 0.0, stall_for: float = 0.0, tls: tuple[str, str] | None = None) -> str:
        """``tls=(cert_chain_pem, key_pem)`` serves https."""
        p = subprocess.Popen(
            [sys.executable, str(HERE / "testserver.py"), "--stall-every", str(stall_every),
             "--stall-for", str(stall_for), *(["--tls-cert", tls[0], "--tls-key", tls[1]] if tls else [])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        procs.append(p)
        assert p.stdout is not None
        line = p.stdout.readline()
        assert line.startswith("PORT "), line
        return f"{'https' if tls else 'http'}://127.0.0.1:{int(line.split()[1])}"

    yield start
    for p in procs:
        if p.stdin is not None:
            p.stdin.close()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

