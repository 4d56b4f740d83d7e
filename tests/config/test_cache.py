"""The Redis cache degrades instead of failing requests: a real redis-server of the test's own is
stopped and started again under it."""

from __future__ import annotations

import pytest
from django.core.cache.backends.redis import RedisCache

from config.cache import DegradingRedisCache
from tests import harness


@pytest.fixture
def redis_server():
    with harness.private_redis() as redis:
        yield redis


def _cache(url: str) -> DegradingRedisCache:
    params = {"OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}, "KEY_PREFIX": "t"}
    return DegradingRedisCache(url, params)


def test_reads_miss_and_writes_drop_while_redis_is_down_then_it_is_used_again(redis_server):
    cache = _cache(redis_server.url)
    cache.set("k", "v")
    assert cache.get("k") == "v"
    redis_server.stop()
    assert cache.get("k", "default") == "default"
    assert cache.get_many(["k"]) == {}
    assert cache.add("lock", 1) is False  # a cache lock is not taken while Redis is down
    cache.set("k", "new")  # dropped, no error
    assert cache.set_many({"a": 1, "b": 2}) == ["a", "b"]
    assert cache.delete("k") is False
    with pytest.raises(Exception):  # noqa: B017 - a count cannot be faked: the caller decides
        cache.incr("n")
    redis_server.start()  # same port: the same cache object reconnects by itself
    assert cache.get("k") is None  # a fresh server: nothing kept from before
    cache.set("k", "back")
    assert cache.get("k") == "back"


def test_django_s_own_redis_cache_raises_where_ours_degrades(redis_server):
    plain = RedisCache(redis_server.url, {"OPTIONS": {"socket_connect_timeout": 1}})
    redis_server.stop()
    with pytest.raises(Exception):  # noqa: B017 - the 500 of the first release
        plain.get("k")
