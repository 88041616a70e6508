"""Regenerate ``k8s-1.37-strict.json`` from the ``kubernetes-validate`` package (run by hand).

    pip install kubernetes-validate==1.37.0
    python tests/k8s/data/vendor_k8s_schemas.py

It takes the strict (``additionalProperties: false``) JSON schemas of the
kinds the lab manifests use and the transitive closure of their definitions,
rewrites the references to point inside the one file, and writes it here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VERSION = "v1.37.0-local-strict"
KINDS = {
    "Deployment": "deployment-apps-v1.json",
    "Service": "service-v1.json",
    "ConfigMap": "configmap-v1.json",
    "HorizontalPodAutoscaler": "horizontalpodautoscaler-autoscaling-v2.json",
    "Job": "job-batch-v1.json",
    "Namespace": "namespace-v1.json",
    # the shapes of the API responses the contract tests replay
    "PodList": "podlist-v1.json",
    "Scale": "scale-autoscaling-v1.json",
    "EventList": "eventlist-v1.json",
    "Status": "status-meta-v1.json",
    "Info": "info-pkg-version.json",
}
PREFIXES = ("/api/_definitions.json#/$defs/", "#/$defs/")


def main() -> None:
    import kubernetes_validate

    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / VERSION
    defs_all: dict[str, Any] = json.loads((root / "_definitions.json").read_text())["$defs"]
    kinds = {k: json.loads((root / f).read_text()) for k, f in KINDS.items()}
    needed: dict[str, Any] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                prefix = next((p for p in PREFIXES if isinstance(v, str) and v.startswith(p)), None)
                if k == "$ref" and prefix is not None:
                    name = v[len(prefix) :]
                    if name not in needed:
                        needed[name] = None
                        needed[name] = walk(defs_all[name])
                    out[k] = "#/$defs/" + name
                else:
                    out[k] = walk(v)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    kinds = {k: walk(v) for k, v in kinds.items()}
    doc = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "description": f"Strict Kubernetes {VERSION} schemas, from the kubernetes-validate package (Apache-2.0).",
        "kinds": kinds,
        "$defs": dict(sorted(needed.items())),
    }
    out = Path(__file__).with_name("k8s-1.37-strict.json")
    out.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    print(out, len(needed), "definitions")


if __name__ == "__main__":
    main()
