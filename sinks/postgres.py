"""PostgreSQL: telemetry events, turns, sessions and the audit log.

Every write is idempotent, so a replay from offset 0 or a redelivery after a crash leaves the
tables as if each record had been written once:

- ``telemetry_events`` and ``turns``: ``INSERT ... ON CONFLICT DO NOTHING`` keyed by
  ``(session_id, event_id)``; telemetry_events is append-only (a trigger refuses UPDATE/DELETE,
  except ``purge_telemetry()``, the retention job);
- ``sessions``: upsert guarded by ``updated_at``, so an older lifecycle event never overwrites a
  newer state, and the same event applied twice changes nothing;
- ``audit_log``: ``ON CONFLICT (audit_id) DO NOTHING`` (audit ids are deterministic).

Nothing is written for an erased session (a tombstone in ``erased_sessions``, see sinks/retention.py):
its events still in flight, or replayed, are dropped here, and :meth:`PostgresSink.erased` lets the
other sinks do the same.

One batch is one transaction: either all of it is stored or none of it, and the caller commits
its Kafka offsets only after :meth:`PostgresSink.write` returned.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, Sequence

import psycopg

from infra.crypto import TURNS_TEXT, key_ring
from schemas.models import AuditRecord, SessionEvent, TelemetryRedacted, parse_ts
from sinks.base import Sink, SinkError

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

    from infra.crypto import KeyRing

__all__ = ["PostgresSink", "PostgresSinkError", "event_rows", "erased_sessions"]


class PostgresSinkError(SinkError):
    """A batch was not stored. ``retriable`` is True when PostgreSQL was unreachable (try again),
    False when the data itself was refused (dead-letter it)."""

    def __init__(self, message: str, retriable: bool):
        super().__init__(message)
        self.retriable = retriable


def _error(what: str, exc: Exception) -> PostgresSinkError:
    # OperationalError covers lost connections and the pool's PoolTimeout.
    retriable = isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError, OSError))
    return PostgresSinkError(f"{what}: {type(exc).__name__}: {exc}", retriable=retriable)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def event_rows(batch: TelemetryRedacted, ring: "KeyRing | None" = None) -> tuple[list[tuple], list[tuple]]:
    """The ``telemetry_events`` and ``turns`` rows of one redacted batch.

    The payload is the redacted event as JSON (its ``eventId`` included); what was redacted and
    dropped for the event is kept beside it under ``redactions`` / ``droppedFields`` (counts and
    hashes only, never original text). A turn's text is stored once, encrypted, in ``turns.text``
    (``infra.crypto.TURNS_TEXT``; ``ring`` defaults to the process key ring), not in the payload:
    the append-only payload could never be re-keyed.
    """
    redactions: dict[int, list[dict]] = {}
    for r in batch.redactions:
        redactions.setdefault(r.eventIndex, []).append({"field": r.field, "entityType": r.entityType, "count": r.count})
    dropped: dict[int, list[dict]] = {}
    for d in batch.droppedFields:
        dropped.setdefault(d.eventIndex, []).append({"field": d.field, "sha256": d.sha256, "size": d.size})
    events, turns = [], []
    session_id = batch.interviewSessionId
    for i, ev in enumerate(batch.events):
        payload = ev.model_dump(mode="json", exclude_none=True, exclude={"text"} if ev.type == "turn" else None)
        event_id = ev.eventId or ev.to_avro()["eventId"]
        payload["eventId"] = event_id
        if i in redactions:
            payload["redactions"] = redactions[i]
        if i in dropped:
            payload["droppedFields"] = dropped[i]
        ts = parse_ts(ev.ts)
        events.append((batch.tenant, session_id, event_id, ev.type, ts, ev.source, _dumps(payload)))
        if ev.type == "turn":
            text = TURNS_TEXT.seal(ev.text, batch.tenant, (session_id, event_id), ring=ring)
            turns.append((batch.tenant, session_id, event_id, ev.role, text, ts, ev.tokens, ev.latencyMs))
    return events, turns


_INSERT_EVENTS = """
INSERT INTO telemetry_events (tenant, session_id, event_id, type, ts, source, payload)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::text[], %s::text[]::jsonb[])
ON CONFLICT (session_id, event_id) DO NOTHING
"""
_INSERT_TURNS = """
INSERT INTO turns (tenant, session_id, event_id, role, text, ts, tokens, latency_ms)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::int[],
                     %s::float8[])
