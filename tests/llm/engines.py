"""The lab's two LLM engines as plain processes for a test module (no lab around them).

The models are trained once per module into a temporary directory (as ``lab up llm`` does at build time);
each engine runs ``python -m mlchaos.lab.services.llm_engine`` on an ephemeral 127.0.0.1 port and is
stopped on exit, also when a test fails.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .conftest import free_port, stop, wait_http


@dataclass
class Engines:
    ports: dict[str, int] = field(default_factory=dict)

    def addr(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    def url(self, name: str) -> str:
        return f"http://{self.addr(name)}"


def reserve() -> Engines:
    """Ports for the two engines, chosen before they start (so what talks to them can be set up first)."""
    return Engines({name: free_port() for name in ("primary", "fallback")})


@contextlib.contextmanager
def start_engines(work: Path, engines: Engines | None = None) -> Iterator[Engines]:
    """Train the models into ``work/models/llm`` and run both engines (on ``engines``' ports if given)."""
    from mlchaos.lab.llm.train import build_models

    models = work / "models"
    build_models(models / "llm")
    engines = engines or reserve()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name in ("primary", "fallback"):
            with (work / f"{name}.log").open("wb") as log:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "mlchaos.lab.services.llm_engine", "--port", str(engines.ports[name]),
                     "--name", f"llm-{name}", "--model", str(models)],
                    stdout=log, stderr=subprocess.STDOUT))
        for name, proc in zip(("primary", "fallback"), procs, strict=True):
            wait_http(engines.url(name) + "/health", timeout=60, proc=proc)
        yield engines
    finally:
        for proc in procs:
            stop(proc)


def engine_requests(url: str) -> int:
    """Generation requests an engine has finished, from its own ``/metrics`` (``vllm:request_success_total``)."""
    total = 0.0
    for line in httpx.get(url + "/metrics", timeout=5).text.splitlines():
        if line.startswith("vllm:request_success_total"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def settled_requests(url: str, quiet: float = 0.5, timeout: float = 10.0) -> int:
    """:func:`engine_requests` once it stops changing (an engine counts a request when it finishes it)."""
    import time

    last, deadline = engine_requests(url), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = engine_requests(url)
        if now == last:
            return now
        last = now
    return last
