"""The contract between the engine and its plugins (faults, probes, targets).

The engine knows a plugin only by the name it is registered under (entry
point groups ``mlchaos.faults``, ``mlchaos.probes``, ``mlchaos.targets``) and
by the small base classes below.  A plugin module must stay cheap to import:
heavy libraries go inside methods, so ``mlchaos validate`` can load the spec
model of a plugin without paying for what the plugin drives.

Why these shapes:

* A fault has exactly one obvious job per method (Toxiproxy's toxics are the
  model): ``preflight`` proves it *can* be injected before anything is
  touched, ``intent`` plans the injection and says how to undo it before
  anything is touched (the runner writes that record ahead), ``inject`` does
  it and returns what it actually hit, ``remove`` undoes it, and ``revert``
  undoes it again from a lease or intent record alone, with no runner state,
  which is what lets a watchdog or ``mlchaos stop`` clean up after a runner
  that died by ``kill -9`` at any point, even in the middle of ``inject``.
* A probe only measures.  Tolerances are common fields evaluated by the
  engine, so every probe gets ``max``/``min``/``between``/``equals`` and the
  same "insufficient data" rule for free.
* A target is where faults and probes point: it resolves names to PIDs or
  URLs, and proves it is reachable during preflight.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mlchaos.spec.types import Duration, Quantity

if TYPE_CHECKING:
    from mlchaos.contract.lease import Lease


class PluginError(Exception):
    """A plugin could not do its job; the message is shown to the user as is."""


class FaultError(PluginError):
    """A fault could not be injected, removed or checked (the run becomes ``errored``)."""


class ProbeError(PluginError):
    """A probe could not measure (treated as a failed observation, never as a pass)."""


class TargetError(PluginError):
    """A target is unreachable or misconfigured (the run becomes ``errored``)."""


class StrictModel(BaseModel):
    """Base of every spec model: unknown keys are errors, values are validated on assignment.

    No float field takes ``.inf`` or ``.nan``: a weight, a probability or a bound that is
    not a number would poison every sum and comparison the engine makes with it.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_default=True, allow_inf_nan=False)


class CommandAction(StrictModel):
    """A command mlchaos runs itself: a ``command`` step in ``method``, or a fault's ``revert`` action.

    Shell-free on purpose: ``argv`` is executed as is (no quoting, globbing or
    ``$VAR`` expansion by a shell), so a path with a space or a value taken
    from a variable can never become a second command.  Write
    ``argv: [sh, -c, "..."]`` when a shell is really wanted.  It runs in its
    own process group, which is killed at ``timeout``.
    """

    argv: list[str] = Field(min_length=1, description="The program and its arguments, e.g. [systemctl, restart, x].")
    timeout: Duration = Field(60.0, description="Kill the command's process group after this long (an error).")
    env: dict[str, str] = Field(default_factory=dict, description="Added to mlchaos's own environment.")
    cwd: str | None = Field(None, description="Working directory; default: mlchaos's own.")
    expect_exit: int = Field(0, description="The exit code that means success; any other is an error.")

    @field_validator("argv")
    @classmethod
    def _argv_program(cls, v: list[str]) -> list[str]:
        if not v[0].strip():
            raise ValueError("argv[0] (the program) must not be empty")
        return v

    @field_validator("env", mode="before")
    @classmethod
    def _env_text(cls, v: Any) -> Any:
        # ``PORT: 8080`` is an int in YAML; an environment holds text, so scalars are written as YAML wrote them
        if isinstance(v, dict):
            return {k: (str(x).lower() if isinstance(x, bool) else str(x)) if isinstance(x, int | float) else x
                    for k, x in v.items()}
        return v

    @field_validator("timeout")
    @classmethod
    def _timeout_positive(cls, v: float) -> float:
        if not 0 < v <= 86400:
            raise ValueError("timeout must be above 0 and at most 24h")
        return v


class FaultSpec(StrictModel):
    """Fields common to every fault step in ``method``."""

    fault: str = Field(description="Registered fault name, e.g. 'process-pause'.")
    name: str | None = Field(None, description="Label used in the journal and report.")
    target: str = Field("default", description="Name of the target this fault acts on.")
    at: Duration = Field(0.0, description="Offset from the start of the fault phase, e.g. '5s'.")
    duration: Duration | None = Field(
        None, description="How long the fault stays; default: until the end of the fault phase."
    )
    revert: CommandAction | None = Field(
        None,
        description=(
            "A command run when the fault is removed, after its own removal (e.g. restart the server so it "
            "re-reads restored files); kept in the fault's lease, so the watchdog runs it after a crash too."
        ),
    )


