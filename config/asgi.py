"""One ASGI application: HTTP through Django, ``/ws/`` through Channels.

On the embedded default this process also runs the background thread pool and scheduler.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from channels.sessions import CookieMiddleware  # noqa: E402
from django.conf import settings  # noqa: E402

from config.routing import websocket_urlpatterns  # noqa: E402
from config.warmup import warm_up  # noqa: E402

warm_up()

router = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Cookies only: no socket needs the user, and the battle socket checks its session cookie
        # against the battle's voter itself. The session and auth middlewares would cost two
        # thread hops per connect (a session store and a user load).
        "websocket": AllowedHostsOriginValidator(
            CookieMiddleware(URLRouter(websocket_urlpatterns))
        ),
    }
)


async def application(scope: dict, receive: Any, send: Any) -> None:
    """The router, plus ASGI lifespan: on the embedded default, stream producers run on this
    server's event loop so the in-memory channel layer and the consumers share one loop."""
    if scope["type"] != "lifespan":
        await router(scope, receive, send)
        return
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if settings.BACKGROUND_MODE == "embedded":
                from arena.streaming import use_loop

                use_loop(asyncio.get_running_loop())
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


if (
    settings.BACKGROUND_MODE == "embedded"
    and os.environ.get("EMBEDDED_SCHEDULER", "1") == "1"
    and not settings.TESTING
):
    from core.background import start_embedded_scheduler

    start_embedded_scheduler()
