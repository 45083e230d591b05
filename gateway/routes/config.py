"""Configuration and feature flags of the caller's tenant and its interviewers (scope ``admin``).

    GET|PUT|PATCH|DELETE /api/admin/config/tenant                          the tenant layer
    GET|PUT|PATCH|DELETE /api/admin/config/interviewers/{interviewerId}    one interviewer's layer
    GET /api/admin/config/tenant/effective, .../interviewers/{id}/effective   what applies, and why

PUT replaces a layer, PATCH applies a JSON merge patch (RFC 7396: ``null`` removes a key, so it is
inherited again), DELETE removes the layer. Each write bumps the layer's ``version`` (sent as the
``ETag``; send ``If-Match: <version>`` to refuse a write over someone else's change, 412) and is
live on the next respond request of every worker. Layers, precedence and the cache are described
in processors/twin/config.py. Another tenant's interviewers answer 404, like unknown ones.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path, Request, Response
from pydantic import BaseModel, Field, ValidationError

from gateway.auth import AdminAuth, Principal
from gateway.errors import ApiError, error_responses
from processors.twin.config import (ConfigConflict, EffectiveConfig, StoredLayer, TwinConfig, bump_generation_async,
                                    load_layers_async, write_layer_async)

router = APIRouter(prefix="/api/admin/config", tags=["config"], responses=error_responses(401, 403))

InterviewerPath = Annotated[str, Path(min_length=1, max_length=128)]
IfMatch = Annotated[str | None, Header(description="The layer version this write is based on (412 if it moved on).")]
_PATCH_EXAMPLE = {"controls": {"verbosity": "terse"}, "flags": {"tools": False}, "prohibitedTopics": ["salary"]}
_412 = {412: {"description": "The layer changed since the version named in If-Match.", "content": {
    "application/json": {"example": {"error": {"code": "version_conflict", "message": "...", "details": []}}}}}}


class ConfigLayerPublic(BaseModel):
    """One stored layer: what it sets (absent = inherited) and its version (0 = nothing stored)."""

    tenant: str
    interviewerId: str | None = Field(description="None for the tenant layer.")
    config: TwinConfig
    version: int
    updatedAt: datetime | None = None
    updatedBy: str | None = None
    live: bool | None = Field(default=None, description="After a write: whether running workers were told at once "
                                                        "(else they pick it up within CONFIG_CACHE_TTL_S).")


def _public(layer: StoredLayer, live: bool | None = None) -> ConfigLayerPublic:
    return ConfigLayerPublic(tenant=layer.tenant, interviewerId=layer.interviewer_id, config=layer.config,
                             version=layer.version, updatedAt=layer.updated_at, updatedBy=layer.updated_by, live=live)


def _db_down(exc: Exception) -> ApiError:
    return ApiError(503, "database_unavailable", f"PostgreSQL is unreachable ({type(exc).__name__}); retry later.",
                    headers={"Retry-After": "5"})


def _expected(if_match: str | None) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    raw = if_match.strip().removeprefix("W/").strip('"')
    if not raw.isdigit():
        raise ApiError(400, "bad_if_match", "If-Match must name a layer version, e.g. If-Match: \"3\".")
    return int(raw)


def _validation(exc: ValidationError) -> ApiError:
    """A merge patch whose result does not validate: the same 422 body as any invalid request."""
    details = [{"loc": ["body", *err.get("loc", ())], "msg": err.get("msg", ""), "type": err.get("type", "")}
               for err in exc.errors()]
    first = details[0] if details else {"loc": [], "msg": ""}
    where = ".".join(str(p) for p in first["loc"] if p != "body")
    return ApiError(422, "validation_failed", f"{where or 'body'}: {first['msg']}", details)


def _scope(principal: Principal, interviewer_id: str | None) -> None:
    if interviewer_id is not None:
        principal.require_interviewer(interviewer_id)
    principal.touch("twin_config", interviewer_id or "tenant")


async def _known(conn, tenant: str, interviewer_id: str | None) -> None:
    if interviewer_id is None:
        return
    row = await (await conn.execute(
        "SELECT 1 FROM interviewers WHERE tenant=%s AND interviewer_id=%s"
        " UNION ALL SELECT 1 FROM sessions WHERE tenant=%s AND interviewer_id=%s"
        " UNION ALL SELECT 1 FROM twin_config WHERE tenant=%s AND interviewer_id=%s LIMIT 1",
        (tenant, interviewer_id) * 3)).fetchone()
    if row is None:
        raise ApiError(404, "unknown_interviewer", f"No interviewer {interviewer_id!r} in this tenant.")


async def _read(request: Request, principal: Principal, interviewer_id: str | None):
    _scope(principal, interviewer_id)
    try:
        async with request.app.state.pool.connection() as conn:
            await _known(conn, principal.tenant, interviewer_id)
            return await load_layers_async(conn, principal.tenant, interviewer_id)
    except ApiError:
        raise
    except Exception as exc:  # noqa: BLE001 - the pool is closed or PostgreSQL is down
        raise _db_down(exc) from exc


async def _write(request: Request, response: Response, principal: Principal, interviewer_id: str | None,
                 config: TwinConfig | None, if_match: str | None, patch: dict[str, Any] | None = None):
    _scope(principal, interviewer_id)
    expected = _expected(if_match)
    try:
        async with request.app.state.pool.connection() as conn:
            await _known(conn, principal.tenant, interviewer_id)
            layer = await write_layer_async(conn, principal.tenant, interviewer_id, config, principal.actor,
                                            expected_version=expected, patch=patch)
    except ConfigConflict as exc:
        raise ApiError(412, "version_conflict", f"{exc}; read it again and retry.",
                       details=[{"version": exc.current, "ifMatch": exc.expected}]) from None
    except ValidationError as exc:
        raise _validation(exc) from None
    except ApiError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _db_down(exc) from exc
    live = await bump_generation_async(request.app.state.settings, principal.tenant)
    response.headers["ETag"] = f'"{layer.version}"'
    return _public(layer, live)


# --------------------------------------------------------------------------- tenant
@router.get("/tenant", response_model=ConfigLayerPublic, responses=error_responses(503))
async def get_tenant_config(principal: AdminAuth, request: Request, response: Response) -> Any:
    """The tenant layer as stored (what it sets; the rest is inherited from the defaults)."""
    layer, _ = await _read(request, principal, None)
    response.headers["ETag"] = f'"{layer.version}"'
    return _public(layer)


@router.put("/tenant", response_model=ConfigLayerPublic, responses={**error_responses(400, 422, 503), **_412})
async def put_tenant_config(body: TwinConfig, principal: AdminAuth, request: Request, response: Response,
                            if_match: IfMatch = None) -> Any:
    """Replace the tenant layer."""
    return await _write(request, response, principal, None, body, if_match)


@router.patch("/tenant", response_model=ConfigLayerPublic, responses={**error_responses(400, 422, 503), **_412})
async def patch_tenant_config(principal: AdminAuth, request: Request, response: Response,
                              body: Annotated[dict[str, Any], Body(examples=[_PATCH_EXAMPLE])],
                              if_match: IfMatch = None) -> Any:
    """Change part of the tenant layer (JSON merge patch: null removes a key)."""
    return await _write(request, response, principal, None, None, if_match, patch=body)


@router.delete("/tenant", response_model=ConfigLayerPublic, responses={**error_responses(400, 503), **_412})
async def delete_tenant_config(principal: AdminAuth, request: Request, response: Response,
                               if_match: IfMatch = None) -> Any:
    """Remove the tenant layer: the defaults apply again."""
    return await _write(request, response, principal, None, None, if_match)


@router.get("/tenant/effective", response_model=EffectiveConfig, responses=error_responses(503))
async def get_tenant_effective_config(principal: AdminAuth, request: Request) -> Any:
    """Defaults with the tenant layer applied, and which layer set each value."""
    _, effective = await _read(request, principal, None)
    return effective


# --------------------------------------------------------------------------- interviewers
@router.get("/interviewers/{interviewerId}", response_model=ConfigLayerPublic, responses=error_responses(404, 503))
async def get_interviewer_config(interviewerId: InterviewerPath, principal: AdminAuth,  # noqa: N803
                                 request: Request, response: Response) -> Any:
    """The interviewer's own layer as stored."""
    layer, _ = await _read(request, principal, interviewerId)
    response.headers["ETag"] = f'"{layer.version}"'
    return _public(layer)


