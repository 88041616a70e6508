"""The run's load: the open-loop generator as a service the probes read, and its own verdict.

The engine starts the generator an experiment's ``load:`` asks for (the run service
``"load"`` of :data:`mlchaos.registry.SERVICES`: it never imports the load package), lends it to
the probes through the context (``ctx.services["load"]``), journals one tick
per second for the report's charts, and after teardown reads the generator's
own VALID/INVALID judgement, which the verdict needs.  The lag budget it hands
the generator follows the hypothesis's tightest latency bound
(:mod:`mlchaos.budget`).  Mixed into :class:`mlchaos.engine.runner.Runner`.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlchaos.budget import lag_budget
from mlchaos.engine.probing import ProbeRun, _Stop
from mlchaos.plugin import PluginError, Target

if TYPE_CHECKING:
    from mlchaos.spec.experiment import Experiment


class RunLoad:
    """Start, tick and judge the run's load (a mixin of the runner)."""

    experiment: Experiment
    ctx: Any
    targets: dict[str, Target]
    probes: list[ProbeRun]
    _load: Any
    _load_report: Any
    _tasks: list[asyncio.Task[Any]]

    if TYPE_CHECKING:  # provided by the runner
        def log(self, event: str, **fields: Any) -> None: ...
        def _error(self, msg: str) -> None: ...

    def _load_spec(self) -> Any:
        return self.experiment.load

    async def _start_load(self) -> None:
        from mlchaos import registry

        spec = self.experiment.load
        assert spec is not None
        here = Path(self.experiment.source).resolve().parent if Path(self.experiment.source).exists() else None

        def beside(name: str | None) -> str | None:
            """Files named next to the experiment file (bodies, a CA bundle) are found wherever the run starts."""
            if here is None or not name or Path(name).is_absolute() or not (here / name).exists():
                return None
            return str(here / name)

        req = getattr(spec, "request", None)
        if req is not None and (body := beside(getattr(req, "body_file", None))):
            spec = spec.model_copy(update={"request": req.model_copy(update={"body_file": body})})
        if ca := beside(getattr(spec, "ca_file", None)):
            spec = spec.model_copy(update={"ca_file": ca})
        llm = getattr(spec, "llm", None)  # an LLM load's prompts file, like the bodies file
        if llm is not None and (pf := beside(getattr(llm.prompts, "file", None))):
            llm = llm.model_copy(update={"prompts": llm.prompts.model_copy(update={"file": pf})})
            spec = spec.model_copy(update={"llm": llm})
        base_url = None
        tname = getattr(spec, "target", None) or "default"
        if tname in self.targets:
            with contextlib.suppress(PluginError):
                base_url = self.targets[tname].url()
        # the tightest latency bound of the hypothesis sets the generator's schedule-lag budget
        if getattr(spec, "lag_budget", None) is None:
            bounds = [pr.rec.latency_bound for pr in self.probes
                      if pr.role == "steady" and pr.rec.latency_bound is not None]
            spec = spec.model_copy(update={"lag_budget": lag_budget(bounds)})
        self._load = registry.service("load")(spec, base_url=base_url)  # the engine knows the service by name
        try:
            await self._load.start()
        except Exception as exc:
            self._error(f"load generator could not start: {exc}")
            raise _Stop from None
        self.ctx.services["load"] = self._load
        self.log("load-start", target_rate=getattr(spec, "rate", None), url=self._load.url)
        self._tasks.append(asyncio.create_task(self._load_ticks()))

    async def _load_ticks(self) -> None:
        """One journal line per second of load: the report's throughput/latency/error charts."""
        load = self._load
        while True:
            await asyncio.sleep(1.0)
            try:
                w = load.window(1.0)
            except Exception:
                continue
            extra = getattr(w, "tick_extra", None)  # what a kind of load adds (an LLM load: TTFT, goodput …)
            self.log("load-tick", count=w.count, throughput=w.throughput, p50=w.p50, p99=w.p99,
                     error_rate=w.error_rate, errors=dict(w.errors), **(extra() if callable(extra) else {}))

    def _load_validity(self) -> tuple[bool, str] | None:
        rep = self._load_report
        if rep is None:
            return None
        valid = getattr(rep, "valid", None)
        if valid is None:
            return None
        return bool(valid), str(getattr(rep, "invalid_reason", "") or "")

