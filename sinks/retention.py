"""Retention and erasure across every store: PostgreSQL, Weaviate, object storage and Redis.

One module, three callers: the ``retention_sweep`` agent (a Faust timer), ``twin retention run`` and
the gateway (``DELETE /api/interviews/session/{id}``, ``GET``/``PUT /api/admin/retention``)::

    async with Stores.open(settings) as stores:
        report = await run(stores, tenant="acme", dry_run=True)     # counts per tenant, kind and store
        report = await run(stores)                                  # every tenant, for real
        erasure = await erase_session(stores, "acme", "sess-7f3a", actor="cli:ops")

**Retention.** Each tenant keeps each kind of data for a number of days (``tenant_retention``, else
the ``RETENTION_<KIND>_DAYS`` setting; 0 keeps forever). Ages are measured on *our* clock (when we
received or stored a thing), never on client-supplied event timestamps:

=============  ===================================================================================
kind           what goes once it is older than the cutoff
=============  ===================================================================================
recordings     ``recordings`` rows (by ``created_at``) and their objects; ``sessions.video_url``
               pointing at one is cleared
telemetry      ``telemetry_events`` (by ``received_at``) and their ``turns``; the Redis session keys
               of sessions whose last telemetry is older; ``telemetry_sessions`` markers once both
               the telemetry and the vectors of the session are gone
vectors        Weaviate ``TurnChunk`` objects of sessions whose last telemetry is older;
               ``PersonaMemory`` objects of profile versions older than the active one (created
               before the cutoff)
eval           ``eval_samples``, ``eval_runs`` and ``eval_ratings`` (by ``created_at``; a rating of
               a removed sample goes with it)
=============  ===================================================================================

Sessions rows, profiles, datasets and the audit log are not aged (the audit log is never purged).

**Erasure.** :func:`erase_session` first writes a tombstone (``erased_sessions``) and, in the same
transaction, publishes the ``erased`` lifecycle event; then it deletes the session from every table,
the recording objects, its ``TurnChunk`` and ``PersonaMemory`` objects and its Redis keys. Every sink
checks the tombstone before writing (``PostgresSink.erased``), so events still in flight in Kafka, or
replayed from offset 0, re-create nothing. In PostgreSQL a per-session advisory lock (exclusive here,
shared in ``PostgresSink``) closes the race between that check and the deletes; a Weaviate or Redis
write that raced the erasure (checked just before the tombstone was committed) is removed by the
next run, which re-erases the sessions erased in the last ``RETENTION_ERASURE_RECHECK_DAYS`` (kind
``erasure``).

Every deletion is audited (``audit_log``; what, how many, which store): one record per tenant, kind
and store for retention (action ``retention.purge``), one per store for an erasure (``session.erase``).
Dry runs change nothing, the audit log included.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from infra.audit import record_async
from infra.settings import Settings
from sinks.base import SinkError
from sinks.weaviate import PERSONA_MEMORY, TURN_CHUNKS, weaviate_tenant

__all__ = [
    "KINDS",
    "STORES",
    "REDIS_SESSION_PARTS",
    "Deletion",
    "Erasure",
    "Policy",
    "RetentionError",
    "RetentionReport",
    "Stores",
    "default_days",
    "erase_session",
    "erased_event",
    "find_session",
    "get_policy",
    "run",
    "set_policy",
]

log = logging.getLogger(__name__)

KINDS = ("recordings", "telemetry", "vectors", "eval")
STORES = ("postgres", "objects", "weaviate", "redis")
# Every per-session Redis key part (sinks/redis.py: seen, turns, counters; feature_extraction: features).
REDIS_SESSION_PARTS = ("seen", "turns", "counters", "features")
_LOCK_ID = 0x7417_7E7E  # pg advisory lock: one retention run at a time
_IDS_PER_CALL = 200  # session ids per Weaviate contains_any filter
_MAX_GROUPS = 1_000_000  # sessions per tenant listed from TurnChunk in one aggregate

# Tables holding a session's data, children first (recordings reference sessions).
_SESSION_TABLES = ("turns", "telemetry_events", "telemetry_sessions", "recordings", "eval_ratings", "eval_samples",
                   "dataset_sessions", "interviewer_splits", "sessions")


class RetentionError(SinkError):
    """A store refused a deletion; the message names the store. Deletions are idempotent: retry."""


# --------------------------------------------------------------------------- policy


def default_days(cfg: Settings) -> dict[str, int]:
    """The settings' retention per kind (``RETENTION_<KIND>_DAYS``; 0 keeps forever)."""
    return {"recordings": cfg.RETENTION_RECORDINGS_DAYS, "telemetry": cfg.RETENTION_TELEMETRY_DAYS,
            "vectors": cfg.RETENTION_VECTORS_DAYS, "eval": cfg.RETENTION_EVAL_DAYS}


