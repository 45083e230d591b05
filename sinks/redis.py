"""Redis: hot session state for the respond path (last N turns, counters).

Keys are tenant-scoped: ``{prefix}{tenant}:session:{sessionId}:<part>``. Each write is one
MULTI/EXEC transaction guarded by a "seen event ids" set, so a redelivered event changes nothing
(at-least-once delivery, exactly-once effect). Keys expire after ``ttl_s`` of inactivity.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

import redis.asyncio as aredis
from redis.exceptions import RedisError

from sinks.base import Sink, SinkError

__all__ = ["RedisSink", "RedisSinkError", "SessionUpdate", "session_key"]

# Only applies the update when the event id is new; returns 1 if applied, 0 if a duplicate.
_APPLY = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
local ttl = tonumber(ARGV[2])
redis.call('EXPIRE', KEYS[1], ttl)
if ARGV[3] ~= '' then
  redis.call('RPUSH', KEYS[2], ARGV[3])
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1)
  redis.call('EXPIRE', KEYS[2], ttl)
end
local i = 5
while i <= #ARGV do
  redis.call('HINCRBY', KEYS[3], ARGV[i], tonumber(ARGV[i + 1]))
  i = i + 2
end
redis.call('EXPIRE', KEYS[3], ttl)
return 1
"""


class RedisSinkError(SinkError):
    """Redis refused a write or is unreachable."""


def session_key(prefix: str, tenant: str, session_id: str, part: str) -> str:
    """The one place a session's Redis key is spelled."""
    return f"{prefix}{tenant}:session:{session_id}:{part}"


@dataclass
class SessionUpdate:
    """One event's effect on a session: an optional turn to remember and counters to bump."""

    tenant: str
    session_id: str
    event_id: str
    turn: dict[str, Any] | None = None
    counters: dict[str, int] | None = None


class RedisSink(Sink[SessionUpdate]):
    """Apply session updates idempotently and read them back for the respond path.

    :param client: an asyncio Redis client (``infra.clients.redis_client``).
    :param prefix: key prefix (``twin:`` in production; tests use a unique one).
    :param last_turns: how many recent turns to keep per session.
    :param ttl_s: expiry of a session's keys after its last write.
    """

    def __init__(self, client: aredis.Redis, prefix: str = "twin:", last_turns: int = 20, ttl_s: int = 86_400):
        self.client = client
        self.prefix = prefix
        self.last_turns = last_turns
        self.ttl_s = ttl_s
        self._apply = client.register_script(_APPLY)

    def key(self, tenant: str, session_id: str, part: str) -> str:
        return session_key(self.prefix, tenant, session_id, part)

    async def write(self, batch: Sequence[SessionUpdate]) -> int:
        """Apply each update once; returns how many were new."""
        applied = 0
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for u in batch:
                    args: list[Any] = [u.event_id, self.ttl_s, json.dumps(u.turn) if u.turn else "", self.last_turns]
                    for name, inc in (u.counters or {}).items():
                        args += [name, int(inc)]
                    keys = [self.key(u.tenant, u.session_id, p) for p in ("seen", "turns", "counters")]
                    await self._apply(keys=keys, args=args, client=pipe)
                results = await pipe.execute()
            applied = sum(int(r) for r in results)
        except RedisError as exc:
            raise RedisSinkError(f"redis write failed: {exc}") from exc
        return applied

    async def recent_turns(self, tenant: str, session_id: str) -> list[dict[str, Any]]:
        """The session's last turns, oldest first."""
        raw = await self.client.lrange(self.key(tenant, session_id, "turns"), 0, -1)
        return [json.loads(r) for r in raw]

    async def counters(self, tenant: str, session_id: str) -> dict[str, int]:
        raw = await self.client.hgetall(self.key(tenant, session_id, "counters"))
        return {k: int(v) for k, v in raw.items()}

    async def erase(self, tenant: str, session_id: str) -> int:
        """Remove every key of one session (erasure requests)."""
        return int(await self.client.delete(*(self.key(tenant, session_id, p) for p in ("seen", "turns", "counters"))))

    async def close(self) -> None:
        await self.client.aclose()