ON CONFLICT (session_id, event_id) DO NOTHING
"""
_INSERT_TELEMETRY_SESSIONS = """
INSERT INTO telemetry_sessions (session_id, tenant)
SELECT * FROM unnest(%s::text[], %s::text[])
ON CONFLICT (session_id) DO NOTHING
"""
_UPSERT_SESSION = """
INSERT INTO sessions AS s (session_id, tenant, interviewer_id, candidate_ref, role, seniority, domain,
                           consent_recording, consent_training, video_url, status, created_at, updated_at)
VALUES (%(sessionId)s, %(tenant)s, %(interviewerId)s, %(candidateRef)s, %(role)s, %(seniority)s, %(domain)s,
        %(consentRecording)s, %(consentTraining)s, %(videoUrl)s, %(status)s, %(ts)s, %(ts)s)
ON CONFLICT (session_id) DO UPDATE SET
  interviewer_id = EXCLUDED.interviewer_id, candidate_ref = EXCLUDED.candidate_ref, role = EXCLUDED.role,
  seniority = EXCLUDED.seniority, domain = EXCLUDED.domain, consent_recording = EXCLUDED.consent_recording,
  consent_training = EXCLUDED.consent_training, video_url = EXCLUDED.video_url,
  status = CASE WHEN %(kind)s IN ('ended', 'erased') THEN EXCLUDED.status ELSE s.status END,
  updated_at = EXCLUDED.updated_at
