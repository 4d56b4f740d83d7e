"""The battle WebSocket: carries stream frames and rendered fragments to the battle's own voter.

``connect`` authenticates through the session (only the voter who started the battle may join),
joins the battle's group, then sends what the page may have missed: a snapshot of every running
response and, when something has finished since the page was served, the finished panes. No ORM
writes here, and the connect path is two small queries: a burst of pages opening their sockets
together (a hundred battles started in a second) must not queue behind template rendering.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from arena import streaming
from arena.models import Battle, Response
from arena.services import parse_public_id, voter_key
from config.errors import NotFound


def _battle_owned(public_id: str, voter: str) -> tuple[int, str] | None:
    """(pk, public id) of the battle if ``voter`` owns it."""
    try:
        uid = parse_public_id(public_id, "battle")
    except NotFound:
        return None
    row = Battle.objects.filter(public_id=uid).values_list("pk", "voter").first()
    if row is None or not hmac.compare_digest(row[1], voter):
        return None
    return row[0], str(uid)


def _last_turn(battle_pk: int) -> tuple[list[tuple[str, str, int, str]], bool]:
    """The last turn's responses (public id, side, attempt, state), and whether the battle is
    voted, in one query (a turn has exactly two responses)."""
    rows = list(
        Response.objects.filter(turn__battle_id=battle_pk)
        .order_by("-turn__index", "side")
        .values_list("public_id", "side", "attempt", "state", "turn__battle__state")[:2]
    )
    voted = bool(rows) and rows[0][4] == Battle.State.VOTED
    return [(str(p), side, attempt, state) for p, side, attempt, state, _ in rows], voted


class BattleConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        session = self.scope.get("session")
        session_key = getattr(session, "session_key", None)
        battle_id = self.scope["url_route"]["kwargs"]["battle_id"]
        if not session_key:
            await self.close(code=4403)
            return
        owned = await database_sync_to_async(_battle_owned)(battle_id, voter_key(session_key))
        if owned is None:
            await self.close(code=4403)
            return
        self.battle_pk, self.battle_public_id = owned
        self.group = streaming.battle_group(self.battle_public_id)
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
        responses, voted = await database_sync_to_async(_last_turn)(self.battle_pk)
        running = [
            r for r in responses if r[3] in (Response.State.PENDING, Response.State.STREAMING)
        ]
        partials = await asyncio.gather(*(streaming.load_partial(r[0]) for r in running))
        for (public_id, side, attempt, _), partial in zip(running, partials, strict=True):
            epoch, text = partial if partial else (streaming.epoch_of(attempt), "")
            await self.send_json(
                {"k": "snapshot", "r": public_id, "side": side, "epoch": epoch, "offset": 0,
                 "text": text}
            )  # fmt: skip
        # Rendered fragments only when a pane has finished (or the battle is voted): while both
        # answers stream, the page as served already shows the right vote bar and composer.
        if voted or len(running) < len(responses):
            html = await database_sync_to_async(self._finished_html)()
            if html:
                await self.send(text_data=html)

    def _finished_html(self) -> str:
        from arena.views import render_live_update

        return render_live_update(self.battle_public_id)

    async def stream_frame(self, event: dict[str, Any]) -> None:
        await self.send_json(event["frame"])

    async def stream_html(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["html"])
