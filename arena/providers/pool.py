"""Long-lived provider clients: one per provider settings per event loop.

A generation asks :func:`client_for` for its endpoint's client instead of opening one of its
own, so streams reuse keep-alive connections (one HTTP connection pool per provider) instead of
a new client and a new TCP (and TLS) connection each. The clients live as long as their loop;
:func:`close_clients` closes them on their own loops when the process exits (an aiohttp session
left open complains from its finaliser while the interpreter shuts down).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
from collections.abc import Hashable

from arena.providers import get_client
from arena.providers.base import Endpoint
from arena.providers.engine import StreamingClient


def endpoint_key(endpoint: Endpoint) -> tuple[Hashable, ...]:
    """Every setting a client is built from: an operator's edit of the provider gives a new key,
    so the next generations get a client with the new settings."""
    return (
        endpoint.kind,
        endpoint.name,
        endpoint.base_url,
        endpoint.api_key,
        endpoint.timeouts,
        endpoint.max_concurrency,
        endpoint.rpm,
        endpoint.max_retries,
        tuple(sorted(endpoint.extra_headers.items())),
        repr(sorted(endpoint.options.items())),
    )


class ClientPool:
    """The clients of every event loop of the process, by loop and then by endpoint settings.

    A client's connections belong to the loop that opened them, so each loop has its own. The
    loop object is kept with its clients: a closed loop's id can be reused by a new loop, whose
    clients must not be the old ones.
    """

    def __init__(self) -> None:
        self._loops: dict[
            int, tuple[asyncio.AbstractEventLoop, dict[tuple[Hashable, ...], StreamingClient]]
        ] = {}

    async def client(self, endpoint: Endpoint) -> StreamingClient:
        """The running loop's client for ``endpoint``, opened on first use."""
        loop = asyncio.get_running_loop()
        entry = self._loops.get(id(loop))
        if entry is None or entry[0] is not loop:
            entry = self._loops[id(loop)] = (loop, {})
        clients = entry[1]
        key = endpoint_key(endpoint)
        client = clients.get(key)
        if client is None:
            client = clients[key] = await get_client(endpoint).__aenter__()
        return client

    async def aclose(self) -> None:
        """Close the running loop's clients (for a loop that is about to end)."""
        entry = self._loops.pop(id(asyncio.get_running_loop()), None)
        if entry is not None:
            for client in entry[1].values():
                await client.aclose()

    def close_all(self, timeout: float = 2.0) -> None:
        """From synchronous code (at exit): close every client on its own loop if that loop still
        runs; a stopped loop's clients are only forgotten (nothing can run their close)."""
        for loop, clients in list(self._loops.values()):
            if loop.is_closed() or not loop.is_running():
                continue
            for client in clients.values():
                with contextlib.suppress(Exception):
                    asyncio.run_coroutine_threadsafe(client.aclose(), loop).result(timeout)
        self._loops.clear()


_pool = ClientPool()


async def client_for(endpoint: Endpoint) -> StreamingClient:
    """The process-wide pool's client for ``endpoint`` on the running loop."""
    return await _pool.client(endpoint)


@atexit.register
def close_clients() -> None:
    """Close the process-wide pool's clients on their loops (registered to run at exit)."""
    _pool.close_all()
