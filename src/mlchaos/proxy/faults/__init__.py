"""Fault kinds of the proxy, one small class per module, registered by ``kind``."""

from __future__ import annotations

from mlchaos.proxy.faults.abort import Abort
from mlchaos.proxy.faults.bandwidth import Bandwidth
from mlchaos.proxy.faults.base import LocalResponse, Params, Plan, ProxyFault
from mlchaos.proxy.faults.feast_response import FeastResponse
from mlchaos.proxy.faults.http_error import HttpError
from mlchaos.proxy.faults.json_corrupt import JsonCorrupt
from mlchaos.proxy.faults.latency import Latency
from mlchaos.proxy.faults.refuse import Refuse
from mlchaos.proxy.faults.reset import Reset
from mlchaos.proxy.faults.slow_close import SlowClose
from mlchaos.proxy.faults.stream import STREAM_KINDS, StreamKind
from mlchaos.proxy.faults.timeout import Timeout

KINDS: dict[str, type[ProxyFault]] = {
    cls.kind: cls
    for cls in (Latency, Bandwidth, Timeout, Reset, Refuse, SlowClose, HttpError, Abort, JsonCorrupt, FeastResponse)
}
KINDS.update({cls.kind: cls for cls in STREAM_KINDS})

__all__ = ["KINDS", "LocalResponse", "Params", "Plan", "ProxyFault", "StreamKind"]
