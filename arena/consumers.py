"""The battle WebSocket: carries stream frames and rendered fragments to the battle's own voter.

``connect`` authenticates by the session cookie (only the voter who started the battle may join:
the battle stores a keyed hash of that session key), joins the battle's group, then sends what
the page may have missed: a snapshot of every running response and, when something has finished
since the page was served, the finished panes. The connect path is one query in one thread hop,
with no session or user load: a burst of pages opening their sockets together (a hundred battles
started in a second) must be connected before their first tokens arrive.

When the channel layer or the partial-text store (Redis) does not answer, the socket is closed
with 1013 ("try again later", logged): the page's WebSocket extension reconnects by itself with
backoff, and the page as served (and every later page load) still shows the battle from the
database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from arena import selectors, streaming
from arena.fragments import render_live_update
from arena.limits import REDIS_DOWN
from arena.models import Response
from arena.selectors import Row
from arena.services import voter_key
from core.consumers import NoDatabaseDispatchMixin

log = logging.getLogger(__name__)

_last_turn_async = database_sync_to_async(selectors.socket_last_turn)
_live_update_async = database_sync_to_async(render_live_update)

TRY_AGAIN_LATER = 1013  # WebSocket close code; the client's extension reconnects on it
LAYER_TIMEOUT_SECONDS = 5.0


class BattleConsumer(NoDatabaseDispatchMixin, AsyncJsonWebsocketConsumer):
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Channels subscribes the socket's own channel (a Redis round trip) before ``connect``
        runs, and the layer's receive loop runs for the socket's life: a Redis failure there
        ends the socket with 1013 and a log line, not an ASGI error (a refused handshake when
        it happens before the accept)."""
        try:
            await super().__call__(scope, receive, send)
        except REDIS_DOWN as exc:
            log.warning(
                "battle socket closed: channel layer unavailable",
                extra={"step": "channel", "error": type(exc).__name__},
            )
            with contextlib.suppress(Exception):  # the socket may be gone already
                await send({"type": "websocket.close", "code": TRY_AGAIN_LATER})

    async def connect(self) -> None:
        session_key = self.scope.get("cookies", {}).get(settings.SESSION_COOKIE_NAME, "")
        battle_id = self.scope["url_route"]["kwargs"]["battle_id"]
        if not session_key or len(session_key) > 64:
            await self.close(code=4403)
            return
        self.voter = voter_key(session_key)
        found = await _last_turn_async(battle_id, self.voter)
        if found is None:
            await self.close(code=4403)
            return
        self.battle_pk, self.battle_public_id, responses, voted = found
        self.group = streaming.battle_group(self.battle_public_id)
        await self.accept()
        try:
            await asyncio.wait_for(
                self.channel_layer.group_add(self.group, self.channel_name),
                LAYER_TIMEOUT_SECONDS,
            )
            await self.catch_up(responses, voted)
        except (*REDIS_DOWN, TimeoutError) as exc:
            await self._unavailable("connect", exc)

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            try:
                await asyncio.wait_for(
                    self.channel_layer.group_discard(self.group, self.channel_name),
                    LAYER_TIMEOUT_SECONDS,
                )
            except (*REDIS_DOWN, TimeoutError) as exc:  # the subscription died with Redis
                log.info("battle socket left without the channel layer: %s", type(exc).__name__)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("resync"):
            found = await _last_turn_async(self.battle_public_id, self.voter)
            if found is not None:
                try:
                    await self.catch_up(found[2], found[3])
                except REDIS_DOWN as exc:
                    await self._unavailable("resync", exc)

    async def _unavailable(self, step: str, exc: BaseException) -> None:
        log.warning(
            "battle socket closed: channel layer unavailable",
            extra={"step": step, "error": type(exc).__name__},
        )
        await self.close(code=TRY_AGAIN_LATER)

    async def catch_up(self, responses: list[Row], voted: bool) -> None:
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
            html = await _live_update_async(self.battle_public_id)
            if html:
                await self.send(text_data=html)

    async def stream_frame(self, event: dict[str, Any]) -> None:
        await self.send_json(event["frame"])

    async def stream_html(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["html"])
