"""WebSocket URL routes of every app, under ``/ws/``."""

from __future__ import annotations

from django.urls import path

from core.consumers import PingConsumer

websocket_urlpatterns: list = [
    path("ws/ping/", PingConsumer.as_asgi()),
]

try:  # each app contributes its own routes once it has any
    from arena.routing import websocket_urlpatterns as arena_ws

    websocket_urlpatterns += arena_ws
except ImportError:
    pass
try:
    from rating.routing import websocket_urlpatterns as rating_ws

    websocket_urlpatterns += rating_ws
except ImportError:
    pass
