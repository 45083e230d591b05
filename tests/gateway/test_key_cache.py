"""The gateway's cache of verified API keys (gateway/auth.py ``KeyCache``): what a revocation does to it.

The cross-process behaviour (revoke on one gateway or with the CLI, refused at once by the others) is
tests/e2e/test_gateway_durability.py; these are the races a single process must get right.
"""

from __future__ import annotations

import time

from gateway.auth import KeyCache, Principal


def _principal() -> Principal:
    return Principal(tenant="t", actor="key:k1:x", scopes=frozenset({"admin"}))


def test_invalidate_drops_every_token_of_the_key_and_only_those():
    cache = KeyCache(ttl_s=60)
    cache.put("digest-a", _principal(), "k1")
    cache.put("digest-b", _principal(), "k1")  # another token string for the same key id (a forged secret)
    cache.put("digest-c", _principal(), "k2")
    assert cache.invalidate("k1") == 2
    assert cache.get("digest-a") == (False, None) and cache.get("digest-b") == (False, None)
    assert cache.get("digest-c")[0] is True


def test_a_lookup_that_started_before_the_revocation_is_not_cached():
    # Gateway reads the row (not revoked yet), the revocation commits and is heard, then the read's
    # result arrives: caching it would accept the revoked key for a whole TTL.
    cache = KeyCache(ttl_s=60)
    looked_up_at = time.monotonic()
    cache.invalidate("k1")
    cache.put("digest-a", _principal(), "k1", looked_up_at=looked_up_at)
    assert cache.get("digest-a") == (False, None)
    cache.put("digest-a", _principal(), "k1", looked_up_at=time.monotonic())  # a lookup after it: cached
    assert cache.get("digest-a")[0] is True


def test_an_entry_never_outlives_the_key_expiry():
    cache = KeyCache(ttl_s=60)
    cache.put("digest-a", _principal(), "k1", expires_in_s=0.05)
    assert cache.get("digest-a")[0] is True
    time.sleep(0.1)
    assert cache.get("digest-a") == (False, None)
