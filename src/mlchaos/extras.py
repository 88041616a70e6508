"""Which optional extra a command or plugin needs, and the one-line error when it is missing.

``pip install mlchaos`` is the light core: engine, spec, CLI, fault proxy, load generator,
the http/process/kubernetes targets and the http/load/prometheus probes. The built-in lab,
data corruption, drift, validation and the rest come with extras (``pyproject.toml``). A
user who runs ``mlchaos demo`` on the core must read which extra to install, not an
``ImportError`` traceback from deep inside the lab; an experiment naming a data fault must
fail validation at the fault's line, not crash at injection. This module is the only place
that knows which extra provides what: the entry point (commands) and the plugin registry
(faults, probes, targets) both ask it, so the rule cannot drift between the two.
"""

from __future__ import annotations

import importlib.util

EXTRAS: dict[str, tuple[str, ...]] = {
    "data": ("pandas", "pyarrow", "pandera"),
    "ml": ("pandas", "pyarrow", "pandera", "sklearn"),
    "lab": ("pandas", "pyarrow", "pandera", "sklearn", "fastapi", "uvicorn", "prometheus_client",
            "purgatory", "aiohttp"),
    "kubernetes": ("kubernetes",),
    "gx": ("pandas", "pyarrow", "pandera", "great_expectations"),
    "mlflow": ("pandas", "pyarrow", "pandera", "sklearn", "mlflow"),
    "distributed": ("locust",),
    "redis": ("redis",),
    "feast": ("pandas", "pyarrow", "pandera", "feast"),
}
"""Extra → the top-level modules it installs that mlchaos imports (a subset of pyproject's lists)."""

NOUN: dict[str, str] = {"lab": "the lab", "data": "the data tools", "ml": "the model tools"}
"""How an extra reads in a sentence: "the demo needs the lab: pip install 'mlchaos[lab]'"."""

COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("lab", "the demo"),
    "lab": ("lab", "mlchaos lab"),
}
"""Command → (extra, how the command reads in the error). ``--help`` works without the extra."""

_LAB = "lab"
PLUGINS: dict[str, dict[str, str]] = {
    "fault": {
        "stale-model": _LAB,
        "stale-features": _LAB,
        "missing-entities": _LAB,
        "out-of-order-writes": _LAB,
        "validation-crash": _LAB,
        "validation-hang": _LAB,
        "validation-nan": _LAB,
        "registry-outage": _LAB,
        "artifact-corrupt": _LAB,
        "training-poison": _LAB,
        "delivery-run": _LAB,
        "file-corrupt": "data",
        "feast-stale-rows": "feast",
        "feast-delete-entities": "feast",
    },
    "probe": {
        "drift": "data",
        "validation": "data",
        "gx-validation": "gx",
        "deployed-model": _LAB,
        "canary-drift": _LAB,
        "shadow-accuracy": _LAB,
    },
    "target": {"lab": _LAB},
}
"""Built-in plugin → the extra it needs; a plugin not listed needs only the core. The
Kubernetes plugins are not listed: rendering and validating a Kubernetes experiment needs no
client, and the target's preflight already names ``mlchaos[kubernetes]`` when it is missing."""


class MissingExtra(Exception):
    """A command or plugin needs an extra that is not installed; the message says what to install."""


def missing(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here (empty: the extra is installed)."""
    return [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]


def message(extra: str, what: str, absent: list[str] | None = None) -> str:
    """One line naming what needs the extra, what is absent and the pip command.

    Printed plainly (never through rich markup, which would swallow ``[lab]``)."""
    noun = NOUN.get(extra, f"the {extra} extra")
    # a whole extra missing is the common case and its module list is noise; a partial one is a clue
    absent = absent or []
    partial = extra not in EXTRAS or len(absent) < len(EXTRAS[extra])
    gone = f" ({', '.join(absent)} not installed)" if absent and partial else ""
    return f"{what} needs {noun}{gone}: pip install 'mlchaos[{extra}]'"


def require(extra: str, what: str) -> None:
    """Raise :class:`MissingExtra` naming the extra when any of its modules is absent."""
    absent = missing(extra)
    if absent:
        raise MissingExtra(message(extra, what, absent))


def for_plugin(kind: str, name: str) -> str | None:
    """The extra a built-in plugin needs, or None when the core is enough."""
    return PLUGINS.get(kind, {}).get(name)


def for_module(module: str) -> str | None:
    """The smallest extra that installs ``module`` (a dotted name is reduced to its top level)."""
    top = module.partition(".")[0]
    found = [extra for extra, mods in EXTRAS.items() if top in mods]
    return min(found, key=lambda e: len(EXTRAS[e])) if found else None


def check_command(args: list[str]) -> None:
    """Raise :class:`MissingExtra` when ``mlchaos ARGS`` names a command whose extra is absent.

    ``-h``/``--help`` anywhere is let through: reading a command's help needs no extra."""
    if not args or args[0] not in COMMANDS or "-h" in args or "--help" in args:
        return
    extra, what = COMMANDS[args[0]]
    require(extra, what)