@dataclass(frozen=True)
class Policy:
    """A tenant's retention: ``days`` per kind (0 = forever) and where each came from."""

    tenant: str
    days: dict[str, int]
    source: dict[str, str]  # kind -> "tenant" | "default"

    def cutoff(self, kind: str, now: datetime) -> datetime | None:
        """Data of ``kind`` older than this goes; None keeps it forever."""
        days = self.days[kind]
        return None if days <= 0 else now - timedelta(days=days)

    def to_dict(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "days": dict(self.days), "source": dict(self.source)}


def _policy(cfg: Settings, tenant: str, rows: Iterable[tuple[str, int]]) -> Policy:
    days, source = default_days(cfg), dict.fromkeys(KINDS, "default")
    for kind, value in rows:
        if kind in days:
            days[kind], source[kind] = int(value), "tenant"
    return Policy(tenant, days, source)


async def _policies(conn, cfg: Settings, tenants: Sequence[str]) -> dict[str, Policy]:
    cur = await conn.execute("SELECT tenant, kind, days FROM tenant_retention WHERE tenant = ANY(%s)", (list(tenants),))
    rows: dict[str, list[tuple[str, int]]] = {}
    for tenant, kind, days in await cur.fetchall():
        rows.setdefault(tenant, []).append((kind, days))
    return {t: _policy(cfg, t, rows.get(t, ())) for t in tenants}


async def get_policy(pool, cfg: Settings, tenant: str) -> Policy:
    """A tenant's effective retention."""
    async with pool.connection() as conn:
        return (await _policies(conn, cfg, [tenant]))[tenant]


async def set_policy(pool, cfg: Settings, tenant: str, changes: dict[str, int | None], actor: str,
                     trace_id: str | None = None) -> Policy:
    """Set a tenant's days per kind (None: back to the default; 0: forever); audited with before/after."""
    unknown = set(changes) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown retention kind(s) {sorted(unknown)}; choose from {', '.join(KINDS)}")
    if any(v is not None and int(v) < 0 for v in changes.values()):
        raise ValueError("retention days must be >= 0 (0 keeps forever)")
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('tenant_retention:' || %s))", (tenant,))
        before = (await _policies(conn, cfg, [tenant]))[tenant]
        for kind, days in changes.items():
            if days is None:
                await conn.execute("DELETE FROM tenant_retention WHERE tenant = %s AND kind = %s", (tenant, kind))
            else:
                await conn.execute(
                    "INSERT INTO tenant_retention (tenant, kind, days, updated_by) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT (tenant, kind) DO UPDATE SET days = EXCLUDED.days, updated_by = EXCLUDED.updated_by,"
                    " updated_at = now()", (tenant, kind, int(days), actor))
        after = (await _policies(conn, cfg, [tenant]))[tenant]
        await record_async(conn, tenant, actor, "retention.policy_set", "retention_policy", tenant, "ok",
                           {"changes": changes, "before": before.days, "after": after.days}, trace_id=trace_id)
    return after


# --------------------------------------------------------------------------- stores


@dataclass
class Stores:
    """The four stores retention and erasure act on.

    :param cfg: settings (Redis key prefix, Weaviate collection prefix, defaults, recheck window).
    :param pool: an open async psycopg pool (at least 2 connections: a run holds one for its lock).
    :param weaviate: a connected synchronous ``weaviate.WeaviateClient`` (called in threads).
    :param redis: an asyncio Redis client.
    :param objects: the recordings' :class:`sinks.object_store.ObjectStore`.
    """

    cfg: Settings
    pool: Any
    weaviate: Any
    redis: Any
    objects: Any

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, cfg: Settings, objects=None):
        """Connect to every store from settings (the CLI and tests); closed on exit."""
        from infra.clients import pg_pool, redis_client, weaviate_client
        from sinks.object_store import object_store_from_settings

        pool = pg_pool(cfg, min_size=1, max_size=4)
        await pool.open(wait=True, timeout=30)
        client = redis = None
        try:
            client = await asyncio.to_thread(weaviate_client, cfg)
            redis = redis_client(cfg)
            if objects is None:
                objects = await asyncio.to_thread(object_store_from_settings, cfg)
            yield cls(cfg, pool, client, redis, objects)
        finally:
            if redis is not None:
                await redis.aclose()
            if client is not None:
                await asyncio.to_thread(client.close)
            await pool.close()

    def collection(self, spec) -> str:
        return f"{self.cfg.WEAVIATE_COLLECTION_PREFIX}{spec.name}"


