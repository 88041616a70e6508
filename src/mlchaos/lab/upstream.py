"""Service-to-service HTTP calls (load balancer → replica, model → feature service, …).

On ``aiohttp`` because these hops sit on every request's path and its client
costs about a third of httpx's per request (measured 0.5 ms vs 1.5 ms for
the same feature read), which matters for a < 50 ms p99 on two shared cores.
Errors surface as :class:`aiohttp.ClientError` (connection refused, reset,
protocol) or ``TimeoutError``.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

#: What a caller should treat as "the dependency failed".
ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError)
CONNECT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientConnectionError,)


class Upstream:
    """A keep-alive connection pool, created lazily inside the running event loop."""

    def __init__(self, limit: int = 200) -> None:
        self.limit = limit
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.limit, keepalive_timeout=30, enable_cleanup_closed=True
                ),
                json_serialize=lambda o: orjson.dumps(o).decode(),
                auto_decompress=False,
            )
        return self._session

    async def get_json(self, url: str, timeout: float) -> tuple[int, Any]:
        """GET ``url``; return ``(status, parsed JSON or None)`` within ``timeout`` seconds."""
        async with self.session().get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as r:
            raw = await r.read()
            try:
                return r.status, orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                return r.status, None

    async def request(
        self, method: str, url: str, body: bytes, headers: list[tuple[str, str]], timeout: float
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Forward a raw request; return ``(status, headers, body)``.

        ``sock_connect`` (not ``connect``, which also counts waiting for a pooled
        connection) bounds the TCP connect: a busy pool is not a dead upstream.
        """
        async with self.session().request(
            method,
            url,
            data=body or None,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=1.0),
        ) as r:
            content = await r.read()
            return r.status, list(r.headers.items()), content

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
