"""Starting lab services fast: a fork server with the heavy imports already done.

Each lab service is a Python process that needs FastAPI, uvicorn, numpy,
pandas and scikit-learn: about 1.5 s of CPU to import, times ten services,
on a 2-core machine.  The supervisor therefore starts its services from a
``multiprocessing`` fork server that has imported all of that once; a new
replica (or a restarted one) then costs a fork plus its own set-up, and the
model-load delay it reports is the one configured, not import noise.

The child runs ``<module>.main(argv)`` with stdout/stderr sent to its log
file, exactly as ``python -m <module> ...`` would, and dies with the process
that started it (:mod:`mlchaos.lab.lifetime`).
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import sys
from multiprocessing.process import BaseProcess
from typing import Any

PRELOAD = [
    "mlchaos.lab.preload",
    "mlchaos.lab.forkserver_exit",
]

_ctx: Any = None


def context() -> Any:
    """The fork-server context (plain fork-exec ``spawn`` where fork servers are unavailable)."""
    global _ctx
    if _ctx is None:
        if "forkserver" in multiprocessing.get_all_start_methods():
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(PRELOAD)
            _ctx = ctx
        else:  # pragma: no cover - not Linux
            _ctx = multiprocessing.get_context("spawn")
    return _ctx


def _child_main(module: str, argv: list[str], log_path: str, env: dict[str, str | None], parent: int) -> None:
    from mlchaos.lab.lifetime import die_with

    die_with(parent)  # the fork server is our parent: watch the supervisor itself (see lab.lifetime)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - the process's stdout
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    for key, value in env.items():  # None: not inherited from the user's shell
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    sys.argv = [module, *argv]
    code = importlib.import_module(module).main(argv)
    if isinstance(code, int) and code:  # as `python -m` with sys.exit(main()): the supervisor logs it
        sys.exit(code)


def start(
    name: str, module: str, argv: list[str], log_path: str, env: dict[str, str | None] | None = None
) -> BaseProcess:
    """Start ``module.main(argv)`` in a new process; return its handle (pid, exitcode, terminate, kill).

    The new process exits when the caller (the supervisor) does, however it ends.
    """
    proc = context().Process(
        target=_child_main, args=(module, argv, log_path, env or {}, os.getpid()), name=name, daemon=False
    )
    proc.start()
    return proc


def warm_up() -> None:
    """Start the fork server now (it imports :data:`PRELOAD`), so the first service starts fast."""
    ctx = context()
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()
