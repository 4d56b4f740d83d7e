"""New snapshots reach open leaderboard pages over the WebSocket."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from config.asgi import application
from rating import services
from tests.rating import factories as f


def _vote_and_refresh() -> int:
    a, b = f.llm("alpha"), f.llm("beta")
    f.votes(a, b, "a", 2, categories=["all", "coding"])
    return len(services.leaderboard_refresh())


@pytest.mark.django_db(transaction=True)
async def test_a_new_snapshot_is_pushed_to_an_open_page():
    ws = WebsocketCommunicator(
        application, "/ws/leaderboard/", headers=[(b"origin", b"http://localhost")]
    )
    connected, _ = await ws.connect()
    assert connected
    assert await sync_to_async(_vote_and_refresh)() == 2
    # The refresh pushes one frame per changed category; a Celery worker with beat started by
    # another test of the session may push its own refresh in between, so read until both
    # categories came (a bounded number of frames), and every frame is a snapshot.
    frames: list[str] = []
    while len(frames) < 10 and not all(
        f'data-category="{c}"' in "".join(frames) for c in ("all", "coding")
    ):
        frames.append(await ws.receive_from(timeout=5))
    assert all(fr.startswith('<div id="lb-live"') for fr in frames)
    joined = "".join(frames)
    assert 'data-category="all"' in joined and 'data-category="coding"' in joined
    assert 'data-style="0"' in joined
    await ws.send_to(text_data="ignored")  # the page never talks back; nothing breaks
    # Whatever comes next is a snapshot, never an error or a close (a Celery worker with beat
    # started by another test of the session may push a refresh of its own meanwhile).
    while not await ws.receive_nothing(timeout=0.3):
        out = await ws.receive_output(timeout=1)
        assert out["type"] == "websocket.send", out
        assert out["text"].startswith('<div id="lb-live"')
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_foreign_origin_cannot_subscribe():
    ws = WebsocketCommunicator(
        application, "/ws/leaderboard/", headers=[(b"origin", b"http://evil.example")]
    )
    connected, _ = await ws.connect()
    assert not connected