# --------------------------------------------------------------------------- reports


@dataclass(frozen=True)
class Deletion:
    """``count`` things (``what``: a table, collection or key kind) removed from ``store``."""

    tenant: str
    kind: str  # recordings | telemetry | vectors | eval | erasure
    store: str  # postgres | objects | weaviate | redis
    what: str
    count: int


@dataclass
class RetentionReport:
    """What a run deleted (or, dry, would delete): non-zero counts only."""

    run_id: str
    dry_run: bool
    tenant: str | None
    tenants: int = 0
    deletions: list[Deletion] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped: str | None = None  # why the run did nothing (another one is running or ran just now)

    def total(self, tenant: str | None = None, store: str | None = None, kind: str | None = None) -> int:
        return sum(d.count for d in self.deletions if (tenant is None or d.tenant == tenant)
                   and (store is None or d.store == store) and (kind is None or d.kind == kind))

    def counts(self, tenant: str | None = None) -> dict[tuple[str, str, str, str], int]:
        """``(tenant, kind, store, what) -> count``."""
        return {(d.tenant, d.kind, d.store, d.what): d.count for d in self.deletions
                if tenant is None or d.tenant == tenant}

    def by_store(self) -> dict[str, dict[str, int]]:
        """``tenant -> store -> count``."""
        out: dict[str, dict[str, int]] = {}
        for d in self.deletions:
            per = out.setdefault(d.tenant, {})
            per[d.store] = per.get(d.store, 0) + d.count
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"runId": self.run_id, "dryRun": self.dry_run, "tenant": self.tenant, "tenants": self.tenants,
                "skipped": self.skipped, "errors": self.errors,
                "deletions": [d.__dict__ for d in self.deletions]}


@dataclass
class Erasure:
    """What erasing one session removed, per store and table/collection/key kind."""

    tenant: str
    session_id: str
    already_erased: bool
    counts: dict[str, dict[str, int]]

    def totals(self) -> dict[str, int]:
        return {store: sum(c.values()) for store, c in self.counts.items()}


# --------------------------------------------------------------------------- small helpers


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def _pg_delete(conn, table: str, where: str, params: dict[str, Any], dry_run: bool) -> int:
    """Delete (or count, dry) the rows of ``table`` matching ``where``.

    ``table`` and ``where`` are this module's constants (never input); every value is in ``params``.
    """
    if dry_run:
        cur = await conn.execute(f"SELECT count(*) FROM {table} WHERE {where}", params)  # nosec B608  # module constants
        return int((await cur.fetchone())[0])
    cur = await conn.execute(f"DELETE FROM {table} WHERE {where}", params)  # nosec B608  # module constants
    return max(cur.rowcount, 0)


def _glob_escape(text: str) -> str:
    """``text`` literally inside a Redis MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _str(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _wv_tenants(client, name: str) -> set[str]:
    """The Weaviate tenants of a collection (empty when it does not exist)."""
    if not client.collections.exists(name):
        return set()
    return set(client.collections.use(name).tenants.get())


def _wv_coll(client, name: str, tenant: str, known: set[str] | None = None):
    """A collection scoped to a tenant, or None when either does not exist (nothing is created)."""
    wt = weaviate_tenant(tenant)
    if known is not None:
        if wt not in known:
            return None
    elif not client.collections.exists(name) or not client.collections.use(name).tenants.exists(wt):
        return None
    return client.collections.use(name).with_tenant(wt)


def _wv_delete(coll, flt, dry_run: bool) -> int:
    """Delete (or count) the objects matching ``flt``; loops past Weaviate's per-call limit."""
    if dry_run:
        return int(coll.aggregate.over_all(filters=flt, total_count=True).total_count or 0)
    total = 0
    for _ in range(10_000):
        res = coll.data.delete_many(where=flt)
        total += int(res.successful)
        if res.failed:
            raise RetentionError(f"weaviate refused {res.failed} deletions")
        if not res.successful or res.matches <= res.successful and res.matches < 10_000:
            break
    return total


def _wv_delete_sessions(coll, session_ids: Sequence[str], dry_run: bool) -> int:
    from weaviate.classes.query import Filter

    total = 0
    ids = list(session_ids)
    for i in range(0, len(ids), _IDS_PER_CALL):
        total += _wv_delete(coll, Filter.by_property("sessionId").contains_any(ids[i:i + _IDS_PER_CALL]), dry_run)
    return total


