"""core.leases on the configured store (Redis with services, memory on the embedded default)
and on the in-process store."""

from __future__ import annotations

import uuid

import pytest

from core import leases
from tests.harness import wait_until


def _key() -> str:
    return leases.lease_key("tests.job", uuid.uuid4().hex)


def test_a_lease_has_one_holder_and_only_its_holder_releases_it():
    key = _key()
    lease = leases.acquire(key, ttl=5, keep=False)
    assert lease is not None and leases.alive([key]) == [True]
    assert leases.acquire(key, ttl=5) is None  # a second delivery of the same work
    impostor = leases.Lease(key=key, token="someone else", ttl=5)
    assert leases.release(impostor) is False and leases.alive([key]) == [True]
    assert leases.release(lease) is True
    assert leases.alive([key, _key()]) == [False, False]
    assert leases.acquire(key, ttl=5, keep=False) is not None  # free again


def test_a_lease_nobody_renews_lapses_after_its_ttl():
    key = _key()
    assert leases.acquire(key, ttl=0.2, keep=False) is not None
    wait_until(lambda: leases.alive([key]) == [False], timeout=5, what="the lease to lapse")
    assert leases.acquire(key, ttl=5, keep=False) is not None


def test_the_keeper_renews_a_held_lease_past_its_ttl_until_it_is_released():
    key = _key()
    lease = leases.acquire(key, ttl=0.3)
    assert lease is not None
    try:
        start = leases.keeper().renewals
        # Five renewals at a third of the TTL each: the lease has lived past its TTL.
        wait_until(lambda: leases.keeper().renewals >= start + 5, timeout=10, what="renewals")
        assert leases.alive([key]) == [True] and not lease.lost
    finally:
        leases.release(lease)
    assert leases.alive([key]) == [False]


@pytest.mark.parametrize("store", ["configured", "memory"])
def test_a_renewal_recreates_a_lease_the_store_lost_and_gives_up_one_another_took(store):
    backend = leases.backend() if store == "configured" else leases.MemoryBackend()
    mine = leases.Lease(key=_key(), token="me", ttl=5)
    theirs = leases.Lease(key=_key(), token="me", ttl=5)
    assert backend.acquire(mine.key, mine.token, 0.2)
    assert backend.acquire(theirs.key, "another holder", 5)
    # The store lost the key (it lapsed, or Redis restarted empty): the holder re-creates it.
    wait_until(lambda: backend.alive([mine.key]) == [False], timeout=5, what="a lapse")
    assert backend.renew([mine, theirs]) == [True, False]
    assert backend.alive([mine.key]) == [True]
    assert backend.release(theirs.key, "me") is False  # not ours to delete
    assert backend.release(mine.key, "me") and backend.release(theirs.key, "another holder")


def test_the_store_age_starts_when_a_store_is_first_asked():
    memory = leases.MemoryBackend()
    assert 0 <= memory.store_age() < 5
    first = leases.store_age()
    wait_until(lambda: leases.store_age() > first, timeout=5, what="the store to age")


def test_a_lease_needs_a_positive_ttl():
    with pytest.raises(ValueError):
        leases.acquire(_key(), ttl=0)
