"""``mlchaos plugins``: what this installation can inject, measure and target."""

from __future__ import annotations

import json
from typing import Any

import typer


def describe(cls: Any) -> str:
    """A plugin's one-line description: the first paragraph of its class docstring, in plain words.

    The first paragraph, not the first line: a sentence that wraps in the source must not be cut mid-way.
    """
    from mlchaos.cli import plain_words

    doc = (cls.__doc__ or "").strip()
    first = " ".join(line.strip() for line in doc.split("\n\n", 1)[0].splitlines())
    return plain_words(first) or ""


def plugins(
    json_out: bool = typer.Option(False, "--json", help="Print the plugins as JSON on stdout."),
) -> None:
    """List the registered faults, probes and targets (entry points of every installed package)."""
    from mlchaos import registry

    listing: dict[str, list[dict[str, str]]] = {}
    kinds: tuple[registry.Kind, ...] = ("fault", "probe", "target")
    for kind in kinds:
        rows = listing.setdefault(kind + "s", [])
        for name in registry.names(kind):
            try:
                row = {"name": name, "description": describe(registry.get(kind, name))}
            except Exception as exc:  # a broken third-party plugin must not hide the others
                row = {"name": name, "description": "", "error": f"cannot load: {exc}"}
            rows.append(row)
    if json_out:
        print(json.dumps(listing))
        return
    for title, rows in listing.items():
        print(f"{title}:")
        for row in rows:
            print(f"  {row['name']:24} {(row.get('error') and '(' + row['error'] + ')') or row['description']}")