WHERE s.tenant = EXCLUDED.tenant AND s.updated_at <= EXCLUDED.updated_at
"""
_INSERT_AUDIT = """
INSERT INTO audit_log (audit_id, tenant, actor, action, resource_type, resource_id, outcome, detail, trace_id, ts)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s)
ON CONFLICT (audit_id) DO NOTHING
"""
_STATUS_OF_KIND = {"created": "active", "updated": "active", "ended": "ended", "erased": "erased"}
_ERASED = """
SELECT x.tenant, x.session_id FROM erased_sessions x
JOIN unnest(%s::text[], %s::text[]) AS u(tenant, session_id) USING (tenant, session_id)
"""
# The erasure takes this lock exclusively for its transaction (sinks/retention.py); writers take it
# shared before checking the tombstone, so a write either commits before the erasure deletes (and is
# deleted) or sees the tombstone (and is dropped): nothing slips in between.
_LOCK_SHARED = ("SELECT count(pg_advisory_xact_lock_shared(hashtextextended(u.tenant || '/' || u.session_id, 0)))"
                " FROM unnest(%s::text[], %s::text[]) AS u(tenant, session_id)")


async def erased_sessions(conn, pairs, lock: bool = False) -> set[tuple[str, str]]:
    """The ``(tenant, session_id)`` pairs among ``pairs`` that were erased (have a tombstone).

    :param lock: also take each session's erasure lock, shared, until the caller's transaction ends
        (writers that store in the same transaction).
    """
    pairs = sorted(set(pairs))
    if not pairs:
        return set()
    tenants, sessions = zip(*pairs)
    if lock:
        await conn.execute(_LOCK_SHARED, (list(tenants), list(sessions)))
    cur = await conn.execute(_ERASED, (list(tenants), list(sessions)))
    return {(t, s) for t, s in await cur.fetchall()}


class PostgresSink(Sink[TelemetryRedacted]):
    """Write redacted telemetry, session lifecycle and audit records idempotently.

    :param pool: an async psycopg pool (``infra.clients.pg_pool``); opened by :meth:`setup`
        when it is not open yet, closed by :meth:`close` only if this sink opened it.
    """

    def __init__(self, pool: "AsyncConnectionPool"):
        self.pool = pool
        self._opened = False

    async def setup(self) -> None:
        """Open the pool (waiting up to 30 s for PostgreSQL) unless the caller already did."""
        key_ring()  # a bad key ring fails here (KeyConfigError: retriable, agents store nothing until fixed)
        if getattr(self.pool, "closed", False):
            try:
                await self.pool.open(wait=True, timeout=30)
            except Exception as exc:  # noqa: BLE001
                raise _error("cannot connect to PostgreSQL (POSTGRES_HOST/PORT; start it with infra/up)", exc) from exc
            self._opened = True

    async def close(self) -> None:
        if self._opened:
            await self.pool.close()

    async def write(self, batch: Sequence[TelemetryRedacted]) -> int:
        """Store the events and turns of redacted batches; returns how many events were new."""
        if not batch:
            return 0
        try:
            async with self.pool.connection() as conn, conn.transaction():
                erased = await erased_sessions(conn, {(r.tenant, r.interviewSessionId) for r in batch}, lock=True)
                events: list[tuple] = []
                turns: list[tuple] = []
                sessions: dict[str, str] = {}
                for record in batch:
                    if (record.tenant, record.interviewSessionId) in erased:
                        continue
                    e, t = event_rows(record)
                    events += e
                    turns += t
                    sessions[record.interviewSessionId] = record.tenant
                if not events and not sessions:
                    return 0
                inserted = 0
                if events:
                    cur = await conn.execute(_INSERT_EVENTS, [list(col) for col in zip(*events)])
                    inserted = cur.rowcount
                if turns:
                    await conn.execute(_INSERT_TURNS, [list(col) for col in zip(*turns)])
                await conn.execute(_INSERT_TELEMETRY_SESSIONS, [list(sessions), list(sessions.values())])
                return inserted
        except (psycopg.Error, OSError) as exc:
            raise _error("telemetry write failed", exc) from exc

    async def write_sessions(self, events: Sequence[SessionEvent]) -> int:
        """Apply session lifecycle events (latest ``ts`` wins); returns rows inserted or changed."""
        if not events:
            return 0
        params = []
        for ev in events:
            row = ev.model_dump(exclude={"traceContext", "eventId"})
            row["status"] = _STATUS_OF_KIND[ev.kind]
            params.append(row)
        try:
            async with self.pool.connection() as conn, conn.transaction():
                erased = await erased_sessions(conn, {(p["tenant"], p["sessionId"]) for p in params}, lock=True)
                changed = 0
                async with conn.cursor() as cur:
                    for p in params:
                        if (p["tenant"], p["sessionId"]) in erased:
                            continue  # an erased session is never re-created, not even as "erased"
                        await cur.execute(_UPSERT_SESSION, p)
                        changed += cur.rowcount
                return changed
        except (psycopg.Error, OSError) as exc:
            raise _error("session write failed", exc) from exc

    async def write_audit(self, records: Sequence[AuditRecord]) -> int:
        """Append audit records (idempotent by ``auditId``); returns how many were new."""
        if not records:
            return 0
        rows = [(r.auditId, r.tenant, r.actor, r.action, r.resourceType, r.resourceId, r.outcome,
                 _dumps(r.detail) if r.detail is not None else None, r.traceId, r.ts) for r in records]
        try:
            async with self.pool.connection() as conn, conn.transaction():
                async with conn.cursor() as cur:
                    await cur.executemany(_INSERT_AUDIT, rows, returning=False)
                    return max(cur.rowcount, 0)
        except (psycopg.Error, OSError) as exc:
            raise _error("audit write failed", exc) from exc

    async def erased(self, pairs) -> set[tuple[str, str]]:
        """The ``(tenant, session_id)`` pairs among ``pairs`` whose session was erased: sinks outside
        PostgreSQL (Weaviate, Redis) drop their records."""
        try:
            async with self.pool.connection() as conn:
                return await erased_sessions(conn, pairs)
        except (psycopg.Error, OSError) as exc:
            raise _error("erased-session look-up failed", exc) from exc

    async def interviewers(self, session_ids: Sequence[str]) -> dict[str, str]:
        """``session_id -> interviewer_id`` for the sessions that exist."""
        if not session_ids:
            return {}
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute("SELECT session_id, interviewer_id FROM sessions WHERE session_id = ANY(%s)",
                                         (list(session_ids),))
                return {sid: iid for sid, iid in await cur.fetchall()}
        except (psycopg.Error, OSError) as exc:
            raise _error("session look-up failed", exc) from exc

    async def purge(self, cutoff: datetime, tenant: str | None = None) -> int:
        """Retention: delete telemetry received before ``cutoff`` (of one tenant, or all), the only
        deletes the append-only table allows; returns how many events went."""
        try:
            async with self.pool.connection() as conn, conn.transaction():
                cur = await conn.execute("SELECT purge_telemetry(%s, %s)", (cutoff, tenant))
                return int((await cur.fetchone())[0])
        except (psycopg.Error, OSError) as exc:
            raise _error("retention purge failed", exc) from exc
