"""SO_REUSEPORT workers with one control plane: faults broadcast, counters aggregated, leases honoured."""

from __future__ import annotations

import asyncio
import time

from mlchaos.proxy import spawn

from .conftest import request, run


def test_two_workers_share_one_control_plane(upstream: str) -> None:
    with spawn(upstream=upstream, workers=2) as h:
        assert h.client.health()["workers"] == 2
        fid = h.client.add({"kind": "http-error", "status": 503, "probability": "50%"}, ttl=30)

        async def go() -> list[int]:
            res = await asyncio.gather(*(request(h.listen_addr, n=25) for _ in range(40)))
            return [s for conn in res for _, s, _ in conn]

        statuses = run(go())
        time.sleep(0.2)  # workers report counters every 50 ms
        st = h.client.stats(fid)
        assert st["seen"] == 1000 and st["affected"] == statuses.count(503)
        assert 400 <= st["affected"] <= 600
        h.client.remove(fid)
        time.sleep(0.05)
        assert set(run(go())) == {200}
        h.client.add({"kind": "http-error"}, ttl=0.3)
        time.sleep(0.4)
        assert set(run(go())) == {200}, "a worker kept a fault past its lease"