class ProbeSpec(StrictModel):
    """Fields common to every probe, with the tolerance the engine evaluates."""

    probe: str = Field(description="Registered probe name, e.g. 'http'.")
    name: str | None = Field(None, description="Label used in the journal and report.")
    target: str = Field("default", description="Name of the target this probe observes.")
    window: Duration | None = Field(None, description="Observation window for windowed probes, e.g. '10s'.")
    max: Quantity | None = Field(None, description="Upper bound (inclusive); units allowed: '100ms', '1%'.")
    min: Quantity | None = Field(None, description="Lower bound (inclusive).")
    between: tuple[Quantity, Quantity] | None = Field(None, description="Inclusive band [low, high].")
    equals: Any = Field(None, description="Exact value expected (numbers, strings, booleans).")
    above: Quantity | None = Field(None, description="Abort conditions: trips when the value is above.")
    below: Quantity | None = Field(None, description="Abort conditions: trips when the value is below.")


@dataclasses.dataclass
class Measurement:
    """One observation.  ``value`` None with ``insufficient`` set means 'cannot tell'."""

    value: Any
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)
    samples: int | None = None
    insufficient: str | None = None
    window: float | None = None
    """Seconds the value summarises, ending now (a windowed probe); None: one request, sent when
    ``measure`` was called.  The engine attributes the evaluation to the fault window by this span."""
    fraction: Fraction | None = None
    """The value as an exact fraction when it is a count ratio (missing / seen): the verdict compares it
    exactly, so ``1 - 99/100`` never breaches ``max: 1%`` by a float artefact."""
    instrument: dict[str, Any] | None = None
    """The health of the instrument that measured (e.g. the load generator's lag over the window):
    ``{"ok": False, "why": ...}`` makes the evaluation evidence of nothing, neither pass nor fail."""

    @classmethod
    def share(cls, count: int, total: int, detail: dict[str, Any] | None = None, **kw: Any) -> Measurement:
        """A count ratio (``count`` of ``total``): the float for people, the exact fraction for the verdict."""
        f = Fraction(count, total)
        return cls(float(f), detail if detail is not None else {}, samples=kw.pop("samples", total), fraction=f,
                   **kw)


@dataclasses.dataclass
class Applied:
    """What an injection really did: the only evidence a run may be judged on."""

    targets: list[str]
    planned: dict[str, Any] = dataclasses.field(default_factory=dict)
    actual: dict[str, Any] = dataclasses.field(default_factory=dict)
    undo: dict[str, Any] = dataclasses.field(default_factory=dict)
    """JSON-able record sufficient for :meth:`Fault.revert` with no runner state."""


class Context(abc.ABC):
    """What the engine lends a plugin during a run."""

    run_id: str
    state_dir: Any
    lease_ttl: float

    @abc.abstractmethod
    def target(self, name: str) -> Target: ...

    @abc.abstractmethod
    def log(self, event: str, **fields: Any) -> None:
        """Append an event to the run's journal."""

    @property
    def phase(self) -> str:
        """The run's current phase (preflight, baseline, fault, recovery): lets a probe learn its reference."""
        return "unknown"

    @property
    @abc.abstractmethod
    def services(self) -> Mapping[str, Any]:
        """Shared run services (e.g. the running load generator under 'load')."""