def _wv_session_counts(coll) -> dict[str, int]:
    """``sessionId -> objects`` of one tenant of a collection."""
    from weaviate.classes.aggregate import GroupByAggregate

    res = coll.aggregate.over_all(group_by=GroupByAggregate(prop="sessionId", limit=_MAX_GROUPS), total_count=True)
    return {str(g.grouped_by.value): int(g.total_count or 0) for g in res.groups if g.grouped_by.value}


async def _last_activity(conn, tenant: str, session_ids: Sequence[str]) -> dict[str, datetime]:
    """When we last received telemetry of each known session (its marker's time when none is left)."""
    if not session_ids:
        return {}
    cur = await conn.execute(
        "SELECT s.session_id, greatest(s.created_at, max(e.received_at)) FROM telemetry_sessions s"
        " LEFT JOIN telemetry_events e ON e.session_id = s.session_id"
        " WHERE s.tenant = %s AND s.session_id = ANY(%s) GROUP BY s.session_id, s.created_at",
        (tenant, list(session_ids)))
    return {sid: last for sid, last in await cur.fetchall()}


async def _redis_sessions(stores: Stores, tenant: str | None) -> dict[str, dict[str, list[str]]]:
    """``tenant -> session -> keys`` of the hot session state (one SCAN over the keyspace)."""
    prefix = stores.cfg.REDIS_KEY_PREFIX
    pattern = _glob_escape(prefix) + (_glob_escape(tenant) if tenant is not None else "*") + ":session:*"
    out: dict[str, dict[str, list[str]]] = {}
    async for raw in stores.redis.scan_iter(match=pattern, count=1000):
        key = _str(raw)
        t, sep, tail = key[len(prefix):].partition(":session:")
        sid, _, part = tail.rpartition(":")
        if sep and sid and part:
            out.setdefault(t, {}).setdefault(sid, []).append(key)
    return out


async def _redis_delete(redis, keys: Sequence[str], dry_run: bool) -> int:
    if not keys:
        return 0
    keys = list(dict.fromkeys(keys))
    return int(await (redis.exists if dry_run else redis.delete)(*keys))


# --------------------------------------------------------------------------- retention, per kind


async def _recordings(stores: Stores, conn, tenant: str, cutoff: datetime, dry_run: bool) -> list[Deletion]:
    cur = await conn.execute("SELECT recording_id, object_key, url FROM recordings WHERE tenant = %s"
                             " AND created_at < %s", (tenant, cutoff))
    rows = await cur.fetchall()
    if not rows:
        return []
    objects = 0
    for _, key, _ in rows:
        try:
            if await stores.objects.exists(key):
                objects += 1
                if not dry_run:
                    await stores.objects.delete(key)
        except Exception as exc:  # noqa: BLE001 - every object store error means "not deleted"
            raise RetentionError(f"object store: cannot delete {key}: {exc}") from exc
    ids, urls = [r[0] for r in rows], [r[2] for r in rows]
    if dry_run:
        removed = len(rows)
    else:
        await conn.execute("UPDATE sessions SET video_url = NULL WHERE tenant = %s AND video_url = ANY(%s)",
                           (tenant, urls))
        removed = (await conn.execute("DELETE FROM recordings WHERE recording_id = ANY(%s)", (ids,))).rowcount
    return [Deletion(tenant, "recordings", "objects", "recordings", objects),
            Deletion(tenant, "recordings", "postgres", "recordings", removed)]


async def _eval(conn, tenant: str, cutoff: datetime, dry_run: bool) -> list[Deletion]:
    p = {"tenant": tenant, "cutoff": cutoff}
    out = []
    for table, where in (
        ("eval_ratings", "tenant = %(tenant)s AND (created_at < %(cutoff)s OR sample_ids && ARRAY("
                         "SELECT sample_id FROM eval_samples WHERE tenant = %(tenant)s AND created_at < %(cutoff)s))"),
        ("eval_samples", "tenant = %(tenant)s AND created_at < %(cutoff)s"),
        ("eval_runs", "tenant = %(tenant)s AND created_at < %(cutoff)s"),
    ):
        out.append(Deletion(tenant, "eval", "postgres", table, await _pg_delete(conn, table, where, p, dry_run)))
    return out


