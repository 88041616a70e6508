"""A lab's ports stay its own between being chosen and being bound, and a service that cannot bind its
port is named with the reason when the lab gives up waiting for it.

CI (2026-12-05) once waited 180 s for ``embedding-proxy``: the port chosen for it had been handed, in
the meantime, to another process's outgoing connection, and the proxy was restarted on it for ever
with nothing but "not ready after 180s: embedding-proxy" to show for it.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from mlchaos.lab import Lab, LabError
from mlchaos.lab.paths import free_port
from mlchaos.lab.status import ServiceStatus, why_not_ready


def _states(port: int) -> set[str]:
    return {c.status for c in psutil.net_connections("tcp4") if c.laddr and c.laddr.port == port}


def test_a_chosen_port_is_held_by_time_wait_yet_a_server_can_listen_on_it() -> None:
    port = free_port()
    # the kernel counts it as taken: TIME_WAIT on this side, so neither bind(0) nor an outgoing
    # connection is handed it (both skip a port a plain bind would conflict with) ...
    assert psutil.CONN_TIME_WAIT in _states(port)
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))
    # ... while a server that sets SO_REUSEADDR, as uvicorn and the fault proxy do, listens on it
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass


def test_ports_chosen_together_differ() -> None:
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50


def test_why_not_ready_names_the_cause(tmp_path: Path) -> None:
    log = tmp_path / "svc.log"
    log.write_text("starting\nmlchaos proxy: cannot listen: [Errno 98] Address already in use\n\n")
    down = ServiceStatus("svc", "recommender", "proxy", None, 4321, None, False, None, None, restarts=3)
    line = why_not_ready(down, log, lambda port: False)
    assert line == ("svc (not running; restarted 3 times; port 4321 is held by another process; "
                    "svc.log: mlchaos proxy: cannot listen: [Errno 98] Address already in use)")
    up = ServiceStatus("svc", "recommender", "proxy", 77, 4321, None, False, None, None, restarts=1)
    assert why_not_ready(up, tmp_path / "missing.log", lambda port: True) == "svc (pid 77; restarted 1 time)"


def test_a_service_whose_port_is_taken_is_named_with_the_reason(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab()
    with socket.socket() as squatter:  # another program listens on the port pinned for the proxy
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(LabError) as err:
            lab.up(["recommender"], ports={"embedding-proxy": port}, timeout=12)
    text = str(err.value)
    assert re.search(r"not ready after 12s: .*embedding-proxy \(", text), text
    assert "restarted" in text and "cannot listen" in text and "Address already in use" in text, text
