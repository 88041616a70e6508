"""The demo end to end: the seven classic scenarios on the lab, naive vs mitigated, and the report in a browser.

Real lab processes, real load, real faults on 127.0.0.1.  Slow (about three
minutes on 2 cores) and run in CI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlchaos.cli.demo import SCENARIOS, scenario_path
from mlchaos.spec.loader import load_file

CLASSIC = [s for s in SCENARIOS if "llm" not in s.systems]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_every_scenario_is_a_packaged_example() -> None:
    from mlchaos.examples import catalog

    for s in SCENARIOS:
        shipped = scenario_path(s)
        assert catalog()[f"scenarios/{s.file}"] == shipped, s.file  # what `mlchaos examples copy` hands out
        v = load_file(shipped)
        assert v.targets["default"].platform == "lab"
        assert v.faults, f"{s.file} injects nothing"


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found or os.geteuid() != 0:
        return found
    subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], capture_output=True, timeout=900,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return shutil.which("chromium")


@pytest.mark.slow
@pytest.mark.timeout(900)  # ten scenarios, naive and mitigated: ~250 s on a quiet 2-core host
def test_demo_gives_every_expected_verdict_and_a_report_that_renders(tmp_path: Path) -> None:
    out = tmp_path / "report"
    # The three LLM scenarios run through the demo's own code path (run_demo) in test_llm_scenarios.py,
    # with checks of their own; running them here again would add ~2.5 min of CI for nothing new.
    only = [arg for s in CLASSIC for arg in ("--only", s.name)]
    r = subprocess.run([sys.executable, "-m", "mlchaos", "demo", "--out", str(out), "--quiet",
                        "--lab-dir", str(tmp_path / "lab"), *only], capture_output=True, text=True, timeout=900)
    summary = json.loads((out / "summary.json").read_text())
    runs = summary["runs"]
    got = {(x["scenario"], x["variant"]): x for x in runs}
    assert len(runs) == 2 * len(CLASSIC), r.stdout + r.stderr
    for s in CLASSIC:
        naive, mitigated = got[(s.name, "naive")], got[(s.name, "mitigated")]
        assert naive["status"] in ("failed", "aborted"), f"{s.name} naive: {naive['status']}: {naive['reason']}"
        assert mitigated["status"] == "passed", f"{s.name} mitigated: {mitigated['status']}: {mitigated['reason']}"
        for x in (naive, mitigated):
            for key in ("scenario", "variant", "status", "exit_code", "reason", "decided_by", "faults", "probes"):
                assert key in x
            assert x["faults"] and all(f["injected_at"] and f["targets"] for f in x["faults"])
        assert naive["decided_by"], f"{s.name}: no probe named as the reason"
        assert naive["exit_code"] in (1, 3) and mitigated["exit_code"] == 0
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    n = 2 * len(CLASSIC)
    assert f"{n}/{n} verdicts as expected" in r.stdout
    assert (out / "junit.xml").read_text().count("<testcase") == n
    final = [p for p in (out / "journals").glob("*.jsonl") if "-attempt" not in p.name]
    assert len(final) == n
    page = (out / "index.html").read_text()
    for x in runs:  # a re-run (after an unexpected verdict) is never silent
        for a in x["earlier_attempts"]:
            assert (out / "journals" / a["journal"]).exists() and f"attempt {a['attempt']} was" in page
            assert f"attempt {a['attempt']} was {a['status']}" in r.stdout

    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium is not installable here")
    url = (out / "index.html").as_uri()
    profile = tmp_path / "chromium-profile"
    dom = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr",
                          "--v=0", "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert html.count("<svg") >= n * 2, "charts did not render"
    assert html.count("<path d=\"M") >= n, "charts have no data lines"
    assert "fault:" in html  # shaded fault windows
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "demo-report.png"
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}",
                    "--window-size=1200,2000", url], capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000