async def _vectors(stores: Stores, conn, tenant: str, cutoff: datetime, dry_run: bool,
                   wv_known: dict[str, set[str]]) -> list[Deletion]:
    out = []
    chunks_name, memory_name = stores.collection(TURN_CHUNKS), stores.collection(PERSONA_MEMORY)
    chunks = _wv_coll(stores.weaviate, chunks_name, tenant, wv_known.get(chunks_name))
    if chunks is not None:
        per_session = await asyncio.to_thread(_wv_session_counts, chunks)
        last = await _last_activity(conn, tenant, list(per_session))
        expired = [sid for sid, when in last.items() if when < cutoff]
        n = await asyncio.to_thread(_wv_delete_sessions, chunks, expired, dry_run) if expired else 0
        out.append(Deletion(tenant, "vectors", "weaviate", TURN_CHUNKS.name, n))
    memory = _wv_coll(stores.weaviate, memory_name, tenant, wv_known.get(memory_name))
    if memory is not None:
        # Versions older than the interviewer's active one, created before the cutoff.
        cur = await conn.execute(
            "SELECT p.interviewer_id, p.version FROM interviewer_profiles p JOIN interviewer_profiles a"
            " ON a.tenant = p.tenant AND a.interviewer_id = p.interviewer_id AND a.active"
            " WHERE p.tenant = %s AND NOT p.active AND p.version < a.version AND p.created_at < %s", (tenant, cutoff))
        versions = await cur.fetchall()

        def delete_versions() -> int:
            from weaviate.classes.query import Filter

            return sum(_wv_delete(memory, Filter.by_property("interviewerId").equal(iid)
                                  & Filter.by_property("version").equal(int(v)), dry_run) for iid, v in versions)

        n = await asyncio.to_thread(delete_versions) if versions else 0
        out.append(Deletion(tenant, "vectors", "weaviate", PERSONA_MEMORY.name, n))
    return out


async def _telemetry(stores: Stores, conn, tenant: str, cutoff: datetime, marker_cutoff: datetime | None,
                     redis_sessions: dict[str, list[str]], dry_run: bool) -> list[Deletion]:
    out = []
    if redis_sessions:
        last = await _last_activity(conn, tenant, list(redis_sessions))
        keys = [k for sid, when in last.items() if when < cutoff for k in redis_sessions[sid]]
        out.append(Deletion(tenant, "telemetry", "redis", "session keys",
                            await _redis_delete(stores.redis, keys, dry_run)))
    p = {"tenant": tenant, "cutoff": cutoff, "markers": marker_cutoff}
    await conn.execute("SET LOCAL twin.retention = 'on'")  # the only way rows leave telemetry_events
    tables = [
        ("turns", "tenant = %(tenant)s AND EXISTS (SELECT 1 FROM telemetry_events e WHERE e.session_id ="
                  " turns.session_id AND e.event_id = turns.event_id AND e.received_at < %(cutoff)s)"),
        ("telemetry_events", "tenant = %(tenant)s AND received_at < %(cutoff)s"),
    ]
    if marker_cutoff is not None:  # the marker dates the session's vectors: kept while they are
        tables.append(("telemetry_sessions", "tenant = %(tenant)s AND created_at < %(markers)s AND NOT EXISTS ("
                                             "SELECT 1 FROM telemetry_events e WHERE e.session_id ="
                                             " telemetry_sessions.session_id AND e.received_at >= %(cutoff)s)"))
    for table, where in tables:
        out.append(Deletion(tenant, "telemetry", "postgres", table, await _pg_delete(conn, table, where, p, dry_run)))
    return out


# --------------------------------------------------------------------------- erasure, per session


async def _erase_postgres(conn, tenant: str, session_id: str, dry_run: bool) -> tuple[dict[str, int], list[str]]:
    """Delete a session's rows (in the caller's transaction); returns counts and its recordings' keys."""
    cur = await conn.execute("SELECT object_key FROM recordings WHERE tenant = %s AND session_id = %s",
                             (tenant, session_id))
    keys = [k for (k,) in await cur.fetchall()]
    await conn.execute("SET LOCAL twin.retention = 'on'")
    p = {"tenant": tenant, "sid": session_id}
    counts = {t: await _pg_delete(conn, t, "tenant = %(tenant)s AND session_id = %(sid)s", p, dry_run)
              for t in _SESSION_TABLES}
    return counts, keys


