"""Imported by the fork server only (it is in :data:`mlchaos.lab.procs.PRELOAD`): it exits with the supervisor.

Left alone, the fork server outlives a killed supervisor until every service
has closed its copy of the server's "alive" pipe, and then spends a second or
more tearing down the heavy modules it preloaded.  It serves nobody once the
supervisor is gone, so it leaves at once (see :mod:`mlchaos.lab.lifetime`).
"""

from __future__ import annotations

from mlchaos.lab.lifetime import exit_with_parent

exit_with_parent()
