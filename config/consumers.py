"""A tiny consumer that proves the WebSocket path end to end (used by health checks and tests).

It joins the ``ping`` group and relays every ``ping.message`` sent to the group as a text frame.
"""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

PING_GROUP = "ping"


class PingConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        await self.channel_layer.group_add(PING_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(PING_GROUP, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.send_json({"echo": content})

    async def ping_message(self, event: dict[str, Any]) -> None:
        await self.send_json({"group": event.get("text", "")})
