"""Example experiments shipped with mlchaos, and the tiny service the built-in demo breaks.

The package is the one source of the examples: the seven classic scenarios (with the request
logs their load replays), ``tiny-pause.yaml`` and the Kubernetes experiments. A checkout has
no second copy to keep in step; ``mlchaos examples copy DIR`` writes them out for a user to
read and edit (:func:`catalog` says where each one lands).
"""

from __future__ import annotations

from pathlib import Path

EXAMPLES = Path(__file__).parent
K8S_EXPERIMENTS = EXAMPLES.parent / "platforms" / "kubernetes" / "experiments"


def path(name: str) -> Path:
    return EXAMPLES / name


def catalog() -> dict[str, Path]:
    """Every shipped example file: its path relative to a copy's folder → the packaged file.

    ``scenarios/`` keeps each experiment beside the request log its load replays (a load's
    files are resolved beside the experiment), ``k8s/`` holds the Kubernetes experiments."""
    out: dict[str, Path] = {"tiny-pause.yaml": EXAMPLES / "tiny-pause.yaml"}
    for folder, src in (("scenarios", EXAMPLES / "scenarios"), ("k8s", K8S_EXPERIMENTS)):
        for f in sorted(src.iterdir()):
            if f.is_file() and f.suffix in (".yaml", ".jsonl"):
                out[f"{folder}/{f.name}"] = f
    return out
