"""``/healthz``: the state of every service the site depends on, 503 naming what is down."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

from config.logs import redact
from core.background import embedded_runner, is_embedded


def _database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


def _cache() -> dict[str, Any]:
    ping = getattr(cache, "ping", None)
    if ping is not None:  # the Redis cache degrades quietly for pages; the check wants the cause
        ping()
    key = f"healthz:{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=10)
    if cache.get(key) != "1":
        raise RuntimeError("value written was not read back")
    cache.delete(key)
    return {"backend": "redis" if settings.REDIS_URL else "locmem"}


def _channel_layer() -> dict[str, Any]:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")

    async def roundtrip() -> None:
        import asyncio

        channel = await layer.new_channel()
        await layer.send(channel, {"type": "health.ping"})
        message = await asyncio.wait_for(layer.receive(channel), timeout=2)
        if message.get("type") != "health.ping":
            raise RuntimeError("unexpected message")

    async_to_sync(roundtrip)()
    return {"backend": type(layer).__name__}


def _workers() -> dict[str, Any]:
    if is_embedded():
        embedded_runner()
        return {"mode": "embedded", "threads": settings.EMBEDDED_WORKERS}
    import redis

    # Ask the broker first: a control broadcast on a dead broker would retry for a long time.
    redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1).ping()
    from config.celery import app

    replies = app.control.inspect(timeout=1.0).ping() or {}
    if not replies:
        raise RuntimeError("no Celery worker answered")
    return {"mode": "celery", "workers": sorted(replies)}


CHECKS: dict[str, Callable[[], dict[str, Any]]] = {
    "database": _database,
    "cache": _cache,
    "channel_layer": _channel_layer,
    "workers": _workers,
}


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    results: dict[str, Any] = {}
    down: list[str] = []
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            detail = check()
            results[name] = {"ok": True, **detail}
        except Exception as exc:  # noqa: BLE001 - report every failure, never raise
            down.append(name)
            results[name] = {"ok": False, "error": redact(f"{type(exc).__name__}: {exc}")[:300]}
        results[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
    body = {"status": "down" if down else "ok", "down": down, "checks": results}
    return JsonResponse(body, status=503 if down else 200)