@router.put("/interviewers/{interviewerId}", response_model=ConfigLayerPublic,
            responses={**error_responses(400, 404, 422, 503), **_412})
async def put_interviewer_config(interviewerId: InterviewerPath, body: TwinConfig, principal: AdminAuth,  # noqa: N803
                                 request: Request, response: Response, if_match: IfMatch = None) -> Any:
    """Replace the interviewer's layer."""
    return await _write(request, response, principal, interviewerId, body, if_match)


@router.patch("/interviewers/{interviewerId}", response_model=ConfigLayerPublic,
              responses={**error_responses(400, 404, 422, 503), **_412})
async def patch_interviewer_config(interviewerId: InterviewerPath, principal: AdminAuth,  # noqa: N803
                                   request: Request, response: Response,
                                   body: Annotated[dict[str, Any], Body(examples=[_PATCH_EXAMPLE])],
                                   if_match: IfMatch = None) -> Any:
    """Change part of the interviewer's layer (JSON merge patch: null removes a key)."""
    return await _write(request, response, principal, interviewerId, None, if_match, patch=body)


@router.delete("/interviewers/{interviewerId}", response_model=ConfigLayerPublic,
               responses={**error_responses(400, 404, 503), **_412})
async def delete_interviewer_config(interviewerId: InterviewerPath, principal: AdminAuth,  # noqa: N803
                                    request: Request, response: Response, if_match: IfMatch = None) -> Any:
    """Remove the interviewer's layer: the tenant's configuration applies again."""
    return await _write(request, response, principal, interviewerId, None, if_match)


@router.get("/interviewers/{interviewerId}/effective", response_model=EffectiveConfig,
            responses=error_responses(404, 503))
async def get_effective_config(interviewerId: InterviewerPath, principal: AdminAuth,  # noqa: N803
                               request: Request) -> Any:
    """What applies to the interviewer's next reply: defaults, trained version, tenant, interviewer."""
    _, effective = await _read(request, principal, interviewerId)
    return effective
