"""Retention policy and session erasure (issue 7); the work itself is sinks/retention.py.

- ``GET`` / ``PUT /api/admin/retention``: the tenant's retention, in days per kind of data (scope
  ``admin``). ``0`` keeps a kind forever; ``null`` in a PUT returns the kind to the default.
- ``DELETE /api/interviews/session/{id}``: erase one session from every store (scope ``admin``; a
  key limited to some interviewers erases only their sessions). 200 with what went, per store. A
  second DELETE of the same session answers 200 again, ``alreadyErased: true``, with what was left
  (normally zeros); an unknown session, or another tenant's, is 404 with the same body.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway.auth import AdminAuth
from gateway.deps import ObjectStoreDep, PublisherDep, SessionStoreDep
from gateway.errors import ApiError, error_responses
from infra.tracing import current_trace_id
from schemas.topics import SESSIONS_LIFECYCLE
from sinks import retention
from sinks.retention import KINDS, RetentionError

__all__ = ["ErasurePublic", "RetentionPolicyPublic", "RetentionUpdate", "router"]

router = APIRouter(responses=error_responses(401, 403))

Days = Annotated[int, Field(ge=0, le=36_500)]


class RetentionPolicyPublic(BaseModel):
    """A tenant's retention: days per kind (0 = forever), whether the tenant set it, and the defaults."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "tenant": "acme", "days": {"recordings": 90, "telemetry": 365, "vectors": 365, "eval": 0},
        "source": {"recordings": "tenant", "telemetry": "default", "vectors": "default", "eval": "tenant"},
        "defaults": {"recordings": 365, "telemetry": 365, "vectors": 365, "eval": 365}}]})
    tenant: str
    days: dict[str, int]
    source: dict[str, str]
    defaults: dict[str, int]


class RetentionUpdate(BaseModel):
    """Days per kind to change; kinds not sent keep their value, ``null`` returns to the default."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"recordings": 90, "eval": 0},
                                                                              {"telemetry": None}]})
    recordings: Days | None = Field(default=None, description="Screen recordings (objects and rows).")
    telemetry: Days | None = Field(default=None, description="Telemetry events, turns and hot session state.")
    vectors: Days | None = Field(default=None, description="Turn chunks, and memory of superseded profile versions.")
    eval: Days | None = Field(default=None, description="Eval samples, ratings and runs.")


class ErasurePublic(BaseModel):
    """What erasing a session removed: per store, per table / collection / key kind."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "sessionId": "sess-7f3a", "tenant": "acme", "alreadyErased": False,
        "erased": {"postgres": {"telemetry_events": 212, "turns": 60, "recordings": 1, "sessions": 1},
                   "objects": {"recordings": 1}, "weaviate": {"TurnChunk": 60, "PersonaMemory": 0},
                   "redis": {"session keys": 4}},
        "totals": {"postgres": 274, "objects": 1, "weaviate": 60, "redis": 4}}]})
    sessionId: str
    tenant: str
    alreadyErased: bool
    erased: dict[str, dict[str, int]]
    totals: dict[str, int]


def _unavailable(exc: Exception) -> ApiError:
    return ApiError(503, "database_unavailable", f"PostgreSQL is unreachable ({type(exc).__name__}); retry later.",
                    headers={"Retry-After": "5"})


def _public(policy: retention.Policy, cfg) -> RetentionPolicyPublic:
    return RetentionPolicyPublic(tenant=policy.tenant, days=policy.days, source=policy.source,
                                 defaults=retention.default_days(cfg))


@router.get("/api/admin/retention", tags=["admin"], response_model=RetentionPolicyPublic,
            responses=error_responses(503))
async def read_retention(principal: AdminAuth, request: Request) -> Any:
    """This tenant's retention in days per kind of data."""
    principal.touch("retention_policy", principal.tenant)
    cfg = request.app.state.settings
    try:
        policy = await retention.get_policy(request.app.state.pool, cfg, principal.tenant)
    except Exception as exc:  # noqa: BLE001
        raise _unavailable(exc) from exc
    return _public(policy, cfg)


@router.put("/api/admin/retention", tags=["admin"], response_model=RetentionPolicyPublic,
            responses=error_responses(422, 503))
async def update_retention(body: RetentionUpdate, principal: AdminAuth, request: Request) -> Any:
    """Change this tenant's retention (audited with the values before and after)."""
    principal.touch("retention_policy", principal.tenant)
    changes = {k: getattr(body, k) for k in KINDS if k in body.model_fields_set}
    if not changes:
        raise ApiError(422, "validation_failed", f"Send at least one of {', '.join(KINDS)}.")
    cfg = request.app.state.settings
    try:
        policy = await retention.set_policy(request.app.state.pool, cfg, principal.tenant, changes, principal.actor,
                                            trace_id=current_trace_id() or None)
    except Exception as exc:  # noqa: BLE001
        raise _unavailable(exc) from exc
    return _public(policy, cfg)


@router.delete("/api/interviews/session/{session_id}", tags=["sessions"], response_model=ErasurePublic,
               responses=error_responses(404, 503))
async def erase_session(session_id: Annotated[str, Path(max_length=128)], principal: AdminAuth, request: Request,
                        objects: ObjectStoreDep, publisher: PublisherDep, sessions: SessionStoreDep) -> Any:
    """Erase a session everywhere: rows, recordings, vectors, hot state; future events of it are dropped."""
    from infra.clients import redis_client, weaviate_client

    principal.touch("session", session_id)
    state = request.app.state
    cfg = state.settings
    try:
        found = await retention.find_session(state.pool, principal.tenant, session_id)
    except Exception as exc:  # noqa: BLE001
        raise _unavailable(exc) from exc
    if found is None:
        raise ApiError(404, "unknown_session", f"No session {session_id!r} in this tenant.")
    interviewer_id, _ = found
    if interviewer_id:
        principal.require_interviewer(interviewer_id)
        principal.touch("session", session_id)

    async def publish(event) -> None:
        await publisher.publish(SESSIONS_LIFECYCLE, event)

    client = redis = None
    try:
        client = await asyncio.to_thread(weaviate_client, cfg)
        redis = redis_client(cfg)
        stores = retention.Stores(cfg, state.pool, client, redis, objects)
        result = await retention.erase_session(stores, principal.tenant, session_id, principal.actor, publish,
                                               trace_id=current_trace_id() or None)
    except ApiError:
        raise
    except RetentionError as exc:
        raise ApiError(503, "erasure_incomplete", f"The session is erased from PostgreSQL and no new data of it is "
                       f"accepted, but {exc}; repeat the DELETE to finish.", headers={"Retry-After": "5"}) from exc
    except Exception as exc:  # noqa: BLE001 - PostgreSQL or a client failed
        raise ApiError(503, "store_unavailable", f"A store is unreachable ({type(exc).__name__}); retry later (the "
                       "DELETE is safe to repeat).", headers={"Retry-After": "5"}) from exc
    finally:
        sessions.forget(session_id)
        if redis is not None:
            await redis.aclose()
        if client is not None:
            await asyncio.to_thread(client.close)
    if result is None:  # the session went between the look-up and the erasure (a concurrent erasure is 200)
        raise ApiError(404, "unknown_session", f"No session {session_id!r} in this tenant.")
    return ErasurePublic(sessionId=session_id, tenant=principal.tenant, alreadyErased=result.already_erased,
                         erased=result.counts, totals=result.totals())
