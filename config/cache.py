"""Django's Redis cache with one ``redis.Redis`` client per connection pool.

Django builds a new ``redis.Redis`` object for every cache operation; constructing one (its
response-callback table) costs about 0.25 ms, more than the command itself on loopback. The
client is thread-safe (it borrows connections from the pool per command), so one per pool is
enough. Behaviour is otherwise Django's own.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class _SharedClient(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class SharedClientRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _SharedClient
