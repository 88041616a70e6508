"""``mlchaos plugins``: what this installation can inject, measure and target."""

from __future__ import annotations


def plugins() -> None:
    """List the registered faults, probes and targets (entry points of every installed package)."""
    from mlchaos import registry

    for kind, title in (("fault", "faults"), ("probe", "probes"), ("target", "targets")):
        print(f"{title}:")
        for name in registry.names(kind):  # type: ignore[arg-type]
            try:
                cls = registry.get(kind, name)  # type: ignore[arg-type]
                doc = (cls.__doc__ or "").strip().splitlines()
                line = doc[0] if doc else ""
            except Exception as exc:
                line = f"(cannot load: {exc})"
            print(f"  {name:24} {line}")
