"""Beyond one machine: Locust's master/worker runtime carrying mlchaos open-loop workers.

This file is a *locustfile*.  Locust provides what is hard to build and
already battle-tested: worker discovery and fan-out over ZeroMQ, ``--processes``,
Kubernetes charts, the master's lifecycle.  Its measurement model is
bypassed, because it is the wrong one for chaos experiments (closed-loop
users, latency from the actual send, 1 ms rounded buckets; see
``research/load.md`` §1.2): no Locust user sends a request and no Locust
request event is fired.

Instead, when the test starts, the master sends each worker its share of the
plan (process ``i`` of ``N`` at rate/N, the same split as local processes);
each worker runs ``python -m mlchaos.load.worker`` (the very generator of a
local run) and forwards its 250 ms interval histograms to the master as
Locust custom messages; the master merges them exactly and writes the
:class:`~mlchaos.load.stats.LoadReport` (with its VALID/INVALID verdict) as
JSON, then quits when every worker is done.

Run (one master, any number of workers, here 2)::

    F=$(python -m mlchaos.load.distributed)      # prints this file's path
    locust -f $F --headless --master --expect-workers 2 -u 2 -r 2 \\
        --mlchaos-url http://10.0.0.5:8000/predict \\
        --mlchaos-spec '{"rate": "20000/s", "duration": "60s", "arrivals": "poisson"}' \\
        --mlchaos-report report.json
    locust -f $F --worker --master-host MASTER      # on each worker machine

``-u`` must equal the number of workers (one idle placeholder user each).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from typing import Any

__all__: list[str] = []

log = logging.getLogger("mlchaos.load.distributed")

if __name__ == "__main__":  # pragma: no cover - tiny helper for shell use
    print(__file__)
    raise SystemExit(0)

import gevent  # noqa: E402
from locust import User, constant, events, task  # noqa: E402
from locust.runners import MasterRunner, WorkerRunner  # noqa: E402

from mlchaos.load.runner import make_report, resolve_url  # noqa: E402
from mlchaos.load.spec import LoadSpec, read_spec_file  # noqa: E402
from mlchaos.load.stats import Aggregator, Interval  # noqa: E402
from mlchaos.load.worker_config import config_for  # noqa: E402


class Placeholder(User):
    """Locust needs a user class; ours only keeps a slot (the generator is not a Locust user)."""

    wait_time = constant(3600)

    @task
    def idle(self) -> None:
        """Nothing: requests are sent by the mlchaos worker process, open-loop."""


@events.init_command_line_parser.add_listener
def _args(parser: Any, **_: Any) -> None:
    parser.add_argument("--mlchaos-spec", default="", help="LoadSpec as JSON (or @path to a JSON/YAML file)")
    parser.add_argument("--mlchaos-url", default="", help="Base URL of the system under load")
    parser.add_argument("--mlchaos-report", default="mlchaos-load-report.json", help="Where the master writes")


def _spec(opts: Any) -> LoadSpec:
    raw = opts.mlchaos_spec
    if raw.startswith("@"):  # read like an experiment file: bounded size, depth and aliases, positioned errors
        return read_spec_file(raw[1:])
    return LoadSpec.model_validate(json.loads(raw))


class _Master:
    """Master side: hand out shares, merge intervals, write the report, quit when all are done."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.agg = Aggregator()
        self.done: dict[int, dict[str, Any]] = {}
        self.errors: list[str] = []
        self.n = 0
        self.spec: LoadSpec | None = None
        self.url = ""
        self.started = 0.0
        env.runner.register_message("mlchaos_tick", self.on_tick)
        env.runner.register_message("mlchaos_done", self.on_done)
        env.runner.register_message("mlchaos_error", self.on_error)
        env.events.test_start.add_listener(self.on_start)

    def on_start(self, environment: Any, **_: Any) -> None:
        opts = environment.parsed_options
        self.spec = _spec(opts)
        self.url = resolve_url(self.spec, opts.mlchaos_url or None)
        workers = sorted(c.id for c in environment.runner.clients.values())
        self.n = len(workers)
        self.started = time.monotonic()
        for i, wid in enumerate(workers):
            cfg = config_for(self.spec, self.url, index=i, count=self.n)
            environment.runner.send_message("mlchaos_config", cfg, client_id=wid)
        log.info("mlchaos: plan sent to %d workers (%s)", self.n, self.url)

    def on_tick(self, msg: Any, **_: Any) -> None:
        self.agg.add(Interval.from_msg(msg.data))

    def on_error(self, msg: Any, **_: Any) -> None:
        self.errors.append(str(msg.data))
        self.on_done(type("M", (), {"data": {"w": -len(self.errors), "error": True}})())

    def on_done(self, msg: Any, **_: Any) -> None:
        self.done[int(msg.data["w"])] = msg.data
        if self.n and len(self.done) >= self.n:
            gevent.spawn_later(0.1, self.finish)

    def finish(self) -> None:
        assert self.spec is not None
        duration = self.spec.duration or max(float(d.get("elapsed", 0.0)) for d in self.done.values())
        rep = make_report(self.agg, self.spec, self.url, self.n, duration, self.spec.lag_budget_for(None),
                          [d for d in self.done.values() if not d.get("error")], self.errors)
        path = self.env.parsed_options.mlchaos_report
        with open(path, "w") as fh:
            json.dump(rep.to_dict(), fh, indent=2)
        p99 = rep.latency.quantile(0.99)
        log.info("mlchaos: %s, sent %d/%d, p99 %s s, report %s", rep.validity.verdict, rep.sent,
                 rep.scheduled, p99, path)
        self.env.runner.quit()


class _Worker:
    """Worker side: run the mlchaos generator process and forward its messages to the master."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        env.runner.register_message("mlchaos_config", self.on_config)
        env.events.test_stop.add_listener(self.on_stop)
        env.events.quitting.add_listener(self.on_stop)

    def on_config(self, msg: Any, **_: Any) -> None:
        gevent.spawn(self.run, msg.data)

    def run(self, cfg: dict[str, Any]) -> None:
        runner = self.env.runner
        proc = self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlchaos.load.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(cfg).encode() + b"\n")
        proc.stdin.flush()
        for line in proc.stdout:
            msg = json.loads(line)
            kind = msg.get("type")
            if kind == "ready":
                proc.stdin.write(b"go now\n")
                proc.stdin.flush()
            elif kind == "tick":
                runner.send_message("mlchaos_tick", msg)
            elif kind == "done":
                runner.send_message("mlchaos_done", msg)
            elif kind == "error":
                runner.send_message("mlchaos_error", msg.get("error"))
        proc.wait()

    def on_stop(self, **_: Any) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None and proc.stdin is not None:
            try:
                proc.stdin.write(b"stop\n")
                proc.stdin.flush()
            except OSError:
                pass


@events.init.add_listener
def _init(environment: Any, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        environment.mlchaos = _Master(environment)
    elif isinstance(environment.runner, WorkerRunner):
        environment.mlchaos = _Worker(environment)
