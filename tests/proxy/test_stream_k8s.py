"""The fault proxy in front of a model server in a cluster: rendered manifests validate, and the command runs.

Stream faults reach a model server in Kubernetes through the proxy, as a sidecar of each replica or as a
Service in front (docs/kubernetes.md).  The manifests are validated against the strict Kubernetes schemas
the lab manifests use (tests/k8s/schemas.py); the proxy's rendered command line is started for real here
(with loopback addresses and a temporary token file in place of the pod's), so a flag the proxy does not
know would fail this test, not a pod.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from mlchaos.platforms.kubernetes.render import PROXY_PORT, proxy_in_front, proxy_service, with_proxy_sidecar
from tests.k8s.schemas import validate_k8s


def model_server() -> dict[str, Any]:
    """A vLLM-style OpenAI server Deployment, as users have it (the proxy must not need anything else)."""
    labels = {"app.kubernetes.io/name": "llm"}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "llm", "namespace": "serving", "labels": labels},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                     "name": "server", "image": "vllm/vllm-openai:latest",
                     "args": ["--model", "Qwen/Qwen2.5-0.5B-Instruct", "--port", "8000"],
                     "ports": [{"name": "http", "containerPort": 8000}]}]}}},
    }


def test_sidecar_manifests_validate() -> None:
    dep = with_proxy_sidecar(model_server(), app_port=8000, image="registry.local/mlchaos:0.1")
    svc = proxy_service("llm", "serving", {"app.kubernetes.io/name": "llm"})
    validate_k8s(dep)
    validate_k8s(svc)
    server, proxy = dep["spec"]["template"]["spec"]["containers"]
    assert server == model_server()["spec"]["template"]["spec"]["containers"][0]  # the server is untouched
    assert proxy["args"][proxy["args"].index("--upstream") + 1] == "127.0.0.1:8000"
    assert [p["targetPort"] for p in svc["spec"]["ports"]] == ["proxy"]  # no control port behind a Service


def test_service_in_front_manifests_validate() -> None:
    docs = proxy_in_front("llm-fault-proxy", upstream="llm.serving.svc:80", namespace="serving")
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]
    for d in docs:
        validate_k8s(d)
    assert {p["name"] for p in docs[1]["spec"]["ports"]} == {"http", "control"}
    volume = docs[0]["spec"]["template"]["spec"]["volumes"][0]
    assert volume["secret"]["defaultMode"] == 0o400  # the proxy refuses a token file others can read


def test_the_rendered_command_runs(tmp_path: Path) -> None:
    (container,) = proxy_in_front("p", upstream="127.0.0.1:9")[0]["spec"]["template"]["spec"]["containers"]
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    token.chmod(0o400)
    args = list(container["args"])
    args[args.index("--listen") + 1] = "127.0.0.1:0"
    args[args.index("--control") + 1] = "127.0.0.1:0"
    args[args.index("--token-file") + 1] = str(token)
    assert container["command"] == ["mlchaos", "proxy"] and str(PROXY_PORT) in container["args"][1]
    proc = subprocess.Popen([sys.executable, "-m", "mlchaos.proxy", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["mode"] == "http" and info["upstream"] == "127.0.0.1:9"
    finally:
        proc.terminate()
        proc.wait(10)
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                f.close()
