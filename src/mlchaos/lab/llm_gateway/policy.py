"""What each gateway variant does, as data: the naive one has none of the defences, the mitigated one all.

One frozen object per variant so that switching at run time
(``POST /admin/variant``) is one assignment, and so that a test or a reader
sees every difference between the two in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Policy:
    """How the gateway treats one request.  ``None`` for a timeout means: wait for ever."""

    variant: str
    ttft_timeout: float | None
    """Seconds from sending the request to a backend to its first content token; then the next backend."""
    chunk_timeout: float | None
    """Seconds allowed between two events of a started stream; past it the stream counts as broken."""
    fallback_after_start: bool
    """A stream that breaks after its first token is resumed on a backend (else the client sees the break)."""
    max_attempts: int
    """Backend attempts per request, first one included (fallbacks, retries and resumes all count)."""
    blind_retries: int
    """Immediate retries on the same backend after any error, before the next backend (naive)."""
    retry_client_errors: bool
    """Retry even a 4xx other than 429 (a request the backend refuses will be refused again: naive)."""
    max_inflight: int | None
    """Requests sent to the backends at once; None: no limit (every request goes straight through)."""
    max_queue: int | None
    """Requests waiting for a slot; one more is answered 429 with ``Retry-After``. None: unbounded."""
    queue_timeout: float
    """Seconds a request may wait for a slot before it is answered 429 (mitigated)."""
    retry_after: int
    """The ``Retry-After`` seconds a 429 from admission control carries."""
    canary_gates: bool
    """Backends a canary generation finds dead are out of rotation (readiness by canary)."""
    deadline: float | None
    """Seconds a request may take in all, across attempts; None: no bound."""


NAIVE = Policy(
    variant="naive",
    ttft_timeout=None,
    chunk_timeout=None,
    fallback_after_start=False,
    max_attempts=4,
    blind_retries=2,
    retry_client_errors=True,
    max_inflight=None,
    max_queue=None,
    queue_timeout=0.0,
    retry_after=1,
    canary_gates=False,
    deadline=None,
)

MITIGATED = Policy(
    variant="mitigated",
    ttft_timeout=2.0,
    chunk_timeout=1.0,
    fallback_after_start=True,
    max_attempts=3,
    blind_retries=0,
    retry_client_errors=False,
    max_inflight=4,
    max_queue=4,
    queue_timeout=2.0,
    retry_after=1,
    canary_gates=True,
    deadline=30.0,
)

VARIANTS = ("naive", "mitigated")


def for_variant(variant: str, **overrides: object) -> Policy:
    """The variant's policy with ``overrides`` (the process's flags) applied; naive keeps its missing defences."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    base = NAIVE if variant == "naive" else MITIGATED
    if variant == "naive":
        return base  # the flags tune the defences, and naive has none to tune
    given = {k: v for k, v in overrides.items() if v is not None}
    return replace(base, **given)  # type: ignore[arg-type]
