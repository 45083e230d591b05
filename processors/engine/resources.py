"""Store clients shared by the agents of one worker process, created on first use.

Every getter is idempotent and cheap after the first call. Creation failures propagate (a
PostgreSQL that is down raises a retriable ``PostgresSinkError``), so an agent calling a getter
inside its ``handle`` gets the same retry-with-backoff as for a failed write.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Sequence

from infra.settings import settings

__all__ = ["SeenBatches", "SessionDirectory", "close", "directory", "postgres", "redis", "redis_sink", "seen", "turn_chunks"]

_lock = asyncio.Lock()
_cache: dict[str, object] = {}


async def postgres():
    """The worker's ``PostgresSink`` (its own small pool)."""
    if "postgres" not in _cache:
        async with _lock:
            if "postgres" not in _cache:
                from infra.clients import pg_pool
                from sinks.postgres import PostgresSink

                sink = PostgresSink(pg_pool(settings, min_size=1, max_size=4))
                await sink.setup()
                _cache["postgres"] = sink
    return _cache["postgres"]


async def redis():
    """The worker's asyncio Redis client (decoded responses)."""
    if "redis" not in _cache:
        from infra.clients import redis_client

        _cache["redis"] = redis_client(settings)
    return _cache["redis"]


async def redis_sink():
    """The ``RedisSink`` holding hot session state (``REDIS_KEY_PREFIX``, ``REDIS_LAST_TURNS``)."""
    if "redis_sink" not in _cache:
        from sinks.redis import RedisSink

        _cache["redis_sink"] = RedisSink(await redis(), prefix=settings.REDIS_KEY_PREFIX,
                                         last_turns=settings.REDIS_LAST_TURNS)
    return _cache["redis_sink"]


async def turn_chunks():
    """The ``WeaviateSink`` of the TurnChunk collection (created when missing)."""
    if "turn_chunks" not in _cache:
        async with _lock:
            if "turn_chunks" not in _cache:
                from infra.clients import weaviate_client
                from sinks.weaviate import TURN_CHUNKS, WeaviateSink

                client = await asyncio.to_thread(weaviate_client, settings)
                sink = WeaviateSink(client, TURN_CHUNKS, prefix=settings.WEAVIATE_COLLECTION_PREFIX)
                await sink.setup()
                _cache["turn_chunks"] = sink
    return _cache["turn_chunks"]


class SessionDirectory:
    """``session_id -> interviewer_id`` from PostgreSQL, cached (a session's interviewer never changes)."""

    def __init__(self, sink, capacity: int = 50_000, miss_ttl_s: float = 5.0):
        self.sink = sink
        self.capacity = capacity
        self.miss_ttl_s = miss_ttl_s
        self._known: OrderedDict[str, str] = OrderedDict()
        self._missing: dict[str, float] = {}

    async def interviewers(self, session_ids: Sequence[str]) -> dict[str, str]:
        """``session_id -> interviewer_id`` of the known sessions among ``session_ids``."""
        now = time.monotonic()
        wanted = [s for s in dict.fromkeys(session_ids)
                  if s not in self._known and now - self._missing.get(s, -1e9) > self.miss_ttl_s]
        if wanted:
            found = await self.sink.interviewers(wanted)
            for sid in wanted:
                if sid in found:
                    self._known[sid] = found[sid]
                    self._missing.pop(sid, None)
                else:
                    self._missing[sid] = now
            while len(self._known) > self.capacity:
                self._known.popitem(last=False)
        return {s: self._known[s] for s in session_ids if s in self._known}


async def directory() -> SessionDirectory:
    """The worker's ``SessionDirectory``."""
    if "directory" not in _cache:
        _cache["directory"] = SessionDirectory(await postgres())
    return _cache["directory"]


class SeenBatches:
    """Which batch ids an agent already processed, in Redis with a TTL (``DEDUPE_TTL_S``).

    A replay or a client retry of the same batch carries the same batch id; an agent that emits
    to other topics checks here first so it does not emit the same records twice.
    """

    def __init__(self, client, agent: str, prefix: str, ttl_s: int):
        self.client = client
        self.agent = agent
        self.prefix = prefix
        self.ttl_s = ttl_s

    def key(self, tenant: str, batch_id: str) -> str:
        """The Redis key marking one batch as processed by this agent."""
        return f"{self.prefix}seen:{self.agent}:{tenant}:{batch_id}"

    async def seen(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """The ``(tenant, batch_id)`` pairs already marked."""
        if not keys:
            return set()
        values = await self.client.mget([self.key(t, b) for t, b in keys])
        return {k for k, v in zip(keys, values) if v is not None}

    def mark(self, pipe, keys: Sequence[tuple[str, str]]) -> None:
        """Queue marks on a Redis pipeline (so they commit together with the caller's state)."""
        for tenant, batch_id in keys:
            pipe.set(self.key(tenant, batch_id), "1", ex=self.ttl_s)


async def seen(agent: str) -> SeenBatches:
    """The ``SeenBatches`` of one agent."""
    key = f"seen:{agent}"
    if key not in _cache:
        _cache[key] = SeenBatches(await redis(), agent, settings.REDIS_KEY_PREFIX, settings.DEDUPE_TTL_S)
    return _cache[key]


async def close() -> None:
    """Close every client opened here (the worker calls it on shutdown)."""
    items = dict(_cache)
    _cache.clear()
    sink = items.get("postgres")
    if sink is not None:
        await sink.pool.close()
    client = items.get("redis")
    if client is not None:
        await client.aclose()
    chunks = items.get("turn_chunks")
    if chunks is not None:
        await asyncio.to_thread(chunks.client.close)


def _register_shutdown() -> None:
    from processors.engine.app import app

    @app.on_before_shutdown.connect
    async def _close_resources(sender, **kwargs) -> None:  # noqa: ARG001 - faust signal signature
        await close()


_register_shutdown()
