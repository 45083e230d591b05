"""Two tenants, same interviewer and session ids, lookalike names: nothing crosses in Weaviate or Redis."""

from __future__ import annotations

import numpy as np
import pytest

from infra.clients import redis_client
from sinks.redis import RedisSink, SessionUpdate, session_key
from sinks.weaviate import PERSONA_MEMORY, TURN_CHUNKS, VectorObject, WeaviateSink, weaviate_tenant

# Pairs a character-replacing mapping would merge, and a name past Weaviate's 64-character limit.
LOOKALIKES = [("acme.eu", "acme_eu"), ("a-b.c", "a-b_c"), ("x" * 64 + "1", "x" * 64 + "2")]


def _unit(seed: int, dim: int = 384) -> list[float]:
    v = np.random.default_rng(seed).normal(size=dim)
    return list(v / np.linalg.norm(v))


def test_weaviate_tenant_names_are_one_to_one():
    names = [weaviate_tenant(t) for pair in LOOKALIKES for t in pair] + [weaviate_tenant("plain_name-1")]
    assert len(set(names)) == len(names)
    assert weaviate_tenant("plain_name-1") == "plain_name-1"
    assert all(len(n) <= 64 for n in names)


@pytest.mark.parametrize("spec", [TURN_CHUNKS, PERSONA_MEMORY], ids=lambda s: s.name)
def test_weaviate_queries_never_cross_tenants(weaviate_client, unique_name, spec):
    sink = WeaviateSink(weaviate_client, spec, prefix=f"Iso{unique_name.replace('-', '')}")
    sink.ensure_collection()
    try:
        for a, b in LOOKALIKES:
            # Same interviewer, same keys and vectors in both tenants; only the text tells them apart.
            for tenant in (a, b):
                objs = [VectorObject(f"k{i}", {"interviewerId": "dana", "text": f"{tenant} line {i}"}, _unit(i))
                        for i in range(6)]
                assert sink.upsert(tenant, objs) == 6
            for tenant, other in ((a, b), (b, a)):
                hits = sink.near_vector(tenant, _unit(3), limit=20, where={"interviewerId": "dana"})
                assert len(hits) == 6 and all(h.properties["text"].startswith(f"{tenant} line") for h in hits)
                assert sink.count(tenant) == 6
            assert sink.delete_where(a, "interviewerId", "dana") == 6
            assert sink.count(a) == 0 and sink.count(b) == 6
        assert sink.near_vector("nobody-here", _unit(3), limit=5) == []
    finally:
        sink.drop()


async def test_redis_keys_are_tenant_scoped(cfg, unique_name):
    prefix = f"test:{unique_name}:"
    client = redis_client(cfg)
    sink = RedisSink(client, prefix=prefix, last_turns=5)
    try:
        tenants = ("acme", "globex", "acme:session:s1")  # the last one would collide if ':' were allowed
        for tenant in tenants[:2]:
            await sink.write([SessionUpdate(tenant, "s1", f"{tenant}-e{i}", turn={"role": "candidate",
                                            "text": f"{tenant} says {i}"}, counters={"turns": 1}) for i in range(3)])
        for tenant, other in (("acme", "globex"), ("globex", "acme")):
            turns = await sink.recent_turns(tenant, "s1")
            assert [t["text"] for t in turns] == [f"{tenant} says {i}" for i in range(3)]
            keys = [k.decode() if isinstance(k, bytes) else k async for k in client.scan_iter(f"{prefix}{tenant}:*")]
            assert keys and all(k.startswith(f"{prefix}{tenant}:session:") for k in keys)
            assert not any(k.startswith(f"{prefix}{other}:") for k in keys)
        # Erasing one tenant's session leaves the other's.
        assert await sink.erase("acme", "s1") == 3
        assert await sink.recent_turns("acme", "s1") == [] and len(await sink.recent_turns("globex", "s1")) == 3
        # Tenant ids cannot contain ':' (infra/apikeys.TENANT_RE), so one tenant's keys never prefix another's.
        from infra.apikeys import TENANT_RE

        assert not TENANT_RE.match(tenants[2])
        assert session_key(prefix, "acme", "s1", "turns") != session_key(prefix, "acme:session", "s1", "turns")
    finally:
        async for key in client.scan_iter(f"{prefix}*"):
            await client.delete(key)
        await sink.close()
