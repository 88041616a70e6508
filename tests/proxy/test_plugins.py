"""The engine-facing fault plugins in mlchaos.faults.network, against a real proxy."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from pydantic import ValidationError

from mlchaos.contract.lease import Lease
from mlchaos.faults import network
from mlchaos.plugin import Context, FaultError, Target
from mlchaos.proxy import ProxyHandle

from .conftest import request, run


class Ctx(Context):
    def __init__(self, targets: dict[str, Any] | None = None) -> None:
        self.run_id = "t"
        self.state_dir = None
        self.lease_ttl = 5.0
        self._targets = targets or {}
        self.events: list[tuple[str, dict[str, Any]]] = []

    def target(self, name: str) -> Target:
        return self._targets[name]  # type: ignore[no-any-return]

    def log(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))

    @property
    def services(self) -> Mapping[str, Any]:
        return {}


def test_latency_plugin_lifecycle(http_proxy: ProxyHandle) -> None:
    spec = network.Latency.Spec.model_validate(
        {"fault": "latency", "control": http_proxy.control_url, "delay": "50ms", "probability": "100%",
         "match": {"path": "/json"}})
    fault = network.Latency(spec, Ctx())

    async def go() -> None:
        planned = await fault.preflight()
        assert planned["kind"] == "latency" and planned["delay"] == 0.05
        assert http_proxy.client.list() == []  # preflight injects nothing
        applied = await fault.inject(Lease.new("l1", 5.0))
        assert applied.targets == [http_proxy.control_url]
        assert applied.undo["control"] == http_proxy.control_url and applied.undo["id"] == fault.fault_id
        await asyncio.to_thread(run, request(http_proxy.listen_addr, n=4))
        obs = await fault.observed()
        assert obs["seen"] == 4 and obs["affected"] == 4 and obs["ratio"] == 1.0
        await fault.renew(Lease.new("l1", 10.0))
        assert http_proxy.client.list()[0]["ttl"] == 10.0
        await fault.remove()
        await fault.remove()  # idempotent
        assert http_proxy.client.list() == []

    asyncio.run(go())


def test_revert_from_undo_record_alone(http_proxy: ProxyHandle) -> None:
    fid = http_proxy.client.add({"kind": "http-error"}, ttl=30)
    network.JsonCorrupt.revert({"control": http_proxy.control_url, "id": fid})
    network.JsonCorrupt.revert({"control": http_proxy.control_url, "id": fid})  # already gone: fine
    network.JsonCorrupt.revert({"control": "http://127.0.0.1:9", "id": fid})  # proxy gone: fine
    assert http_proxy.client.list() == []


def test_preflight_rejects_bad_parameters_and_dead_proxies(http_proxy: ProxyHandle, tcp_proxy: ProxyHandle) -> None:
    spec = network.HttpError.Spec.model_validate({"fault": "http-error", "control": tcp_proxy.control_url})
    with pytest.raises(FaultError, match="HTTP-mode"):
        asyncio.run(network.HttpError(spec, Ctx()).preflight())
    spec = network.Refuse.Spec.model_validate({"fault": "refuse", "control": "http://127.0.0.1:9"})
    with pytest.raises(FaultError, match="unreachable"):
        asyncio.run(network.Refuse(spec, Ctx()).preflight())


def test_spec_validation_and_target_resolution(http_proxy: ProxyHandle) -> None:
    with pytest.raises(ValidationError):
        network.Latency.Spec.model_validate({"fault": "latency", "delay": "soon"})
    with pytest.raises(ValidationError):
        network.Latency.Spec.model_validate({"fault": "latency", "delay": "1s", "typo": 1})

    class T:
        proxy_control_url = http_proxy.control_url
        spec = None

    spec = network.JsonCorrupt.Spec.model_validate({"fault": "json-corrupt", "fields": ["amount"], "action": "nan"})
    fault = network.JsonCorrupt(spec, Ctx({"default": T()}))
    assert fault.control_url() == http_proxy.control_url
    assert fault.fault_json() == {"kind": "json-corrupt", "fields": ["amount"], "action": "nan", "factor": 10.0,
                                  "probability": 1.0}
    nothing = network.Reset(network.Reset.Spec.model_validate({"fault": "reset"}), Ctx({"default": object()}))
    with pytest.raises(FaultError, match="no proxy"):
        nothing.control_url()


def test_generic_proxy_plugin(http_proxy: ProxyHandle) -> None:
    spec = network.Generic.Spec.model_validate(
        {"fault": "proxy", "control": http_proxy.control_url, "kind": "http-error", "params": {"status": 500},
         "probability": "10%"})
    fault = network.Generic(spec, Ctx())
    assert fault.fault_json() == {"kind": "http-error", "status": 500, "probability": 0.1}

    async def go() -> None:
        await fault.inject(Lease.new("g", 5.0))
        assert http_proxy.client.list()[0]["params"]["status"] == 500
        await fault.remove()

    asyncio.run(go())
