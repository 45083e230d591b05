from infra.clients import redis_client
from sinks.redis import RedisSink, SessionUpdate


async def test_session_state_is_idempotent_and_bounded(cfg, redis_url, unique_name):
    sink = RedisSink(redis_client(cfg), prefix=f"test:{unique_name}:", last_turns=3)
    updates = [
        SessionUpdate("acme", "s1", f"e{i}", turn={"role": "candidate", "text": f"t{i}"}, counters={"turns": 1})
        for i in range(5)
    ]
    assert await sink.write(updates) == 5
    assert await sink.write(updates[2:]) == 0, "redelivered events change nothing"
    assert [t["text"] for t in await sink.recent_turns("acme", "s1")] == ["t2", "t3", "t4"]
    assert await sink.counters("acme", "s1") == {"turns": 5}
    # Tenant-scoped keys: another tenant's session with the same id is separate.
    assert await sink.recent_turns("other", "s1") == []
    assert await sink.erase("acme", "s1") == 3
    assert await sink.recent_turns("acme", "s1") == []
    await sink.close()
