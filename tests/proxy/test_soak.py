"""A short soak (issue #17): ordinary clients are all served while attackers misbehave around them,
and the proxy's file descriptors and RSS come back to their baseline once everyone has left.

The long version with its figures is benchmarks/bench_proxy_soak.py (benchmarks/RESULTS.md, #17).
"""

from __future__ import annotations

import time

import pytest

from mlchaos.proxy import spawn
from mlchaos.proxy.limits import Limits

from .conftest import run
from .soak import bad_counts, footprint, soak

pytestmark = pytest.mark.slow  # ~12 s


def test_soak_serves_everyone_and_gives_back_fds_and_memory(upstream: str) -> None:
    limits = Limits(header_timeout=1.0, idle_timeout=1.5)
    with spawn(upstream=upstream, limits=limits) as h:
        run(soak(h.port, 1.0, attackers=0, header_timeout=1.0))  # warm up: pool, allocator, caches
        time.sleep(limits.idle_timeout + 2 * limits.tick)
        base = footprint(h.pid)
        counts = run(soak(h.port, 8.0, normal=16, attackers=8, header_timeout=1.0))
        assert counts.get("normal_ok", 0) > 1000, counts
        assert bad_counts(counts) == {}, counts
        attacks = sum(v for k, v in counts.items() if k.startswith("attack_"))
        assert attacks > 100, counts
        time.sleep(limits.idle_timeout + 2 * limits.tick)  # what the clients left is closed by now
        after = footprint(h.pid)
        assert h.client.health()["connections_active"] == 0
        assert after["fds"] <= base["fds"] + 2, (base, after)
        assert after["rss"] <= base["rss"] + (8 << 20), (base, after)
