"""The gateway's session rows in PostgreSQL: create, read (cached for capture checks), update.

Sessions are written here synchronously (the consent check of every capture request needs the
row at once) and published to ``sessions.lifecycle`` inside the same transaction: the row is
committed only after the broker acknowledged the event, so a failed publish stores nothing.
Every database failure becomes ``ApiError(503)``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.errors import ApiError

__all__ = ["SessionRow", "SessionStore"]

_COLUMNS = ("session_id, tenant, interviewer_id, candidate_ref, role, seniority, domain, consent_recording, "
            "consent_training, video_url, status, created_at, updated_at")
# Statements with the column list spliced in (constants: every value is a parameter).
_SELECT = f"SELECT {_COLUMNS} FROM sessions WHERE session_id = %s"  # nosec B608  # constant column list
_INSERT = ("INSERT INTO sessions (session_id, tenant, interviewer_id, candidate_ref, role, seniority, domain,"
           " consent_recording, consent_training, status, created_at, updated_at)"
           " VALUES (%(session_id)s, %(tenant)s, %(interviewer_id)s, %(candidate_ref)s, %(role)s,"
           " %(seniority)s, %(domain)s, %(consent_recording)s, %(consent_training)s, 'active', %(ts)s, %(ts)s)"
           f" ON CONFLICT (session_id) DO NOTHING RETURNING {_COLUMNS}")  # nosec B608  # constant column list
# What ``update`` may change: its column names are written into the statement (values are parameters).
_UPDATABLE = frozenset(c.strip() for c in _COLUMNS.split(",")) - {"session_id", "tenant", "created_at"}


@dataclass(frozen=True)
class SessionRow:
    """One row of ``sessions``."""

    session_id: str
    tenant: str
    interviewer_id: str
    candidate_ref: str | None
    role: str | None
    seniority: str | None
    domain: str | None
    consent_recording: bool
    consent_training: bool
    video_url: str | None
    status: str
    created_at: datetime
    updated_at: datetime


def _unavailable(exc: Exception) -> ApiError:
    return ApiError(503, "database_unavailable", f"PostgreSQL is unreachable ({type(exc).__name__}); retry later.",
                    headers={"Retry-After": "5"})


class SessionStore:
    """Session rows for one gateway process.

    :param pool: the gateway's async psycopg pool.
    :param ttl_s: how long a looked-up row may be reused by capture checks (``SESSION_CACHE_TTL_S``);
        this process's own updates invalidate it at once.
    """

    def __init__(self, pool, ttl_s: float = 2.0):
        self.pool = pool
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, SessionRow | None]] = {}

    async def get(self, tenant: str, session_id: str, fresh: bool = False) -> SessionRow | None:
        """The tenant's session, or None (another tenant's session is None too: no existence leak)."""
        hit = self._cache.get(session_id)
        if not fresh and hit and time.monotonic() - hit[0] < self.ttl_s:
            row = hit[1]
        else:
            try:
                async with self.pool.connection() as conn:
                    cur = await conn.execute(_SELECT, (session_id,))
                    found = await cur.fetchone()
            except Exception as exc:  # noqa: BLE001 - any database failure is "unavailable" to the caller
                raise _unavailable(exc) from exc
            row = SessionRow(*found) if found else None
            self._cache[session_id] = (time.monotonic(), row)
            if len(self._cache) > 100_000:
                self._cache.clear()
        return row if row is not None and row.tenant == tenant else None

    async def capture_session(self, tenant: str, session_id: str, principal=None) -> SessionRow:
        """The session a capture endpoint writes to: 404 when unknown, 403 without recorded consent
        (or when ``principal``, the caller, may not act for the session's interviewer)."""
        row = await self.get(tenant, session_id)
        if row is None:
            raise ApiError(404, "unknown_session", f"No session {session_id!r} in this tenant; create it first "
                           "with POST /api/interviews/session.", details=[{"interviewSessionId": session_id}])
        if principal is not None:
            principal.require_interviewer(row.interviewer_id)
            principal.touch("session", session_id)
        if not row.consent_recording:
            raise ApiError(403, "consent_required",
                           f"Session {session_id!r} has no recorded consent to recording, so nothing is captured. "
                           "Record the candidate's consent first (consentRecording=true on the session).",
                           details=[{"interviewSessionId": session_id, "consentRecording": False}])
        return row

    async def create(self, row: dict[str, Any], publish: Callable[[SessionRow], Awaitable[None]]) -> tuple[SessionRow, bool]:
        """Insert a session and publish it; returns (row, created). An existing session with the
        same id and the same fields is returned unchanged (a retried create); different fields: 409."""
        try:
            async with self.pool.connection() as conn, conn.transaction():
                # An erased session's id is never reused: its tombstone makes every sink drop its data.
                cur = await conn.execute("SELECT 1 FROM erased_sessions WHERE tenant = %s AND session_id = %s",
                                         (row["tenant"], row["session_id"]))
                if await cur.fetchone() is not None:
                    raise ApiError(409, "session_erased",
                                   f"Session {row['session_id']!r} was erased; create the session under a new id.")
                cur = await conn.execute(_INSERT, row)
                inserted = await cur.fetchone()
                if inserted is None:
                    cur = await conn.execute(_SELECT, (row["session_id"],))
                    existing = SessionRow(*await cur.fetchone())
                    same = existing.tenant == row["tenant"] and all(
                        getattr(existing, k) == row[k] for k in ("interviewer_id", "candidate_ref", "role", "seniority",
                                                                  "domain", "consent_recording", "consent_training"))
                    if not same:
                        raise ApiError(409, "session_exists",
                                       f"Session {row['session_id']!r} already exists with different fields.")
                    return existing, False
                created = SessionRow(*inserted)
                await publish(created)  # raises ApiError(503) -> the transaction rolls back
        except ApiError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _unavailable(exc) from exc
        self._cache[created.session_id] = (time.monotonic(), created)
        return created, True

    def forget(self, session_id: str) -> None:
        """Drop a cached row (the session was erased)."""
        self._cache.pop(session_id, None)

    async def update(self, tenant: str, session_id: str, changes: dict[str, Any],
                     check: Callable[[SessionRow, dict[str, Any]], None],
                     publish: Callable[[SessionRow, SessionRow], Awaitable[None]]) -> SessionRow:
        """Apply ``changes`` (column -> value) under a row lock; ``check(current, changes)`` may raise
        ApiError to refuse; ``publish(before, after)`` runs before the commit."""
        if not _UPDATABLE.issuperset(changes):  # a programming error, not the database's
            raise ValueError(f"not updatable session columns: {sorted(set(changes) - _UPDATABLE)}")
        try:
            async with self.pool.connection() as conn, conn.transaction():
                cur = await conn.execute(_SELECT + " FOR UPDATE", (session_id,))
                found = await cur.fetchone()
                if found is None or found[1] != tenant:
                    raise ApiError(404, "unknown_session", f"No session {session_id!r} in this tenant.")
                before = SessionRow(*found)
                check(before, changes)
                sets = ", ".join(f"{col} = %({col})s" for col in changes)
                sql = (f"UPDATE sessions SET {sets} WHERE session_id = %(session_id__)s"  # nosec B608  # names checked
                       f" RETURNING {_COLUMNS}")
                cur = await conn.execute(sql, {**changes, "session_id__": session_id})
                after = SessionRow(*await cur.fetchone())
                await publish(before, after)
        except ApiError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _unavailable(exc) from exc
        self._cache[session_id] = (time.monotonic(), after)
        return after

    async def init_telemetry(self, tenant: str, session_id: str) -> tuple[bool, dict[str, int]]:
        """Create the session's zeroed telemetry record if missing; returns (created, counts by type)."""
        try:
            async with self.pool.connection() as conn, conn.transaction():
                cur = await conn.execute(
                    "INSERT INTO telemetry_sessions (session_id, tenant) VALUES (%s, %s)"
                    " ON CONFLICT (session_id) DO NOTHING RETURNING session_id", (session_id, tenant))
                created = await cur.fetchone() is not None
                cur = await conn.execute(
                    "SELECT type, count(*) FROM telemetry_events WHERE session_id = %s GROUP BY type", (session_id,))
                counts = {t: int(n) for t, n in await cur.fetchall()}
        except Exception as exc:  # noqa: BLE001
            raise _unavailable(exc) from exc
        return created, counts

    async def add_recording(self, row: dict[str, Any], publish: Callable[[], Awaitable[None]]) -> None:
        """Record a stored object; ``publish`` (the audit record) runs before the commit."""
        try:
            async with self.pool.connection() as conn, conn.transaction():
                await conn.execute(
                    "INSERT INTO recordings (recording_id, tenant, session_id, url, object_key, content_type,"
                    " size_bytes, sha256, encryption) VALUES (%(recording_id)s, %(tenant)s, %(session_id)s, %(url)s,"
                    " %(object_key)s, %(content_type)s, %(size_bytes)s, %(sha256)s, %(encryption)s)", row)
                await publish()
        except ApiError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _unavailable(exc) from exc
