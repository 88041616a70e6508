"""Plugins by name: faults, probes and targets; and the run services (:data:`SERVICES`).

mlchaos's own plugins are listed in :data:`BUILTIN` below; third-party
packages add theirs through entry points (groups ``mlchaos.faults``,
``mlchaos.probes``, ``mlchaos.targets``) with one line in their own
``pyproject.toml``.  Built-ins are a static table rather than entry points of
mlchaos itself because scanning installed distributions' metadata costs more
than the rest of ``mlchaos validate`` put together (measured in
benchmarks/RESULTS.md); the scan happens only when a name is not built in, or
when every name is listed.  A plugin's module is imported only when an
experiment names it.  Code (tests, notebooks) can also register a class
directly with :func:`register`.
"""

from __future__ import annotations

import difflib
from typing import Any, Literal

Kind = Literal["fault", "probe", "target"]
_GROUPS: dict[str, str] = {"fault": "mlchaos.faults", "probe": "mlchaos.probes", "target": "mlchaos.targets"}
_extra: dict[str, dict[str, Any]] = {"fault": {}, "probe": {}, "target": {}}

BUILTIN: dict[str, dict[str, str]] = {
    "fault": {
        "process-pause": "mlchaos.faults.process:ProcessPause",
        "process-kill": "mlchaos.faults.process:ProcessKill",
        "stale-model": "mlchaos.faults.lab:StaleModel",
        "stale-features": "mlchaos.faults.featurestore:StaleFeatures",
        "missing-entities": "mlchaos.faults.featurestore:MissingEntities",
        "out-of-order-writes": "mlchaos.faults.featurestore:OutOfOrderWrites",
        "feast-stale-rows": "mlchaos.faults.feast:FeastStaleRows",
        "feast-delete-entities": "mlchaos.faults.feast:FeastDeleteEntities",
        "latency": "mlchaos.faults.network:Latency",
        "bandwidth": "mlchaos.faults.network:Bandwidth",
        "timeout": "mlchaos.faults.network:Timeout",
        "reset": "mlchaos.faults.network:Reset",
        "refuse": "mlchaos.faults.network:Refuse",
        "slow-close": "mlchaos.faults.network:SlowClose",
        "http-error": "mlchaos.faults.network:HttpError",
        "abort": "mlchaos.faults.network:Abort",
        "json-corrupt": "mlchaos.faults.network:JsonCorrupt",
        "feast-response": "mlchaos.faults.network:FeastResponse",
        "stream-delay": "mlchaos.faults.network:StreamDelay",
        "stream-stall": "mlchaos.faults.network:StreamStall",
        "stream-cut": "mlchaos.faults.network:StreamCut",
        "stream-corrupt": "mlchaos.faults.network:StreamCorrupt",
        "proxy": "mlchaos.faults.network:Generic",
        "validation-crash": "mlchaos.faults.delivery:ValidationCrash",
        "validation-hang": "mlchaos.faults.delivery:ValidationHang",
        "validation-nan": "mlchaos.faults.delivery:ValidationNan",
        "registry-outage": "mlchaos.faults.delivery:RegistryOutage",
        "artifact-corrupt": "mlchaos.faults.delivery:ArtifactCorrupt",
        "training-poison": "mlchaos.faults.delivery:TrainingPoison",
        "delivery-run": "mlchaos.faults.delivery:DeliveryRun",
        "failpoint": "mlchaos.faults.data:FailpointFault",
        "file-corrupt": "mlchaos.faults.data:FileCorrupt",
        "model-swap": "mlchaos.faults.models:ModelSwap",
        "model-truncate": "mlchaos.faults.models:ModelTruncate",
        "pod-delete": "mlchaos.faults.kubernetes:PodDelete",
        "deployment-scale": "mlchaos.faults.kubernetes:DeploymentScale",
        "k8s-network": "mlchaos.faults.chaosmesh:K8sNetwork",
        "k8s-http": "mlchaos.faults.chaosmesh:K8sHttp",
        "k8s-stress": "mlchaos.faults.chaosmesh:K8sStress",
        "llm-engine-hang": "mlchaos.faults.llm_lab:LlmEngineHang",
    },
    "probe": {
        "http": "mlchaos.probes.http:HttpProbe",
        "latency": "mlchaos.probes.load:LatencyProbe",
        "error-rate": "mlchaos.probes.load:ErrorRateProbe",
        "throughput": "mlchaos.probes.load:ThroughputProbe",
        "ttft": "mlchaos.probes.llm:TTFTProbe",
        "itl": "mlchaos.probes.llm:ITLProbe",
        "tpot": "mlchaos.probes.llm:TPOTProbe",
        "e2e": "mlchaos.probes.llm:E2EProbe",
        "goodput": "mlchaos.probes.llm:GoodputProbe",
        "stream-completion": "mlchaos.probes.llm:StreamCompletionProbe",
        "output-validity": "mlchaos.probes.llm:OutputValidityProbe",
        "canary-generation": "mlchaos.probes.canary_generation:CanaryGenerationProbe",
        "prometheus": "mlchaos.probes.prometheus:PrometheusProbe",
        "drift": "mlchaos.probes.drift:DriftProbe",
        "predictions": "mlchaos.probes.predictions:PredictionsProbe",
        "model-fingerprint": "mlchaos.probes.fingerprint:FingerprintProbe",
        "model-version": "mlchaos.probes.modelversion:ModelVersionProbe",
        "features": "mlchaos.probes.features:FeaturesProbe",
        "validation": "mlchaos.probes.validation:ValidationProbe",
        "gx-validation": "mlchaos.probes.gx:GreatExpectationsProbe",
        "deployed-model": "mlchaos.probes.delivery:DeployedModel",
        "canary-drift": "mlchaos.probes.delivery:CanaryDrift",
        "shadow-accuracy": "mlchaos.probes.delivery:ShadowAccuracy",
        "k8s-ready-pods": "mlchaos.probes.kubernetes:ReadyPods",
        "k8s-deployment-available": "mlchaos.probes.kubernetes:DeploymentAvailable",
        "k8s-events": "mlchaos.probes.kubernetes:PodEvents",
    },
    "target": {
        "process": "mlchaos.targets.process:ProcessTarget",
        "http": "mlchaos.targets.http:HttpTarget",
        "kubernetes": "mlchaos.targets.kubernetes:KubernetesTarget",
        "lab": "mlchaos.targets.lab:LabTarget",
    },
}
#: Old spellings, still accepted: one spelling each (hyphenated) is what the schema, the docs and
#: ``mlchaos plugins`` show, and an experiment that writes an old one gets a deprecation note from
#: ``validate`` and ``run`` (see :func:`deprecated`) instead of breaking.
ALIASES: dict[str, dict[str, str]] = {
    "fault": {},
    "probe": {"error_rate": "error-rate"},
    "target": {},
}
#: Run services: what the engine starts for a run from a top-level section of the experiment and lends
#: to plugins as ``ctx.services[name]`` (probes read the load generator that way).  Each is
#: ``(spec model, service class)``: the loader validates the section with the model without importing
#: the service, and the engine builds the service by name, so neither the spec nor the engine imports
#: the package that implements it (tests/test_import_rules.py).  The service class is built as
#: ``cls(spec, base_url=...)`` and must offer ``async start()``, ``async stop() -> report``,
#: ``window(seconds)`` and ``url``.
SERVICES: dict[str, tuple[str, str]] = {
    "load": ("mlchaos.load.spec:LoadSpec", "mlchaos.load.runner:LoadRunner"),
}
_eps_cache: dict[str, dict[str, Any]] = {}


