"""A plugin context with no runner behind it, for driving faults and probes directly in tests."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from mlchaos.plugin import Context, Target


class Ctx(Context):
    run_id = "test"
    state_dir = None
    lease_ttl = 5.0

    def target(self, name: str) -> Target:
        raise NotImplementedError

    def log(self, event: str, **fields: Any) -> None:
        pass

    @property
    def services(self) -> Mapping[str, Any]:
        return {}


def run(coro: Any) -> Any:
    return asyncio.run(coro)
