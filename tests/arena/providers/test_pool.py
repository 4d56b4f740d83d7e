"""The provider client pool: one client per provider settings per event loop, kept and closed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from arena.providers import Endpoint
from arena.providers.pool import ClientPool

DEMO = Endpoint(kind="demo", name="demo", options={"tokens_per_s": 1000})


def test_a_loop_reuses_its_client_until_the_provider_settings_change():
    pool = ClientPool()

    async def clients() -> list[object]:
        first = await pool.client(DEMO)
        again = await pool.client(
            Endpoint(kind="demo", name="demo", options={"tokens_per_s": 1000})
        )
        edited = await pool.client(Endpoint(kind="demo", name="demo", options={"tokens_per_s": 5}))
        await pool.aclose()
        return [first, again, edited]

    first, again, edited = asyncio.run(clients())
    assert first is again  # same settings: the same client (and its keep-alive connections)
    assert edited is not first  # an operator's edit gets a client with the new settings


def test_each_loop_gets_its_own_client_and_closing_a_loop_closes_only_its_clients():
    pool = ClientPool()
    seen: list[object] = []

    async def use_and_close() -> None:
        client = await pool.client(DEMO)
        seen.append(client)
        await pool.aclose()
        assert client._http is None  # type: ignore[attr-defined]  (its session is closed)

    asyncio.run(use_and_close())
    asyncio.run(use_and_close())  # (a new loop may reuse the closed loop's id)
    assert seen[0] is not seen[1]


@pytest.fixture
def running_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    loop.close()


def test_close_all_closes_every_client_on_its_own_running_loop(running_loop):
    pool = ClientPool()
    client = asyncio.run_coroutine_threadsafe(pool.client(DEMO), running_loop).result(5)
    assert client._http is not None  # type: ignore[attr-defined]
    pool.close_all()
    assert client._http is None  # type: ignore[attr-defined]
    fresh = asyncio.run_coroutine_threadsafe(pool.client(DEMO), running_loop).result(5)
    assert fresh is not client
    pool.close_all()
