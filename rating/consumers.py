"""Leaderboard pushes: open pages join one group and receive each new snapshot's frame."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from core.consumers import NoDatabaseDispatchMixin
from rating.services import leaderboard_group


class LeaderboardConsumer(NoDatabaseDispatchMixin, AsyncWebsocketConsumer):
    """Public and read-only: no authentication, nothing accepted from the browser."""

    async def connect(self) -> None:
        await self.channel_layer.group_add(leaderboard_group(), self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(leaderboard_group(), self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        return  # one-way pipe: the page never talks back

    async def leaderboard_snapshot(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["html"])