class Fault(abc.ABC):
    """A controlled failure.  Subclasses set ``Spec`` and implement inject/remove/revert."""

    Spec: ClassVar[type[FaultSpec]] = FaultSpec
    preflight_timeout: ClassVar[float] = 15.0
    """Seconds the engine waits for ``preflight`` before the run is errored.  A plugin whose preflight
    imports a heavy SDK (Feast: ~5 s of CPU, three times that on a busy host) raises it; it bounds
    only the read-only check, never ``inject``, whose bound keeps an abort fast."""

    def __init__(self, spec: FaultSpec, ctx: Context) -> None:
        self.spec = spec
        self.ctx = ctx

    async def preflight(self) -> dict[str, Any]:
        """Prove the fault can be injected (targets exist, permissions hold); touch nothing.

        Return the planned blast radius for the journal and the dry run.
        """
        return {}

    async def intent(self, lease: Lease) -> dict[str, Any] | None:
        """Decide what ``inject`` will touch, touch nothing, and return the undo record for it.

        The runner writes this record to disk (fsynced) *before* calling
        :meth:`inject`, so a runner killed at any point of the injection leaves
        a record that :meth:`revert` can act on.  It must therefore be a record
        ``revert`` accepts whether the injection never began, half happened or
        completed: every PID about to be stopped (with its start time), the
        proxy rule id chosen ahead and passed to the proxy, the backup path of
        a file about to be swapped...  ``inject`` must then do exactly what
        was planned here (store the plan on ``self``), and may return a
        narrower ``Applied.undo``, which replaces the intent's record.

        The default returns None: "no plan".  The runner still writes the
        intent, so a half-injected fault of such a plugin is *visible* (the
        watchdog's log and ``mlchaos stop`` name its plugin, lease and run),
        but nothing reverts it: a plugin whose ``inject`` can leave something
        behind when the process dies half way must implement this.
        """
        return None

    @abc.abstractmethod
    async def inject(self, lease: Lease) -> Applied:
        """Inject the fault and return what was actually hit (the plan of :meth:`intent`, if any)."""

    @abc.abstractmethod
    async def remove(self) -> None:
        """Undo the fault.  Must be idempotent: it may run after a lease already expired."""

    async def renew(self, lease: Lease) -> None:  # noqa: B027 - optional hook
        """Extend a lease held by an external holder (e.g. a fault proxy).  Local leases need nothing."""

    async def observed(self) -> dict[str, Any]:
        """Counts the holder saw (requests seen/affected) for the report; optional."""
        return {}

    @classmethod  # noqa: B027 - optional hook
    def revert(cls, undo: dict[str, Any]) -> None:
        """Undo from a lease or intent record alone (watchdog, ``mlchaos stop``).  Synchronous and idempotent.

        ``undo`` is either what :meth:`intent` planned (the injection may not
        have begun, or stopped half way) or what :meth:`inject` returned; both
        must be safe to revert any number of times.
        """


class Probe(abc.ABC):
    """Something measured.  Subclasses set ``Spec`` and implement ``measure``."""

    Spec: ClassVar[type[ProbeSpec]] = ProbeSpec
    unit: ClassVar[str] = ""
    """Unit of the value for display ('s', 'ratio', ...)."""

    def __init__(self, spec: ProbeSpec, ctx: Context) -> None:
        self.spec = spec
        self.ctx = ctx

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Begin background collection if the probe needs it."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Stop background collection."""

    @abc.abstractmethod
    async def measure(self) -> Measurement:
        """Return the current value (over ``spec.window`` where it applies)."""

    def value_unit(self) -> str:
        """Unit of this probe's value as configured (a probe whose unit depends on its spec overrides)."""
        return self.unit

    def latency_bound(self) -> float | None:
        """The latency this probe holds the system to (seconds), if its value is one.

        The engine sizes the instruments' lag budget from it (10 % of the tightest bound): a 5 ms
        stall of the load generator does not matter to ``p99 < 100 ms`` and decides ``p99 < 20 ms``.
        """
        if self.value_unit() != "s":
            return None
        bounds = [b for b in (self.spec.max, self.spec.between[1] if self.spec.between else None) if b is not None]
        return min(bounds) if bounds else None


class TargetSpec(StrictModel):
    platform: str = Field(description="Registered target platform, e.g. 'http', 'process', 'lab'.")


class Target(abc.ABC):
    """A system under test.  Resolves what faults and probes point at."""

    Spec: ClassVar[type[TargetSpec]] = TargetSpec

    def __init__(self, spec: TargetSpec, ctx: Context) -> None:
        self.spec = spec
        self.ctx = ctx

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Start what the experiment owns (e.g. a command); default: nothing."""

    @abc.abstractmethod
    async def preflight(self) -> dict[str, Any]:
        """Raise TargetError when unreachable; return facts for the journal."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Stop what ``start`` started."""

    def owned(self) -> list[list[float]]:
        """``[pid, start_time]`` of process groups this target started and must not outlive the run.

        The runner records them; if it dies by ``kill -9``, the watchdog stops them.
        """
        return []

    def url(self, path: str = "") -> str:
        raise TargetError(f"target platform {self.spec.platform!r} has no URL")

    def pids(self, selector: str | None = None) -> list[int]:
        raise TargetError(f"target platform {self.spec.platform!r} has no processes")

    def footprint(self) -> list[int]:
        """This machine's processes whose CPU use is the system's own doing (their descendants count too).

        A breach measured while the host had no idle CPU is evidence only when the system itself, not
        some other program, used it (:mod:`mlchaos.engine.cpushare`).  Default: :meth:`pids`, or none
        (a remote system: every local process but mlchaos's counts as someone else's).  Called every
        few seconds from a thread: it must be quick; what it raises counts as naming nothing.
        """
        try:
            return self.pids()
        except PluginError:
            return []


Hook = Callable[[], Awaitable[None]]