class UnknownPlugin(LookupError):
    """No plugin is registered under that name; the message suggests close names."""


class PluginNeedsExtra(UnknownPlugin):
    """The plugin exists but needs an extra that is not installed; the message names it.

    A subclass of :class:`UnknownPlugin` so that validation reports it at the plugin's line
    like any name it cannot use (see :mod:`mlchaos.extras`)."""


def _entry_points(kind: str) -> dict[str, Any]:
    if kind not in _eps_cache:
        from importlib.metadata import entry_points

        _eps_cache[kind] = {ep.name: ep for ep in entry_points(group=_GROUPS[kind])}
    return _eps_cache[kind]


def names(kind: Kind) -> list[str]:
    """Every registered name of that kind, sorted."""
    return sorted(set(BUILTIN[kind]) | set(_entry_points(kind)) | set(_extra[kind]))


def deprecated(kind: Kind, name: str) -> str | None:
    """The name to write instead of ``name`` when ``name`` is an old spelling, else None."""
    if name in _extra[kind]:  # registered in this process under that very name: not an alias
        return None
    return ALIASES[kind].get(name)


def register(kind: Kind, name: str, cls: Any) -> None:
    """Register a plugin class in this process (takes precedence over entry points)."""
    _extra[kind][name] = cls


def unregister(kind: Kind, name: str) -> None:
    _extra[kind].pop(name, None)


def suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def get(kind: Kind, name: str) -> Any:
    """The plugin class registered under ``name``; raises :class:`UnknownPlugin`."""
    if name in _extra[kind]:
        return _extra[kind][name]
    name = ALIASES[kind].get(name, name)
    if name in BUILTIN[kind]:
        import importlib

        from mlchaos import extras

        what = f"{kind} {name!r}"
        extra = extras.for_plugin(kind, name)
        absent = extras.missing(extra) if extra else []
        if extra and absent:
            raise PluginNeedsExtra(extras.message(extra, what, absent))
        module, _, attr = BUILTIN[kind][name].partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as exc:  # a module-level import the table above does not know of
            extra = extras.for_module(exc.name or "")
            if extra is None:
                raise
            raise PluginNeedsExtra(extras.message(extra, what, [exc.name or ""])) from None
    ep = _entry_points(kind).get(name)
    if ep is None:
        known = names(kind)
        raise UnknownPlugin(f"unknown {kind} {name!r}{suggest(name, known)} (known: {', '.join(known)})")
    return ep.load()


def _service_attr(name: str, which: int) -> Any:
    import importlib

    if name not in SERVICES:
        raise UnknownPlugin(f"unknown run service {name!r}{suggest(name, sorted(SERVICES))} "
                            f"(known: {', '.join(sorted(SERVICES))})")
    module, _, attr = SERVICES[name][which].partition(":")
    return getattr(importlib.import_module(module), attr)


def service_spec(name: str) -> Any:
    """The spec model of the run service ``name`` (cheap: the service's own module is not imported)."""
    return _service_attr(name, 0)


def service(name: str) -> Any:
    """The class of the run service ``name``; the engine builds it for a run (see :data:`SERVICES`)."""
    return _service_attr(name, 1)
