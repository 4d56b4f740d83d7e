"""WebSocket round trips: in-process with WebsocketCommunicator, and across processes over Redis."""

import asyncio
import json

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from config.asgi import application
from core.consumers import PING_GROUP


@pytest.mark.django_db(transaction=True)
async def test_websocket_round_trip_through_the_asgi_application():
    communicator = WebsocketCommunicator(
        application, "/ws/ping/", headers=[(b"origin", b"http://localhost")]
    )
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"hello": 1})
    assert await communicator.receive_json_from(timeout=5) == {"echo": {"hello": 1}}
    await get_channel_layer().group_send(PING_GROUP, {"type": "ping.message", "text": "fan-out"})
    assert await communicator.receive_json_from(timeout=5) == {"group": "fan-out"}
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_websocket_from_a_foreign_origin_is_refused():
    communicator = WebsocketCommunicator(
        application, "/ws/ping/", headers=[(b"origin", b"http://evil.example")]
    )
    connected, _ = await communicator.connect()
    assert not connected


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_group_send_from_this_process_reaches_a_browser_socket_on_the_server(asgi_server):
    """channels-redis between two processes: the test sends, uvicorn's consumer delivers."""
    import websockets

    async def scenario() -> dict:
        url = asgi_server.url.replace("http://", "ws://") + "/ws/ping/"
        async with websockets.connect(url, origin="http://127.0.0.1") as ws:
            await ws.send(json.dumps({"hi": True}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"echo": {"hi": True}}
            layer = get_channel_layer()
            await layer.group_send(PING_GROUP, {"type": "ping.message", "text": "across"})
            return json.loads(await asyncio.wait_for(ws.recv(), 10))

    assert asyncio.run(scenario()) == {"group": "across"}
