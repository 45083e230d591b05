"""The audit log outside the request path: write a record directly, and query the log.

Requests through the gateway are audited by ``gateway.auth.AuditMiddleware`` via the
``audit.records`` topic; agents publish ``AuditRecord``s to the same topic. Work that runs outside
both (the CLI's admin commands, the retention job run by hand) writes through :func:`record`, the
same INSERT the audit agent uses (idempotent by audit id). :func:`query` serves ``twin audit query``
and ``GET /api/admin/audit``.
"""

from __future__ import annotations

import getpass
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

__all__ = ["record", "record_async", "query", "AuditQuery", "cli_actor"]

_INSERT = ("INSERT INTO audit_log (audit_id, tenant, actor, action, resource_type, resource_id, outcome, detail,"
           " trace_id, ts) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s) ON CONFLICT (audit_id) DO NOTHING")


def cli_actor() -> str:
    """Who runs a CLI command: ``cli:<os user>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return "cli:unknown"


def record(conn, tenant: str, actor: str, action: str, resource_type: str, resource_id: str, outcome: str = "ok",
           detail: dict[str, Any] | None = None, audit_id: str | None = None, trace_id: str | None = None) -> str:
    """Append one audit record on an open (sync) psycopg connection; the caller commits."""
    audit_id = audit_id or uuid.uuid4().hex
    conn.execute(_INSERT, (audit_id, tenant, actor, action, resource_type, resource_id, outcome,
                           json.dumps(detail, default=str) if detail is not None else None, trace_id,
                           datetime.now(timezone.utc)))
    return audit_id


async def record_async(conn, tenant: str, actor: str, action: str, resource_type: str, resource_id: str,
                       outcome: str = "ok", detail: dict[str, Any] | None = None, audit_id: str | None = None,
                       trace_id: str | None = None) -> str:
    """:func:`record` on an async psycopg connection (retention and erasure); the caller commits."""
    audit_id = audit_id or uuid.uuid4().hex
    await conn.execute(_INSERT, (audit_id, tenant, actor, action, resource_type, resource_id, outcome,
                                 json.dumps(detail, default=str) if detail is not None else None, trace_id,
                                 datetime.now(timezone.utc)))
    return audit_id


@dataclass
class AuditQuery:
    """Filters; every one optional except the tenant (None = all tenants, for operators)."""

    tenant: str | None = None
    actor: str | None = None
    action: str | None = None          # substring, e.g. "DELETE" or "/respond"
    resource_type: str | None = None
    resource_id: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100

    def sql(self) -> tuple[str, dict[str, Any]]:
        clauses, params = [], {}
        for column, value in (("tenant", self.tenant), ("actor", self.actor), ("resource_type", self.resource_type),
                              ("resource_id", self.resource_id), ("outcome", self.outcome)):
            if value is not None:
                clauses.append(f"{column} = %({column})s")
                params[column] = value
        if self.action:
            clauses.append("action ILIKE %(action)s")
            params["action"] = f"%{self.action}%"
        if self.since:
            clauses.append("ts >= %(since)s")
            params["since"] = self.since
        if self.until:
            clauses.append("ts < %(until)s")
            params["until"] = self.until
        params["limit"] = max(1, min(int(self.limit), 10_000))
        where = " AND ".join(clauses) or "true"
        sql = ("SELECT audit_id, tenant, actor, action, resource_type, resource_id, outcome, detail, trace_id, ts"
               f" FROM audit_log WHERE {where}"  # nosec B608  # where: the constant clauses above, values are parameters
               " ORDER BY ts DESC, audit_id LIMIT %(limit)s")
        return sql, params


_FIELDS = ("auditId", "tenant", "actor", "action", "resourceType", "resourceId", "outcome", "detail", "traceId", "ts")


def query(conn, q: AuditQuery) -> list[dict[str, Any]]:
    """Matching records, newest first (sync connection)."""
    sql, params = q.sql()
    return [_row(r) for r in conn.execute(sql, params).fetchall()]


async def query_async(conn, q: AuditQuery) -> list[dict[str, Any]]:
    sql, params = q.sql()
    return [_row(r) for r in await (await conn.execute(sql, params)).fetchall()]


def _row(r) -> dict[str, Any]:
    out = dict(zip(_FIELDS, r))
    ts = out["ts"]
    out["ts"] = ts.astimezone(timezone.utc).isoformat() if isinstance(ts, datetime) else ts
    return out
