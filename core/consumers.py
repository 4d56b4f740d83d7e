"""A tiny consumer that proves the WebSocket path end to end (used by health checks and tests).

It joins the ``ping`` group and relays every ``ping.message`` sent to the group as a text frame.
"""

from __future__ import annotations

from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncJsonWebsocketConsumer

PING_GROUP = "ping"


class NoDatabaseDispatchMixin:
    """Dispatch without Channels' per-message database clean-up.

    Channels runs ``close_old_connections`` before *every* handler, through ``sync_to_async``:
    a hop to the one thread the whole process shares for sync code, per message. For a socket
    that relays stream frames (about ten a second per pane, hundreds per second per process)
    that hop is most of the cost, and every frame queued behind whatever else that thread was
    doing (a query for a connecting page, a pane being rendered). Consumers using this mixin
    touch the database only through ``database_sync_to_async``, which cleans up in the worker
    thread itself.
    """

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)


class PingConsumer(NoDatabaseDispatchMixin, AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        await self.channel_layer.group_add(PING_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(PING_GROUP, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.send_json({"echo": content})

    async def ping_message(self, event: dict[str, Any]) -> None:
        await self.send_json({"group": event.get("text", "")})
