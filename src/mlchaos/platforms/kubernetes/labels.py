"""Labels that make every object mlchaos creates findable without runner state.

Why labels and not a local list: a runner can die by ``kill -9``; what it
created in a cluster must still be found and removed by ``mlchaos stop`` on
the same machine.  Every Chaos Mesh object therefore carries

* ``mlchaos.io/run-id``: the run that created it (journal cross-reference),
* ``mlchaos.io/machine``: the machine that created it (``stop`` deletes by
  this label with one delete-collection call per kind and namespace),
* ``app.kubernetes.io/managed-by: mlchaos``.

Label values are limited to 63 characters of ``[A-Za-z0-9._-]`` starting and
ending with an alphanumeric, so free-form ids are sanitised here, in one place.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket

RUN_ID_LABEL = "mlchaos.io/run-id"
MACHINE_LABEL = "mlchaos.io/machine"
FAULT_LABEL = "mlchaos.io/fault"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "mlchaos"
RUN_ID_ANNOTATION = "mlchaos.io/run-id-full"
ENV_MACHINE_ID = "MLCHAOS_MACHINE_ID"

_BAD = re.compile(r"[^A-Za-z0-9._-]+")
_DNS_BAD = re.compile(r"[^a-z0-9-]+")


def label_value(text: str) -> str:
    """Turn any text into a valid label value (<= 63 chars, alnum at both ends).

    Long values keep a short hash suffix so two long ids never collapse into
    the same label value.
    """
    clean = _BAD.sub("-", text).strip("-._")
    if len(clean) > 63:
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        clean = clean[:54].rstrip("-._") + "-" + digest
    return clean or "none"


def dns_name(*parts: str, limit: int = 63) -> str:
    """A DNS-1123 label built from ``parts`` (lower case, '-' separated, <= ``limit``)."""
    raw = "-".join(p for p in parts if p)
    clean = _DNS_BAD.sub("-", raw.lower()).strip("-")
    if len(clean) > limit:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
        clean = clean[: limit - 9].rstrip("-") + "-" + digest
    return clean or "mlchaos"


def machine_id() -> str:
    """This machine's label value: ``$MLCHAOS_MACHINE_ID`` or host name plus a short hash.

    The hash includes ``/etc/machine-id`` when present, so two hosts with the
    same short name (containers, CI runners) still get different values.
    """
    env = os.environ.get(ENV_MACHINE_ID)
    if env:
        return label_value(env)
    host = socket.gethostname() or "host"
    seed = host
    try:
        with open("/etc/machine-id", encoding="ascii") as fh:
            seed += fh.read().strip()
    except OSError:
        pass
    digest = hashlib.sha256(seed.encode()).hexdigest()[:8]
    return label_value(f"{host[:40]}-{digest}")


def owner_labels(run_id: str, *, fault: str | None = None, machine: str | None = None) -> dict[str, str]:
    """The labels every object created by a run carries (see module docstring)."""
    labels = {
        RUN_ID_LABEL: label_value(run_id),
        MACHINE_LABEL: machine or machine_id(),
        MANAGED_BY_LABEL: MANAGED_BY,
    }
    if fault:
        labels[FAULT_LABEL] = label_value(fault)
    return labels


def machine_selector(machine: str | None = None) -> str:
    """The label selector that finds every object this machine created."""
    return f"{MACHINE_LABEL}={machine or machine_id()},{MANAGED_BY_LABEL}={MANAGED_BY}"
