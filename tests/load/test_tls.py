"""https: the generator against a real TLS server on loopback, certificates from a test CA (trustme)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme

from mlchaos.load import LoadReport, LoadRunner, LoadSpec, run_load
from mlchaos.load.client import build_requests


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(CA bundle, server key + certificate chain) for 127.0.0.1."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    d = tmp_path_factory.mktemp("tls")
    ca_pem, chain = d / "ca.pem", d / "server.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
    return str(ca_pem), str(chain)


@pytest.fixture
def https_url(http_server: Callable[..., str], tls_files: tuple[str, str]) -> str:
    return http_server(tls=(tls_files[1], tls_files[1]))


def test_https_verified_by_the_given_ca(https_url: str, tls_files: tuple[str, str]) -> None:
    assert https_url.startswith("https://")

    async def go() -> LoadReport:
        spec = LoadSpec(rate="300/s", duration="1.5s", processes=1, ca_file=tls_files[0], sample=1.0,
                        lag_budget="1s")
        runner = LoadRunner(spec, https_url + "/json")
        await runner.start()
        await asyncio.sleep(1.0)
        w = runner.window(1.0)
        assert w.samples and w.samples[0]["json"]["model_version"] == "v3"  # bodies decrypted and parsed
        return await runner.wait()

    rep = asyncio.run(go())
    assert rep.scheduled == 450 and rep.completed == 450
    assert rep.errors == {"status": 0, "timeout": 0, "connection": 0}
    assert rep.codes == {200: 450}


def test_https_insecure_skips_verification(https_url: str) -> None:
    rep = run_load(LoadSpec(rate="200/s", duration="1s", processes=1, insecure=True, lag_budget="1s"), https_url)
    assert rep.completed == 200 and sum(rep.errors.values()) == 0


def test_untrusted_certificate_is_a_connection_error_of_its_own_kind(https_url: str) -> None:
    # the system's store does not know the test CA: every request fails, and the report says why
    rep = run_load(LoadSpec(rate="100/s", duration="0.5s", processes=1, lag_budget="1s"), https_url)
    assert not rep.codes  # no request got an HTTP answer
    assert rep.errors["connection"] == rep.scheduled > 0
    assert set(rep.connection_errors) == {"SSLCertVerificationError"}


def test_host_header_omits_the_scheme_default_port() -> None:
    assert b"\r\nHost: h\r\n" in build_requests("h", 443, "/", tls=True)[0]
    assert b"\r\nHost: h:443\r\n" in build_requests("h", 443, "/")[0]
    assert b"\r\nHost: h\r\n" in build_requests("h", 80, "/")[0]
    assert b"\r\nHost: h:80\r\n" in build_requests("h", 80, "/", tls=True)[0]


def test_cli_https(https_url: str, tls_files: tuple[str, str], tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "mlchaos", "load", https_url + "/json", "--rate", "200/s", "--duration", "1s",
         "--cacert", tls_files[0], "--json", "--lag-budget", "1s"],
        capture_output=True, text=True, timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["codes"] == {"200": 200}
    human = subprocess.run(
        [sys.executable, "-m", "mlchaos", "load", https_url, "--rate", "50/s", "--duration", "0.5s",
         "--lag-budget", "1s"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"},
    )
    assert "failed connects: SSLCertVerificationError" in human.stdout
    missing = tmp_path / "nope.pem"
    bad = subprocess.run([sys.executable, "-m", "mlchaos", "load", https_url, "--cacert", str(missing)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and f"--cacert: {missing}: no such file" in bad.stderr
    scheme = subprocess.run([sys.executable, "-m", "mlchaos", "load", "ftp://127.0.0.1/"],
                            capture_output=True, text=True, timeout=60)
    assert scheme.returncode == 2 and "only http:// and https://" in scheme.stderr


def test_experiment_over_https_finds_its_ca_file_beside_it(https_url: str, tls_files: tuple[str, str],
                                                          tmp_path: Path) -> None:
    """A run started from another directory: ``ca_file: ca.pem`` is the file next to the experiment."""
    exp_dir, elsewhere = tmp_path / "exp", tmp_path / "elsewhere"
    exp_dir.mkdir()
    elsewhere.mkdir()
    (exp_dir / "ca.pem").write_bytes(Path(tls_files[0]).read_bytes())
    (exp_dir / "exp.yaml").write_text(f"""
title: https target
target: {{platform: http, url: "{https_url}"}}
load: {{rate: 300/s, ca_file: ca.pem, request: {{path: /json}}}}
steady_state:
  - {{name: p90, probe: latency, percentile: 90, window: 1s, max: 1s}}
  - {{name: errors, probe: error-rate, window: 1s, max: 0%}}
phases: {{baseline: 1500ms, recovery: 200ms}}
""")
    # the target's own preflight (httpx) trusts the test CA through the standard variable; the load
    # generator gets it from ca_file, resolved beside the experiment (a wrong path would be an error)
    env = {**os.environ, "SSL_CERT_FILE": tls_files[0]}
    out = subprocess.run([sys.executable, "-m", "mlchaos", "run", str(exp_dir / "exp.yaml"), "--journal",
                          str(tmp_path / "j.jsonl"), "-q"], capture_output=True, text=True, timeout=120,
                         cwd=elsewhere, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
