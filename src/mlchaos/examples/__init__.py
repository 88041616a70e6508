"""Example experiments shipped with mlchaos, and the tiny service the built-in demo breaks."""

from __future__ import annotations

from pathlib import Path

EXAMPLES = Path(__file__).parent


def path(name: str) -> Path:
    return EXAMPLES / name
