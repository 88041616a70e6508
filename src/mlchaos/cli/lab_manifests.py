"""``mlchaos lab manifests [SYSTEM] --out DIR``: Kubernetes manifests for the lab systems.

Writes ``namespace.yaml`` and one ``<system>.yaml`` per system (ConfigMap,
Deployments with readiness and liveness probes, Services, an HPA for
serving, a Job for batch), plus the matching experiment files under
``experiments/``, so practice project 1 runs on Minikube:

    mlchaos lab manifests serving --out k8s/
    kubectl apply -f k8s/namespace.yaml -f k8s/serving.yaml
    mlchaos run k8s/experiments/p1-pod-delete.yaml
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ALL = "all"


def manifests(
    system: Annotated[str, typer.Argument(help="serving, realtime, batch, recommender or all.")] = ALL,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the manifests to.")] = Path(
        "k8s"
    ),
    image: Annotated[str, typer.Option(help="Container image with mlchaos installed.")] = "mlchaos:latest",
    namespace: Annotated[str, typer.Option(help="Namespace of the lab.")] = "mlchaos-lab",
    model_version: Annotated[str, typer.Option(help="Model version in the ConfigMap.")] = "current",
    variant: Annotated[str, typer.Option(help="naive or mitigated (services that have variants).")] = "naive",
    replicas: Annotated[
        int | None, typer.Option(help="Replicas of every component (default per system).")
    ] = None,
) -> None:
    """Write Kubernetes manifests (and matching experiments) for the lab systems to --out."""
    import yaml

    from mlchaos.platforms.kubernetes.manifests import (
        SYSTEMS,
        experiment_files,
        namespace_manifest,
        render_lab,
    )

    systems = list(SYSTEMS) if system == ALL else [system]
    for s in systems:
        if s not in SYSTEMS:
            typer.echo(f"unknown system {s!r} (known: {', '.join(SYSTEMS)}, all)", err=True)
            raise typer.Exit(2)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    ns_file = out / "namespace.yaml"
    ns_file.write_text(yaml.safe_dump(namespace_manifest(namespace), sort_keys=False), encoding="utf-8")
    written.append(ns_file)
    for s in systems:
        docs = render_lab(
            s,
            image=image,
            namespace=namespace,
            model_version=model_version,
            variant=variant,
            replicas=replicas,
        )
        path = out / f"{s}.yaml"
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
        written.append(path)
    exp_dir = out / "experiments"
    exp_dir.mkdir(exist_ok=True)
    for name, text in experiment_files().items():
        if namespace != "mlchaos-lab":
            text = text.replace("mlchaos-lab", namespace)
        path = exp_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    for p in written:
        typer.echo(str(p))
