"""The lab's topology as data: which processes each system runs, with what arguments, calling whom.

The supervisor reads :data:`TABLE` and nothing else to know what to start:
adding a lab service is one module under :mod:`mlchaos.lab.services` plus one
:class:`Entry` here.  An entry's ``args`` is a template: a ``{placeholder}``
token is replaced by its value for that process (:func:`expand`), and a
placeholder whose value is a list is spliced in (``{backends}`` becomes
``--backend a=url --backend b=url``; ``{store}`` becomes ``--store URL`` or
nothing).  The placeholders are documented in :data:`PLACEHOLDERS`; the test
``tests/lab/test_topology.py`` checks that every entry uses only those, that
every dependency names an entry listed before it, and that every module has a
``main``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SYSTEMS: tuple[str, ...] = ("serving", "realtime", "batch", "recommender", "llm")
DEFAULT_SYSTEMS: tuple[str, ...] = ("serving", "realtime", "batch", "recommender")
"""What ``lab up`` starts when no system is named: ``llm`` is opt-in (it trains two language models at
build time and its two engines keep the cores busy while they generate)."""
VARIANTS: tuple[str, ...] = ("naive", "mitigated", "silent-zeros")
ROLES: tuple[str, ...] = ("replica", "lb", "proxy", "service", "job")

#: Friendly names for each system's model endpoint, in addition to every process's own name.
ENTRYPOINTS: dict[str, str] = {
    "serving": "serving-lb",
    "realtime": "fraud",
    "recommender": "recommender",
    "features": "features-lb",
    "llm": "llm-gateway",
}

PLACEHOLDERS: dict[str, str] = {
    "models": "the lab's models directory",
    "model_version": "the process's model alias (``current``) or version",
    "load_delay": "the supervisor's --load-delay (seconds a model takes to load)",
    "variant": "the system's variant (``silent-zeros`` only for realtime; others read it as naive)",
    "backends": "``--backend name=url`` for every live replica of the entry's group",
    "feature_db": "the SQLite online store",
    "store": "``--store URL`` when the lab runs on Redis, else nothing",
    "dependency": "where the process sends its dependency calls (an override, else ``calls``' URL)",
    "listen": "host:port the process listens on (a fault proxy's own flag)",
    "upstream": "host:port of the entry a fault proxy forwards to",
    "control": "host:port of a fault proxy's control API",
    "routes": "``--backend label=url`` for each ``(label, entry)`` of the entry's ``routes``, in order",
}

PROXY_MODULE = "mlchaos.proxy.__main__"
LLM_ENGINE = "mlchaos.lab.services.llm_engine"


@dataclass(frozen=True)
class Entry:
    """One process (or one replica set) of a lab system.

    ``name`` is the process name, or for a replica set (``replicas`` > 0 or
    ``autoscaled``) the prefix of ``<name>-0``, ``<name>-1``, ...  A ``job``
    has no long-lived process: it runs on demand (``python -m <module>``) and
    the supervisor only reports it.
    """

    name: str
    system: str
    role: str
    module: str
    args: tuple[str, ...] = ()
    group: str | None = None
    """Replicas and the balancer in front of them share a group (the balancer's ``{backends}``)."""
    replicas: int = 0
    autoscaled: bool = False
    """Replica count from the supervisor's autoscaler (its policy's ``min_replicas`` at start)."""
    model_version: str | None = None
    depends_on: tuple[str, ...] = ()
    """Entries this one needs at run time (its backends, upstream or dependency)."""
    upstream: str | None = None
    """A fault proxy's upstream entry."""
    calls: str | None = None
    """The entry a service's ``{dependency}`` points to (a fault proxy), unless overridden at run time."""
    variant_route: tuple[str, str] | None = None
    """How the variant is switched at run time: ``(admin path, JSON key)``, posted to this process."""
    own_flags: bool = False
    """The process takes only ``args`` (no ``--name``/``--port``): a fault proxy has flags of its own."""
    control_port: bool = False
    """The process has a second port for its control API (a fault proxy)."""
    routes: tuple[tuple[str, str], ...] = ()
    """Named backends that are other entries (``{routes}``): the LLM gateway's primary and fallback."""

    @property
    def replicated(self) -> bool:
        return self.replicas > 0 or self.autoscaled

    @property
    def port_names(self) -> tuple[str, ...]:
        """The keys of this entry's ports in ``Lab.up(ports=...)`` (a replica set: its first replica's)."""
        base = f"{self.name}-0" if self.replicated else self.name
        if self.role == "job":
            return ()
        return (base, f"{base}-control") if self.control_port else (base,)


_MODELS = ("--models", "{models}")
_PROXY_ARGS = ("--listen", "{listen}", "--upstream", "{upstream}", "--mode", "http", "--control", "{control}")
_ENGINE = ("--model", "{models}", "--kv-tokens", "4096", "--max-batch", "16")
_GATEWAY = (
    # the mitigated gateway's defences, sized for the lab engines on 2 cores (docs/llm.md, "The lab system")
    "--ttft-timeout", "1", "--chunk-timeout", "0.5", "--max-attempts", "3", "--max-inflight", "4",
    "--max-queue", "4", "--queue-timeout", "1", "--retry-after", "1", "--deadline", "30",
    "--canary-interval", "0.5", "--canary-timeout", "0.5",
)

TABLE: tuple[Entry, ...] = (
    # serving: 3 model replicas behind a load balancer (naive or readiness-gated)
    Entry("serving", "serving", "replica", "mlchaos.lab.services.model_server",
          (*_MODELS, "--version", "{model_version}", "--load-delay", "{load_delay}"),
          group="serving", replicas=3, model_version="current"),
    Entry("serving-lb", "serving", "lb", "mlchaos.lab.services.balancer", ("--mode", "{variant}", "{backends}"),
          group="serving", depends_on=("serving",), variant_route=("/lb/mode", "mode")),
    # realtime: fraud → fault proxy → balancer (always mitigated) → autoscaled feature replicas
    Entry("features", "realtime", "replica", "mlchaos.lab.services.feature_service",
          ("--db", "{feature_db}", "{store}"), group="features", autoscaled=True),
    Entry("features-lb", "realtime", "lb", "mlchaos.lab.services.balancer", ("--mode", "mitigated", "{backends}"),
          group="features", depends_on=("features",)),
    Entry("features-proxy", "realtime", "proxy", PROXY_MODULE,
          ("--listen", "{listen}", "--upstream", "{upstream}", "--mode", "http", "--control", "{control}"),
          depends_on=("features-lb",), upstream="features-lb", own_flags=True, control_port=True),
    Entry("fraud", "realtime", "service", "mlchaos.lab.services.fraud_service",
          (*_MODELS, "--version", "{model_version}", "--feature-url", "{dependency}", "--variant", "{variant}"),
          model_version="current", depends_on=("features-proxy",), calls="features-proxy",
          variant_route=("/admin/variant", "variant")),
    # batch: a job run on demand (offline parquet → failpoint → model → predictions + manifest)
    Entry("batch", "batch", "job", "mlchaos.lab.batch", model_version="current"),
    # recommender: recommendations → fault proxy → user-embedding service
    Entry("embedding", "recommender", "service", "mlchaos.lab.services.embedding_service", _MODELS,
          model_version="recs-v1"),
    Entry("embedding-proxy", "recommender", "proxy", PROXY_MODULE,
          ("--listen", "{listen}", "--upstream", "{upstream}", "--mode", "http", "--control", "{control}"),
          depends_on=("embedding",), upstream="embedding", own_flags=True, control_port=True),
    Entry("recommender", "recommender", "service", "mlchaos.lab.services.recommender_service",
          (*_MODELS, "--embedding-url", "{dependency}", "--variant", "{variant}"),
          model_version="recs-v1", depends_on=("embedding-proxy",), calls="embedding-proxy",
          variant_route=("/admin/variant", "variant")),
    # llm: two engines (a larger primary model, a smaller fallback), a fault proxy in front of each (stream
    # faults act between the gateway and the engine), the gateway (naive or mitigated) in front of both
    # (an engine takes its model, models/llm/<size>.npz, from the last part of its name: primary or fallback)
    Entry("llm-primary", "llm", "service", LLM_ENGINE, _ENGINE, model_version="primary"),
    Entry("llm-fallback", "llm", "service", LLM_ENGINE, _ENGINE, model_version="fallback"),
    Entry("llm-primary-proxy", "llm", "proxy", PROXY_MODULE, _PROXY_ARGS, depends_on=("llm-primary",),
          upstream="llm-primary", own_flags=True, control_port=True),
    Entry("llm-fallback-proxy", "llm", "proxy", PROXY_MODULE, _PROXY_ARGS, depends_on=("llm-fallback",),
          upstream="llm-fallback", own_flags=True, control_port=True),
    Entry("llm-gateway", "llm", "service", "mlchaos.lab.services.llm_gateway", ("--variant", "{variant}",
          "{routes}", *_GATEWAY), depends_on=("llm-primary-proxy", "llm-fallback-proxy"),
          routes=(("primary", "llm-primary-proxy"), ("fallback", "llm-fallback-proxy")),
          variant_route=("/admin/variant", "variant")),
)

BY_NAME: dict[str, Entry] = {e.name: e for e in TABLE}


def entries(system: str) -> list[Entry]:
    """The system's entries, in start order."""
    return [e for e in TABLE if e.system == system]


def callers() -> tuple[str, ...]:
    """Services whose dependency URL can be changed at run time (``POST /dependency``)."""
    return tuple(e.name for e in TABLE if e.calls)


def system_variant(system: str, variant: str) -> str:
    """``silent-zeros`` exists only for realtime; other systems treat it as naive."""
    if variant == "silent-zeros" and system != "realtime":
        return "naive"
    return variant


def expand(template: tuple[str, ...], values: Mapping[str, str | list[str]]) -> list[str]:
    """The argument list for one process: each ``{name}`` token replaced by (or spliced from) its value."""
    out: list[str] = []
    for token in template:
        if token.startswith("{") and token.endswith("}"):
            value = values[token[1:-1]]
            out.extend(value if isinstance(value, list) else [value])
        else:
            out.append(token)
    return out


def placeholders(template: tuple[str, ...]) -> set[str]:
    """The placeholder names a template uses."""
    return {t[1:-1] for t in template if t.startswith("{") and t.endswith("}")}