async def _erase_elsewhere(stores: Stores, tenant: str, session_id: str, keys: Sequence[str], dry_run: bool,
                           thorough: bool, out: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Delete a session's objects, vectors and Redis keys, filling ``out`` store by store (so a failure
    still reports what went); ``thorough`` also scans Redis by prefix."""
    # Object store: the rows' keys, and anything under the session's prefix (rows deleted earlier).
    try:
        found = set(keys)
        folder = f"{tenant}/{session_id}/"
        found |= {k for k in await stores.objects.keys(f"{tenant}/{session_id}") if k.startswith(folder)}
        out["objects"] = {"recordings": 0}
        for key in sorted(found):
            if await stores.objects.exists(key):
                if not dry_run:
                    await stores.objects.delete(key)
                out["objects"]["recordings"] += 1
    except Exception as exc:  # noqa: BLE001 - every object store error means "not deleted"
        raise RetentionError(f"object store: {type(exc).__name__}: {exc}") from exc

    def weaviate() -> None:
        out["weaviate"] = {}
        for spec in (TURN_CHUNKS, PERSONA_MEMORY):
            coll = _wv_coll(stores.weaviate, stores.collection(spec), tenant)
            out["weaviate"][spec.name] = _wv_delete_sessions(coll, [session_id], dry_run) if coll is not None else 0

    try:
        await asyncio.to_thread(weaviate)
    except Exception as exc:  # noqa: BLE001
        raise RetentionError(f"weaviate: {type(exc).__name__}: {exc}") from exc

    from sinks.redis import session_key

    prefix = stores.cfg.REDIS_KEY_PREFIX
    try:
        rkeys = [session_key(prefix, tenant, session_id, part) for part in REDIS_SESSION_PARTS]
        if thorough:  # also parts added later than REDIS_SESSION_PARTS
            pattern = _glob_escape(session_key(prefix, tenant, session_id, "")) + "*"
            rkeys += [_str(k) async for k in stores.redis.scan_iter(match=pattern, count=1000)]
        out["redis"] = {"session keys": await _redis_delete(stores.redis, rkeys, dry_run)}
    except Exception as exc:  # noqa: BLE001
        raise RetentionError(f"redis: {type(exc).__name__}: {exc}") from exc
    return out


async def find_session(pool, tenant: str, session_id: str) -> tuple[str | None, bool] | None:
    """``(interviewer_id, already_erased)`` of a session of this tenant; None when there is none (another
    tenant's session is None too)."""
    async with pool.connection() as conn:
        row = await (await conn.execute("SELECT interviewer_id FROM sessions WHERE tenant = %s AND session_id = %s",
                                        (tenant, session_id))).fetchone()
        tomb = await (await conn.execute("SELECT interviewer_id FROM erased_sessions WHERE tenant = %s"
                                         " AND session_id = %s", (tenant, session_id))).fetchone()
    if tomb is not None:
        return tomb[0], True
    if row is not None:
        return row[0], False
    return None


def erased_event(tenant: str, session_id: str, interviewer_id: str | None):
    """The ``erased`` lifecycle event: the session's id and nothing else it held. As the newest value of
    its key on the compacted ``sessions.lifecycle`` topic it replaces the states that carried data."""
    from schemas.models import SessionEvent

    ts = _now()
    return SessionEvent(eventId=f"{session_id}:erased:{int(ts.timestamp() * 1000)}", kind="erased", tenant=tenant,
                        sessionId=session_id, interviewerId=interviewer_id or "-", consentRecording=False,
                        consentTraining=False, ts=ts)


async def _audit_erasure(conn, tenant: str, session_id: str, actor: str, counts: dict[str, dict[str, int]],
                         trace_id: str | None, extra: dict[str, Any], only_nonzero: bool) -> None:
    for store, what in counts.items():
        total = sum(what.values())
        if only_nonzero and not total:
            continue
        await record_async(conn, tenant, actor, "session.erase", "session", session_id, "erased",
                           {"store": store, "counts": what, "total": total, **extra}, trace_id=trace_id)


async def erase_session(stores: Stores, tenant: str, session_id: str, actor: str,
                        publish: Callable[[Any], Awaitable[None]] | None = None,
                        trace_id: str | None = None) -> Erasure | None:
    """Remove one session from every store; None when the tenant has no such session.

    The tombstone, the ``erased`` lifecycle event (``publish(event)``, before the commit: a failed
    publish erases nothing) and the PostgreSQL deletes are one transaction; objects, vectors and Redis
    keys follow. Idempotent: erasing an erased session deletes what is left (normally nothing) and
    reports ``already_erased``. A store failing raises :class:`RetentionError` after the tombstone
    is committed; calling again finishes the job (so does the next retention run).
    """
    async with stores.pool.connection() as conn, conn.transaction():
        # Exclusive against PostgresSink's shared lock: a racing write lands before our deletes or not at all.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s::text || '/' || %s::text, 0))",
                           (tenant, session_id))
        row = await (await conn.execute(
            "SELECT interviewer_id FROM sessions WHERE tenant = %s AND session_id = %s FOR UPDATE",
            (tenant, session_id))).fetchone()
        cur = await conn.execute(
            "INSERT INTO erased_sessions (tenant, session_id, interviewer_id, erased_by)"
            " SELECT %s::text, %s::text, %s::text, %s::text WHERE %s"
            " ON CONFLICT (tenant, session_id) DO NOTHING RETURNING interviewer_id",
            (tenant, session_id, row[0] if row else None, actor, row is not None))
        fresh = await cur.fetchone() is not None
        if not fresh:
            tomb = await (await conn.execute("SELECT 1 FROM erased_sessions WHERE tenant = %s AND session_id = %s",
                                             (tenant, session_id))).fetchone()
            if tomb is None:
                return None
        if fresh and publish is not None:
            await publish(erased_event(tenant, session_id, row[0] if row else None))
        pg, keys = await _erase_postgres(conn, tenant, session_id, dry_run=False)
        await _audit_erasure(conn, tenant, session_id, actor, {"postgres": pg}, trace_id,
                             {"alreadyErased": not fresh}, only_nonzero=False)
    elsewhere: dict[str, dict[str, int]] = {}
    try:
        await _erase_elsewhere(stores, tenant, session_id, keys, dry_run=False, thorough=True, out=elsewhere)
    finally:
        if elsewhere:  # what went, even when a later store failed
            async with stores.pool.connection() as conn, conn.transaction():
                await _audit_erasure(conn, tenant, session_id, actor, elsewhere, trace_id,
                                     {"alreadyErased": not fresh}, only_nonzero=False)
    return Erasure(tenant, session_id, already_erased=not fresh, counts={"postgres": pg, **elsewhere})


