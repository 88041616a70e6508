"""The mlchaos fault proxy: network and HTTP faults between ML services, with leases.

Public API:

* :func:`spawn` — start a proxy child process; returns a :class:`ProxyHandle`
  with ``listen_addr``, ``control_url``, ``client`` and ``stop()``.
* :class:`ProxyClient` — drive a proxy's control API (add/renew/remove/list/stats).
* ``python -m mlchaos.proxy`` / ``mlchaos proxy`` — run one standalone.

See docs/proxy.md for the control API, the fault kinds and the design figures.
"""

from __future__ import annotations

from mlchaos.proxy.client import ProxyClient, ProxyError
from mlchaos.proxy.spawn import ProxyHandle, SpawnError, spawn

__all__ = ["ProxyClient", "ProxyError", "ProxyHandle", "SpawnError", "spawn"]
