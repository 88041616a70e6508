"""How ``mlchaos demo`` ends on SIGINT, SIGTERM and SIGHUP: the run aborted, its lab down, exit 128 + N.

Without this, SIGTERM and SIGHUP (a closed terminal) took their default action between runs and ended
the demo at once, its ``finally`` (lab down) never run; and while a run was in progress the engine took
SIGINT and SIGTERM to abort that run only, and the demo went on with the next scenario.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

__all__ = ["Interrupted", "Signals"]


class Interrupted(BaseException):
    """The demo got SIGINT, SIGTERM or SIGHUP; its lab is down and the scenario in progress was aborted.

    A BaseException, as KeyboardInterrupt is, so that no ``except Exception`` on the way swallows it.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


class Signals:
    """SIGINT, SIGTERM and SIGHUP end the demo, not only the scenario that runs.

    While an experiment runs, the engine takes SIGINT and SIGTERM itself: it aborts the run and removes its
    faults, and the demo stops after it (:meth:`noted` sees why the run stopped).  Between runs this
    handler raises :class:`Interrupted`, so the ``finally`` that brings the lab down runs.  SIGHUP, whose
    default action would end the process with no clean-up at all, is passed on to a run as SIGTERM.
    ``kill -9`` cannot be caught: the lab then goes down by itself (its supervisor watches the demo).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.signum: int | None = None
        self.in_run = False
        self.forwarded = False
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> Signals:
        if threading.current_thread() is threading.main_thread():  # run_demo may be called from a thread
            self.previous = {sig: signal.signal(sig, self._on_signal) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            return  # stopping already: a second signal must not cut the lab's teardown short
        self.signum = signum
        if not self.in_run:
            raise Interrupted(signum)
        self._forward()

    def _forward(self) -> None:
        """Stop the run in progress the way the engine knows (SIGTERM: abort, remove the faults).

        Only once the engine has its own handler: just before (or just after) it, SIGTERM would come back
        here and be lost; the run's next ``phase`` event, once it has one, passes it on (:meth:`noted`).
        """
        if not self.forwarded and signal.getsignal(signal.SIGTERM) != self._on_signal:
            self.forwarded = True
            os.kill(os.getpid(), signal.SIGTERM)

    def noted(self, e: dict[str, Any]) -> None:
        """An engine event: a stop by a signal the engine took itself; or a run that began after ours came."""
        reason = str(e.get("reason") or "")
        if e["event"] == "stop-requested" and reason.startswith("interrupted by SIG") and self.signum is None:
            self.signum = signal.Signals.__members__.get(reason.rsplit(" ", 1)[-1], signal.SIGTERM)
            self.forwarded = True
        elif e["event"] == "phase" and self.signum is not None:
            self._forward()  # the signal came before the engine had its handlers: pass it on now

    def check(self) -> None:
        if self.signum is not None:
            raise Interrupted(self.signum)
