"""The battle WebSocket through the real ASGI application (WebsocketCommunicator)."""

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.backends.cached_db import SessionStore

from arena import services, streaming
from arena.models import Response
from config.asgi import router
from tests.arena.factories import battle_with_turn, demo_models

pytestmark = pytest.mark.django_db(transaction=True)


def _session() -> str:
    session = SessionStore()
    session["arena_consent"] = True
    session.save()
    return session.session_key


@database_sync_to_async
def _streaming_battle(session_key: str):
    a, b = demo_models(2)
    battle = battle_with_turn(
        a, b, voter=services.voter_key(session_key), states=("streaming", "done")
    )
    ra = Response.objects.get(turn__battle=battle, side="a")
    return battle, ra


def _communicator(battle_id, session_key):
    headers = [(b"origin", b"http://localhost")]
    if session_key:
        headers.append((b"cookie", f"sessionid={session_key}".encode()))
    return WebsocketCommunicator(router, f"/ws/arena/{battle_id}/", headers=headers)


async def test_outsider_and_anonymous_sockets_are_refused():
    owner = await database_sync_to_async(_session)()
    battle, _ = await _streaming_battle(owner)
    for key in (await database_sync_to_async(_session)(), None):
        communicator = _communicator(battle.public_id, key)
        connected, code = await communicator.connect()
        assert not connected and code == 4403
    communicator = _communicator("not-a-uuid", owner)
    connected, _ = await communicator.connect()
    assert not connected


async def test_connect_gets_the_text_so_far_then_the_live_tail_and_reconnect_resumes_exactly():
    key = await database_sync_to_async(_session)()
    battle, ra = await _streaming_battle(key)
    rid = str(ra.public_id)
    await streaming.reset_partial(rid, 1000)
    await streaming.append_partial(rid, "Hello wor")

    communicator = _communicator(battle.public_id, key)
    connected, _ = await communicator.connect()
    assert connected
    snapshot = await communicator.receive_json_from(timeout=5)
    assert snapshot == {
        "k": "snapshot",
        "r": rid,
        "side": "a",
        "epoch": 1000,
        "offset": 0,
        "text": "Hello wor",
    }
    finished = await communicator.receive_from(timeout=5)  # the finished pane B + vote bar, as HTML
    assert (
        'hx-swap-oob="true"' in finished and "answer b" in finished and 'id="vote-bar"' in finished
    )
    frame = {"k": "delta", "r": rid, "side": "a", "epoch": 1000, "offset": 9, "text": "ld"}
    await streaming.append_partial(rid, "ld")
    await get_channel_layer().group_send(
        streaming.battle_group(battle.public_id), {"type": "stream.frame", "frame": frame}
    )
    assert await communicator.receive_json_from(timeout=5) == frame
    await communicator.disconnect()

    # While the page is away the stream goes on; on reconnect it gets exactly the text so far.
    await streaming.append_partial(rid, ", again")
    communicator = _communicator(battle.public_id, key)
    assert (await communicator.connect())[0]
    snapshot = await communicator.receive_json_from(timeout=5)
    assert snapshot["text"] == "Hello world, again" and snapshot["offset"] == 0
    await communicator.receive_from(timeout=5)
    # A page that detected a gap asks for a resync and gets a fresh snapshot.
    await communicator.send_json_to({"resync": True})
    assert (await communicator.receive_json_from(timeout=5))["text"] == "Hello world, again"
    await communicator.disconnect()


async def test_finished_panes_pushed_to_the_page_name_no_model():
    key = await database_sync_to_async(_session)()
    battle, _ = await _streaming_battle(key)
    communicator = _communicator(battle.public_id, key)
    assert (await communicator.connect())[0]
    await communicator.receive_json_from(timeout=5)
    html = await communicator.receive_from(timeout=5)
    for word in (
        battle.model_a.display_name,
        battle.model_b.display_name,
        battle.model_a.slug,
        battle.model_b.slug,
    ):
        assert word not in html
    await communicator.disconnect()


async def test_publisher_batches_frames_in_order_with_the_text_stored_first():
    """Many streams post without waiting for Redis: every frame reaches the page in the order
    posted, the stored partial text already holds each delta when its frame arrives, and a
    stop flag is read back in the same round trip."""
    key = await database_sync_to_async(_session)()
    battle, ra = await _streaming_battle(key)
    rid = str(ra.public_id)
    communicator = _communicator(battle.public_id, key)
    assert (await communicator.connect())[0]
    await communicator.receive_json_from(timeout=5)  # the snapshot of the running pane
    await communicator.receive_from(timeout=5)  # the finished pane B

    pub = streaming.publisher()
    base = {"r": rid, "side": "a", "epoch": 2000}
    posted = [
        pub.post(battle.public_id, {"k": "reset", **base}, response_public_id=rid, epoch=2000)
    ]
    text = ""
    for i in range(40):
        piece = f"<{i}>"
        frame = {"k": "delta", **base, "offset": len(text), "text": piece}
        posted.append(pub.post(battle.public_id, frame, response_public_id=rid, text=piece))
        text += piece
    assert await posted[-1] is False  # no stop read was asked for

    assert await communicator.receive_json_from(timeout=5) == {"k": "reset", **base}
    shown = ""
    while len(shown) < len(text):
        frame = await communicator.receive_json_from(timeout=5)
        assert frame["offset"] == len(shown)  # in order, no gap, no duplicate
        # Stored before it was published: a page reconnecting now would not miss this delta.
        assert (await streaming.load_partial(rid))[1].startswith(shown + frame["text"])
        shown += frame["text"]
    assert shown == text
    assert await streaming.load_partial(rid) == (2000, text)

    await database_sync_to_async(streaming.request_stop)(rid, 2)
    stop = pub.post(
        battle.public_id, {"k": "delta", **base, "offset": len(text), "text": "!"},
        response_public_id=rid, text="!", stop_attempt=2,
    )  # fmt: skip
    assert await stop is True
    await communicator.disconnect()