async def _recheck_erasures(stores: Stores, conn, tenant: str, since: datetime, dry_run: bool, actor: str,
                            run_id: str) -> list[Deletion]:
    cur = await conn.execute("SELECT session_id FROM erased_sessions WHERE tenant = %s AND erased_at >= %s",
                             (tenant, since))
    out: list[Deletion] = []
    for (sid,) in await cur.fetchall():
        pg, keys = await _erase_postgres(conn, tenant, sid, dry_run)
        counts = {"postgres": pg, **await _erase_elsewhere(stores, tenant, sid, keys, dry_run, thorough=False, out={})}
        if not dry_run:
            await _audit_erasure(conn, tenant, sid, actor, counts, None, {"recheck": True, "runId": run_id},
                                 only_nonzero=True)
        out += [Deletion(tenant, "erasure", store, what, n) for store, c in counts.items() for what, n in c.items()]
    return out


# --------------------------------------------------------------------------- a run


async def _all_tenants(conn) -> list[str]:
    cur = await conn.execute(
        "SELECT tenant FROM telemetry_sessions UNION SELECT tenant FROM sessions UNION SELECT tenant FROM recordings"
        " UNION SELECT tenant FROM eval_samples UNION SELECT tenant FROM eval_runs"
        " UNION SELECT tenant FROM eval_ratings"
        " UNION SELECT tenant FROM interviewer_profiles UNION SELECT tenant FROM tenant_retention"
        " UNION SELECT tenant FROM erased_sessions")
    return sorted(t for (t,) in await cur.fetchall())


async def _audit_retention(conn, deletions: Sequence[Deletion], actor: str, policy: Policy, kind: str,
                           cutoff: datetime, run_id: str) -> None:
    """One audit record per store with something deleted."""
    by_store: dict[str, dict[str, int]] = {}
    for d in deletions:
        if d.count:
            by_store.setdefault(d.store, {})[d.what] = d.count
    for store, counts in by_store.items():
        await record_async(conn, policy.tenant, actor, "retention.purge", "retention", f"{kind}/{store}", "deleted",
                           {"kind": kind, "store": store, "counts": counts, "total": sum(counts.values()),
                            "days": policy.days[kind], "cutoff": cutoff.isoformat(), "runId": run_id})


