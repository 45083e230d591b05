"""Tenant administration: API keys and the audit log (scope ``admin``).

Admin calls act on the caller's own tenant only. Key management runs on a short-lived sync
connection in a thread (``sync_transaction``): it is rare, and shares one code path with ``twin keys``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway.auth import AdminAuth, Scope
from gateway.deps import sync_transaction
from gateway.errors import ApiError, error_responses
from infra import apikeys
from infra.audit import AuditQuery, query_async

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/admin", tags=["admin"], responses=error_responses(401, 403))

class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {
        "name": "interview-ui", "scopes": ["capture", "respond"], "interviewers": ["dana"], "expiresInDays": 90}})
    name: str = Field(min_length=1, max_length=64)
    scopes: list[Scope] = Field(min_length=1, max_length=6)
    interviewers: list[Annotated[str, Field(min_length=1, max_length=128)]] | None = Field(
        default=None, max_length=1000, description="Limit the key to these interviewers; omit for all.")
    expiresInDays: int | None = Field(default=None, ge=1, le=3650)


class KeyPublic(BaseModel):
    keyId: str
    tenant: str
    name: str
    scopes: list[str]
    interviewers: list[str] | None
    createdAt: str
    expiresAt: str | None
    revokedAt: str | None


class KeyCreated(BaseModel):
    token: str = Field(description="The secret, shown once: store it now.")
    key: KeyPublic


class KeyList(BaseModel):
    keys: list[KeyPublic]


class AuditEntry(BaseModel):
    auditId: str
    tenant: str
    actor: str
    action: str
    resourceType: str
    resourceId: str
    outcome: str
    detail: dict[str, Any] | None
    traceId: str | None
    ts: str


class AuditPage(BaseModel):
    records: list[AuditEntry]


@router.post("/keys", status_code=201, response_model=KeyCreated, responses=error_responses(422, 503))
async def create_key(body: KeyCreate, principal: AdminAuth, request: Request) -> Any:
    """Create an API key for this tenant; the token is in the response and nowhere else."""
    expires = timedelta(days=body.expiresInDays) if body.expiresInDays else None
    cred = await sync_transaction(request, lambda conn: apikeys.issue_key(
        conn, principal.tenant, body.name, body.scopes, body.interviewers, expires))
    principal.touch("api_key", cred.key.key_id)
    return KeyCreated(token=cred.token, key=KeyPublic(**cred.key.public()))


@router.get("/keys", response_model=KeyList, responses=error_responses(503))
async def list_keys(principal: AdminAuth, request: Request,
                    includeRevoked: bool = Query(False, description="Also list revoked keys.")) -> Any:  # noqa: N803
    """This tenant's keys (never their secrets)."""
    keys = await sync_transaction(request, lambda conn: apikeys.list_keys(conn, principal.tenant, includeRevoked))
    principal.touch("api_key", "*")
    return KeyList(keys=[KeyPublic(**k.public()) for k in keys])


@router.delete("/keys/{keyId}", response_model=KeyPublic, responses=error_responses(404, 503))
async def revoke_key(keyId: Annotated[str, Path(max_length=64)], principal: AdminAuth,  # noqa: N803
                     request: Request) -> Any:
    """Revoke a key of this tenant; every gateway stops accepting it at once (announced on Redis;
    should Redis be unreachable, within AUTH_CACHE_TTL_S seconds)."""
    principal.touch("api_key", keyId)
    key = await sync_transaction(request, lambda conn: apikeys.revoke_key(conn, keyId, principal.tenant))
    if key is None:
        raise ApiError(404, "unknown_key", f"No live key {keyId!r} in this tenant.")
    # Committed: forget it here, then tell the other gateways (gateway/revocations.py).
    state = request.app.state
    state.key_cache.invalidate(keyId)
    if not await asyncio.to_thread(apikeys.announce_revocation, state.settings, keyId):
        log.warning("key %s revoked but not announced (Redis unreachable): other gateways accept it for up to"
                    " AUTH_CACHE_TTL_S=%ss", keyId, state.settings.AUTH_CACHE_TTL_S)
    return KeyPublic(**key.public())


@router.get("/audit", response_model=AuditPage, responses=error_responses(422, 503))
async def read_audit(principal: AdminAuth, request: Request,
                     actor: Annotated[str | None, Query(max_length=200)] = None,
                     action: Annotated[str | None, Query(max_length=200, description="Substring match.")] = None,
                     resourceType: Annotated[str | None, Query(max_length=200)] = None,  # noqa: N803
                     resourceId: Annotated[str | None, Query(max_length=200)] = None,  # noqa: N803
                     outcome: Annotated[str | None, Query(max_length=64)] = None,
                     since: datetime | None = None, until: datetime | None = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
    """This tenant's audit records, newest first."""
    q = AuditQuery(tenant=principal.tenant, actor=actor, action=action, resource_type=resourceType,
                   resource_id=resourceId, outcome=outcome, since=since, until=until, limit=limit)
    principal.touch("audit_log", "*")
    try:
        async with request.app.state.pool.connection() as conn:
            rows = await query_async(conn, q)
    except Exception as exc:  # noqa: BLE001
        raise ApiError(503, "database_unavailable", f"PostgreSQL is unreachable ({type(exc).__name__}); retry later.",
                       headers={"Retry-After": "5"}) from exc
    return AuditPage(records=[AuditEntry(**r) for r in rows])
