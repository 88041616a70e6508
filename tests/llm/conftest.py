"""Fixtures of the LLM tests: scripted backends and gateway processes on ephemeral 127.0.0.1 ports."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .scripted import Scripted, serve


def free_port() -> int:
    from tests.conftest import reserve_port

    return reserve_port()


def wait_http(url: str, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{url}: the process exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=0.5).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="module")
def backends() -> Iterator[tuple[Scripted, Scripted]]:
    primary, fallback = Scripted("primary"), Scripted("fallback")
    with serve(primary, fallback):
        yield primary, fallback


@pytest.fixture
def scripted(backends: tuple[Scripted, Scripted]) -> tuple[Scripted, Scripted]:
    """The module's backends, reset to healthy before each test."""
    for b in backends:
        b.reset()
    return backends


def start_gateway(variant: str, primary: str, fallback: str, log: Path, *extra: str) -> tuple[
        subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [sys.executable, "-m", "mlchaos.lab.services.llm_gateway", "--port", str(port), "--name", f"gw-{variant}",
           "--backend", f"primary={primary}", "--backend", f"fallback={fallback}", "--variant", variant, *extra]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/health", proc=proc)
    except BaseException:
        stop(proc)
        raise
    return proc, url