async def _run_tenant(stores: Stores, policy: Policy, now: datetime, dry_run: bool, actor: str, run_id: str,
                      redis_sessions: dict[str, list[str]], wv_known: dict[str, set[str]],
                      report: RetentionReport) -> None:
    tenant = policy.tenant
    vectors_cutoff = policy.cutoff("vectors", now)
    telemetry_cutoff = policy.cutoff("telemetry", now)
    failed: set[str] = set()

    def markers(cutoff: datetime) -> datetime | None:
        # A session's telemetry marker dates its vectors: kept while they may still be there.
        if vectors_cutoff is None or "vectors" in failed:
            return None
        return min(cutoff, vectors_cutoff)
    steps: list[tuple[str, datetime | None, Callable]] = [
        ("recordings", policy.cutoff("recordings", now),
         lambda conn, c: _recordings(stores, conn, tenant, c, dry_run)),
        ("eval", policy.cutoff("eval", now), lambda conn, c: _eval(conn, tenant, c, dry_run)),
        # vectors before telemetry: the telemetry markers date the sessions' vectors
        ("vectors", vectors_cutoff, lambda conn, c: _vectors(stores, conn, tenant, c, dry_run, wv_known)),
        ("telemetry", telemetry_cutoff,
         lambda conn, c: _telemetry(stores, conn, tenant, c, markers(c), redis_sessions, dry_run)),
    ]
    recheck = stores.cfg.RETENTION_ERASURE_RECHECK_DAYS
    if recheck > 0:
        steps.append(("erasure", now - timedelta(days=recheck),
                      lambda conn, since: _recheck_erasures(stores, conn, tenant, since, dry_run, actor, run_id)))
    for kind, cutoff, step in steps:
        if cutoff is None:
            continue
        try:
            async with stores.pool.connection() as conn, conn.transaction():
                deletions = await step(conn, cutoff)
                if not dry_run and kind != "erasure":
                    await _audit_retention(conn, deletions, actor, policy, kind, cutoff, run_id)
        except Exception as exc:  # noqa: BLE001 - one tenant's failing store must not stop the others
            if type(exc).__name__ == "PoolClosed":  # the process is shutting down: stop, not fail every tenant
                raise
            log.warning("retention %s/%s failed: %s: %s", tenant, kind, type(exc).__name__, exc)
            report.errors.append(f"{tenant}/{kind}: {type(exc).__name__}: {exc}")
            failed.add(kind)
            continue
        report.deletions += [d for d in deletions if d.count]


async def run(stores: Stores, tenant: str | None = None, dry_run: bool = False, actor: str = "retention",
              now: datetime | None = None, exclusive: bool = False,
              min_interval_s: float | None = None) -> RetentionReport:
    """Apply the retention policy of one tenant (or of every tenant) to every store.

    :param dry_run: count what would go and change nothing (no audit records either).
    :param actor: who runs it, for the audit log (``retention_sweep``, ``cli:<user>``).
    :param now: the clock (tests); cutoffs are ``now - days``.
    :param exclusive: skip (``report.skipped``) when another run holds the lock, instead of waiting.
    :param min_interval_s: skip when a full run finished less than this long ago (workers take turns).
    """
    now = now or _now()
    report = RetentionReport(run_id=uuid.uuid4().hex, dry_run=dry_run, tenant=tenant)
    async with contextlib.AsyncExitStack() as stack:
        if not dry_run:
            lock = await stack.enter_async_context(stores.pool.connection())
            if exclusive:
                got = (await (await lock.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK_ID,))).fetchone())[0]
            else:
                await lock.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
                got = True
            await lock.commit()
            if not got:
                report.skipped = "another retention run is in progress"
                return report

            async def unlock() -> None:
                await lock.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
                await lock.commit()

            stack.push_async_callback(unlock)
            if min_interval_s:
                last = (await (await lock.execute(
                    "SELECT max(finished_at) FROM retention_runs WHERE NOT dry_run AND tenant IS NULL")).fetchone())[0]
                if last is not None and (now - last).total_seconds() < min_interval_s:
                    await lock.commit()
                    report.skipped = f"a run finished at {last.isoformat()}"
                    return report
            await lock.execute("INSERT INTO retention_runs (run_id, actor, tenant, dry_run) VALUES (%s, %s, %s, false)",
                               (report.run_id, actor, tenant))
            await lock.commit()
        async with stores.pool.connection() as conn:
            tenants = [tenant] if tenant is not None else await _all_tenants(conn)
            policies = await _policies(conn, stores.cfg, tenants)
        report.tenants = len(tenants)
        try:
            redis_sessions = await _redis_sessions(stores, tenant)
        except Exception as exc:  # noqa: BLE001
            report.errors.append(f"redis: {type(exc).__name__}: {exc}")
            redis_sessions = {}
        try:
            wv_known = {name: await asyncio.to_thread(_wv_tenants, stores.weaviate, name)
                        for name in (stores.collection(TURN_CHUNKS), stores.collection(PERSONA_MEMORY))}
        except Exception as exc:  # noqa: BLE001
            report.errors.append(f"weaviate: {type(exc).__name__}: {exc}")
            wv_known = {}
        for t in tenants:
            await _run_tenant(stores, policies[t], now, dry_run, actor, report.run_id, redis_sessions.get(t, {}),
                              wv_known, report)
        if not dry_run:
            totals: dict[str, int] = {}
            for d in report.deletions:
                totals[f"{d.kind}/{d.store}"] = totals.get(f"{d.kind}/{d.store}", 0) + d.count
            await lock.execute("UPDATE retention_runs SET finished_at = now(), counts = %s::jsonb, errors = %s::jsonb"
                               " WHERE run_id = %s", (json.dumps(totals), json.dumps(report.errors), report.run_id))
            await lock.commit()
    return report
