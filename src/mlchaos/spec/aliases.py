"""Old spellings of plugin fields, still accepted with a deprecation note.

One name per idea: a blast radius's floor is ``keep_healthy`` everywhere (some
faults once said ``keep_ready``), a lab directory is ``lab_dir`` everywhere (some
specs once said ``dir``).  Renaming a field must not break a user's experiment,
so the loader rewrites an old key to its new name before the plugin's model sees
it, and reports a note (not an error) at the old key's position; ``validate``
and ``run`` print it.  Plugin *names* (``error_rate`` → ``error-rate``) are
aliased in :data:`mlchaos.registry.ALIASES`, next to the names themselves.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FIELDS", "rename_fields"]

#: old field name → new field name, applied to any plugin spec that has the new field and not the old.
FIELDS: dict[str, str] = {"keep_ready": "keep_healthy", "dir": "lab_dir"}


def rename_fields(item: dict[str, Any], fields: dict[str, Any] | Any) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """``item`` with every old key its model (``fields``: its ``model_fields``) knows by a new name renamed.

    Returns the (possibly new) mapping and the (old, new) pairs renamed.  An item that writes
    both spellings keeps both, so the model reports the old one as an unknown key rather than
    one silently winning.
    """
    renamed: list[tuple[str, str]] = []
    for old, new in FIELDS.items():
        if old in item and new not in item and new in fields and old not in fields:
            renamed.append((old, new))
    if not renamed:
        return item, renamed
    out = dict(item)
    for old, new in renamed:
        out = {new if k == old else k: v for k, v in out.items()}
    return out, renamed
