"""The battle WebSocket: carries stream frames and rendered fragments to the battle's own voter.

``connect`` authenticates through the session (only the voter who started the battle may join),
joins the battle's group, then sends what the page may have missed: a snapshot of every running
response and the finished panes. No ORM writes here.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from arena import streaming
from arena.models import Response
from arena.services import battle_for_voter, voter_key
from config.errors import NotFound


class BattleConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        session = self.scope.get("session")
        session_key = getattr(session, "session_key", None)
        battle_id = self.scope["url_route"]["kwargs"]["battle_id"]
        if not session_key:
            await self.close(code=4403)
            return
        try:
            self.battle = await database_sync_to_async(battle_for_voter)(
                public_id=battle_id, voter=voter_key(session_key)
            )
        except NotFound:
            await self.close(code=4403)
            return
        self.group = streaming.battle_group(self.battle.public_id)
        await self.accept()
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.catch_up()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("resync"):
            await self.catch_up()

    async def catch_up(self) -> None:
        running = await database_sync_to_async(self._running)()
        for public_id, side, attempt in running:
            partial = await streaming.load_partial(public_id)
            epoch, text = partial if partial else (streaming.epoch_of(attempt), "")
            await self.send_json(
                {
                    "k": "snapshot",
                    "r": public_id,
                    "side": side,
                    "epoch": epoch,
                    "offset": 0,
                    "text": text,
                }
            )
        html = await database_sync_to_async(self._finished_html)()
        if html:
            await self.send(text_data=html)

    def _running(self) -> list[tuple[str, str, int]]:
        last = self.battle.turns.order_by("-index").first()
        if last is None:
            return []
        return [
            (str(r.public_id), r.side, r.attempt)
            for r in last.responses.filter(
                state__in=[Response.State.PENDING, Response.State.STREAMING]
            )
        ]

    def _finished_html(self) -> str:
        from arena.views import render_live_update

        return render_live_update(str(self.battle.public_id))

    async def stream_frame(self, event: dict[str, Any]) -> None:
        await self.send_json(event["frame"])

    async def stream_html(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["html"])
