"""Blast radius and keep-N-ready on pods, labels, and the ``mlchaos k8s`` CLI (no cluster involved)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mlchaos.contract.blast import BlastRadiusError
from mlchaos.examples import K8S_EXPERIMENTS
from mlchaos.platforms.kubernetes.labels import dns_name, label_value, machine_id, machine_selector
from mlchaos.platforms.kubernetes.selection import PodRef, choose_pods, scale_target
from tests.k8s.schemas import validate_chaos


def pods(ready: int, not_ready: int = 0) -> list[PodRef]:
    return [PodRef("ns", f"r{i}", True) for i in range(ready)] + [
        PodRef("ns", f"n{i}", False) for i in range(not_ready)
    ]


@pytest.mark.parametrize(
    ("total", "percent", "expected"),
    [(3, 0.34, 2), (3, 0.33, 1), (10, 0.3, 3), (10, 0.31, 4), (4, 0.01, 1), (4, 1.0, 4), (1, 0.5, 1)],
)
def test_percent_rounds_up(total: int, percent: float, expected: int) -> None:
    assert len(choose_pods(pods(total), mode="percent", percent=percent).chosen) == expected


def test_one_count_all() -> None:
    assert len(choose_pods(pods(5)).chosen) == 1
    assert len(choose_pods(pods(5), mode="count", count=3).chosen) == 3
    assert len(choose_pods(pods(5), mode="all").chosen) == 5
    with pytest.raises(BlastRadiusError):
        choose_pods(pods(2), mode="count", count=3)
    with pytest.raises(BlastRadiusError):
        choose_pods([], mode="one")


def test_ready_pods_are_chosen_first_and_choice_is_seeded() -> None:
    sel = choose_pods(pods(3, 2), mode="count", count=3, seed=1)
    assert all(p.ready for p in sel.chosen)
    assert sel.chosen == choose_pods(pods(3, 2), mode="count", count=3, seed=1).chosen
    assert len(choose_pods(pods(2, 2), mode="count", count=3).chosen) == 3


def test_keep_healthy_refuses_or_shrinks() -> None:
    with pytest.raises(BlastRadiusError, match="fewer than 2"):
        choose_pods(pods(3), mode="count", count=2, keep_healthy=2)
    sel = choose_pods(pods(3), mode="count", count=2, keep_healthy=2, on_shortfall="shrink")
    assert len(sel.chosen) == 1 and sel.shrunk and sel.wanted == 2
    # readiness is what counts: 4 pods, 2 ready, keep 2 -> nothing may be hit, even with shrink
    with pytest.raises(BlastRadiusError):
        choose_pods(pods(2, 2), mode="one", keep_healthy=2, on_shortfall="shrink")
    with pytest.raises(BlastRadiusError):
        choose_pods(pods(4), mode="all", keep_healthy=1)
    assert len(choose_pods(pods(4), mode="all", keep_healthy=1, on_shortfall="shrink").chosen) == 3


def test_scale_target() -> None:
    assert scale_target(3, 1, keep_healthy=1) == 1
    assert scale_target(3, 5, keep_healthy=4) == 5  # scaling up never breaks keep-N
    with pytest.raises(BlastRadiusError):
        scale_target(3, 0, keep_healthy=1)
    assert scale_target(3, 0, keep_healthy=2, on_shortfall="shrink") == 2
    with pytest.raises(BlastRadiusError):
        scale_target(2, 0, keep_healthy=2, on_shortfall="shrink")


def test_labels_are_valid_label_values(monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    valid = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
    for text in ["run 2026-11-26T21:00:00Z/x", "a" * 200, "---", "ok"]:
        assert valid.match(label_value(text)), label_value(text)
    assert label_value("a" * 200) != label_value("a" * 199)
    assert len(dns_name("mlchaos", "x" * 100)) <= 63
    monkeypatch.delenv("MLCHAOS_MACHINE_ID")
    assert valid.match(machine_id())
    assert machine_id() == machine_id()
    monkeypatch.setenv("MLCHAOS_MACHINE_ID", "ci/runner 7")
    assert machine_selector() == "mlchaos.io/machine=ci-runner-7,app.kubernetes.io/managed-by=mlchaos"


def test_chaos_faults_require_duration() -> None:
    from pydantic import ValidationError

    from mlchaos.faults.chaosmesh import K8sNetwork

    with pytest.raises(ValidationError, match="duration"):
        K8sNetwork.Spec.model_validate(
            {"fault": "k8s-network", "selector": "a=b", "action": "delay", "latency": "1s"}
        )
    with pytest.raises(ValidationError, match="latency"):
        K8sNetwork.Spec.model_validate(
            {"fault": "k8s-network", "selector": "a=b", "action": "delay", "duration": "1s"}
        )
    with pytest.raises(ValidationError, match="exactly one"):
        K8sNetwork.Spec.model_validate(
            {"fault": "k8s-network", "action": "loss", "loss": "1%", "duration": "1s"}
        )


def test_k8s_render_cli(tmp_path: Path) -> None:
    from mlchaos.cli.k8s import app

    exp = K8S_EXPERIMENTS / "p1-http-delay.yaml"
    result = CliRunner().invoke(app, ["render", str(exp), "--run-id", "r1"])
    assert result.exit_code == 0, result.output
    docs = [d for d in yaml.safe_load_all(result.output) if d]
    assert [d["kind"] for d in docs] == ["HTTPChaos"]
    validate_chaos(docs[0])
    assert "# method[0] k8s-http" in result.output
    api_only = CliRunner().invoke(app, ["render", str(K8S_EXPERIMENTS / "p1-pod-delete.yaml")])
    assert api_only.exit_code == 0 and "through the Kubernetes API" in api_only.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("title: x\nmethod:\n  - {fault: k8s-http, selector: a=b, port: 80, duration: 5s}\n")
    invalid = CliRunner().invoke(app, ["render", str(bad)])
    assert invalid.exit_code == 2
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(exp.read_text().replace("delay: 200ms", "delay: forever"))
    located = CliRunner().invoke(app, ["render", str(wrong)])
    line = next(i for i, ln in enumerate(wrong.read_text().splitlines(), 1) if "delay: forever" in ln)
    assert located.exit_code == 2  # positioned as `mlchaos validate` does, no pydantic report
    assert f"{wrong}:{line}:" in located.output and "method[0].delay: invalid duration 'forever'" in located.output
    assert "pydantic" not in located.output


def test_k8s_render_resolves_variables_and_lists_command_steps(tmp_path: Path) -> None:
    """`k8s render` renders what `run` would run: ${VAR}s resolved (--var, defaults), steps listed."""
    from mlchaos.cli.k8s import app

    exp = K8S_EXPERIMENTS / "p1-http-delay.yaml"
    templ = tmp_path / "templ.yaml"
    text = exp.read_text().replace("delay: 200ms", "delay: ${DELAY:-150ms}")
    step = "    duration: 30s\n  - step: command\n    argv: [kubectl, rollout, restart, deploy/model]\n    at: 1s\n"
    templ.write_text(text.replace("    duration: 30s\n", step, 1))
    default = CliRunner().invoke(app, ["render", str(templ), "--format", "json"])
    assert default.exit_code == 0, default.output
    assert "\"delay\": \"150ms\"" in default.output and "${" not in default.output
    given = CliRunner().invoke(app, ["render", str(templ), "--var", "DELAY=300ms"])
    assert given.exit_code == 0, given.output
    assert "delay: 300ms" in given.output
    assert "# method[1] step: command: runs on this machine: kubectl rollout restart deploy/model" in given.output
    bad = CliRunner().invoke(app, ["render", str(templ), "--var", "no-equals"])
    assert bad.exit_code == 2 and "--var" in bad.output
