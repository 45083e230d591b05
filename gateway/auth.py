"""Who is calling, what they may do, and the audit record of what they did.

Every route except the health endpoints needs a credential, ``Authorization: Bearer <token>``:

* an **API key** (``twk_<id>.<secret>``, infra/apikeys.py), created by ``twin keys create`` or
  ``POST /api/admin/keys``; or
* a **JWT** signed with ``AUTH_JWT_SECRET`` (HS256) or ``AUTH_JWT_PUBLIC_KEY`` (RS256/ES256), with
  the issuer and audience the settings name; claims ``tenant``, ``scope`` (space-separated) and
  optionally ``interviewers`` (list) and ``sub`` (the actor).

The credential fixes the tenant; ``X-Tenant-Id``, when sent, must agree (403 otherwise). Each route
needs one scope (:class:`Scope`); a key limited to some interviewers gets 403 for the others. A row
of another tenant is never looked up, so it answers 404 exactly like a row that does not exist.

:class:`AuditMiddleware` publishes one ``audit.records`` entry per authenticated request (and per
refused one): actor, ``METHOD /route/template``, the resource the route named, outcome, trace id.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Annotated, Any, Callable

from fastapi import Depends, Header, Request

from gateway.errors import ApiError
from infra.apikeys import parse_token, verify_row
from infra.settings import Settings

__all__ = ["Scope", "Principal", "authorize", "current_principal", "AuditMiddleware", "drain_audit", "KeyCache",
           "CaptureAuth", "RespondAuth", "TrainAuth", "EvalAuth", "RaterAuth", "AdminAuth"]

log = logging.getLogger(__name__)


class Scope(str, Enum):
    CAPTURE = "capture"
    RESPOND = "respond"
    TRAIN = "train"
    EVAL = "eval"
    RATER = "rater"
    ADMIN = "admin"


@dataclass
class Principal:
    """The authenticated caller. ``interviewers`` None = every interviewer of the tenant."""

    tenant: str
    actor: str
    scopes: frozenset[str]
    interviewers: frozenset[str] | None = None
    credential: str = "api_key"
    name: str = ""  # the key's name or the JWT subject: how a person reads the actor
    # What the route touched, for the audit record (set by :meth:`touch`).
    resource: tuple[str, str] | None = field(default=None, compare=False)

    def allows(self, interviewer_id: str) -> bool:
        return self.interviewers is None or interviewer_id in self.interviewers

    def require_interviewer(self, interviewer_id: str) -> None:
        """403 unless this credential may act for the interviewer; records it for the audit."""
        self.touch("interviewer", interviewer_id)
        if not self.allows(interviewer_id):
            raise ApiError(403, "interviewer_forbidden",
                           f"This credential is not allowed to act for interviewer {interviewer_id!r}.")

    def touch(self, resource_type: str, resource_id: str) -> None:
        self.resource = (resource_type, resource_id)


_UNAUTHENTICATED_HEADERS = {"WWW-Authenticate": 'Bearer realm="interviewer-twin"'}


def _unauthenticated(message: str) -> ApiError:
    return ApiError(401, "unauthenticated", message, headers=_UNAUTHENTICATED_HEADERS)


class KeyCache:
    """Verified tokens for ``AUTH_CACHE_TTL_S`` seconds (never past the key's expiry), so a hot
    respond path does not query PostgreSQL per request. A revocation is announced on Redis and drops
    the key's entries at once in every gateway (gateway/revocations.py); the TTL only bounds how long
    a revoked key works while a gateway cannot hear the announcements."""

    _MAX_ENTRIES = 10_000

    def __init__(self, ttl_s: float):
        self.ttl_s = ttl_s
        # token digest -> (cached at, valid until, principal or None, key id); monotonic times
        self._entries: dict[str, tuple[float, float, Principal | None, str]] = {}
        self._revoked: dict[str, float] = {}  # key id -> when its revocation was heard

    def get(self, digest: str) -> tuple[bool, Principal | None]:
        hit = self._entries.get(digest)
        if hit and time.monotonic() < hit[1]:
            return True, hit[2]
        return False, None

    def put(self, digest: str, principal: Principal | None, key_id: str = "", looked_up_at: float | None = None,
            expires_in_s: float | None = None) -> None:
        """Cache a verification that started at ``looked_up_at`` (monotonic). Not cached when a
        revocation of the key was heard since: the row read may predate it."""
        if looked_up_at is not None and self._revoked.get(key_id, float("-inf")) >= looked_up_at:
            return
        if len(self._entries) > self._MAX_ENTRIES:  # a flood of random tokens must not grow memory without bound
            self._entries.clear()
        now = time.monotonic()
        until = now + self.ttl_s if expires_in_s is None else now + min(self.ttl_s, expires_in_s)
        self._entries[digest] = (now, until, principal, key_id)

    def invalidate(self, key_id: str) -> int:
        """Forget every cached verification of ``key_id``; returns how many entries were dropped."""
        if len(self._revoked) > self._MAX_ENTRIES:
            self._revoked.clear()
        self._revoked[key_id] = time.monotonic()
        stale = [digest for digest, entry in self._entries.items() if entry[3] == key_id]
        for digest in stale:
            self._entries.pop(digest, None)
        return len(stale)

    def clear(self) -> None:
        self._entries.clear()


async def _principal_from_key(request: Request, token: str) -> Principal:
    parsed = parse_token(token)
    if parsed is None:
        raise _unauthenticated("The bearer token is not a valid API key or JWT.")
    state = request.app.state
    cache: KeyCache = state.key_cache
    digest = hashlib.sha256(token.encode()).hexdigest()
    found, principal = cache.get(digest)
    if not found:
        key_id, secret = parsed
        looked_up_at = time.monotonic()
        try:
            async with state.pool.connection() as conn:
                row = await (await conn.execute(
                    "SELECT tenant, name, scopes, interviewers, secret_sha256, expires_at, revoked_at"
                    " FROM api_keys WHERE key_id = %s", (key_id,))).fetchone()
        except Exception as exc:  # noqa: BLE001 - any database failure is "unavailable" to the caller
            raise ApiError(503, "database_unavailable",
                           f"PostgreSQL is unreachable ({type(exc).__name__}); retry later.",
                           headers={"Retry-After": "5"}) from exc
        principal = None
        expires_in_s = None
        if row is not None and verify_row(secret, row[4], row[5], row[6]):
            principal = Principal(tenant=row[0], actor=f"key:{key_id}:{row[1]}"[:128], scopes=frozenset(row[2]),
                                  interviewers=frozenset(row[3]) if row[3] is not None else None, name=row[1])
            if row[5] is not None:
                expires_in_s = (row[5] - datetime.now(timezone.utc)).total_seconds()
        cache.put(digest, principal, key_id, looked_up_at, expires_in_s)
    if principal is None:
        raise _unauthenticated("The API key is unknown, revoked or expired.")
    # A fresh object per request: the audit resource is per request.
    return Principal(principal.tenant, principal.actor, principal.scopes, principal.interviewers, name=principal.name)


def _principal_from_jwt(cfg: Settings, token: str) -> Principal:
    from joserfc import jwt
    from joserfc.errors import JoseError
    from joserfc.jwk import ECKey, OctKey, RSAKey

    secret = cfg.AUTH_JWT_SECRET.get_secret_value()
    public = cfg.AUTH_JWT_PUBLIC_KEY
    if not (secret or public):
        raise _unauthenticated("The bearer token is not a valid API key (JWTs are not enabled here).")
    try:
        if public:
            key = (ECKey if "EC " in public or cfg.AUTH_JWT_ALGORITHM.startswith("ES") else RSAKey).import_key(public)
        else:
            key = OctKey.import_key(secret)
        decoded = jwt.decode(token, key, algorithms=[cfg.AUTH_JWT_ALGORITHM])
        claims_rules: dict[str, Any] = {"exp": {"essential": True}, cfg.AUTH_JWT_TENANT_CLAIM: {"essential": True}}
        if cfg.AUTH_JWT_ISSUER:
            claims_rules["iss"] = {"essential": True, "value": cfg.AUTH_JWT_ISSUER}
        if cfg.AUTH_JWT_AUDIENCE:
            claims_rules["aud"] = {"essential": True, "value": cfg.AUTH_JWT_AUDIENCE}
        jwt.JWTClaimsRegistry(leeway=30, **claims_rules).validate(decoded.claims)
    except (JoseError, ValueError, TypeError) as exc:
        raise _unauthenticated(f"The JWT was refused: {type(exc).__name__}.") from exc
    claims = decoded.claims
    scope = claims.get("scope", "")
    scopes = frozenset(scope.split() if isinstance(scope, str) else scope)
    interviewers = claims.get("interviewers")
    return Principal(tenant=str(claims[cfg.AUTH_JWT_TENANT_CLAIM]), actor=f"jwt:{claims.get('sub', '?')}"[:128],
                     scopes=scopes, interviewers=frozenset(interviewers) if interviewers is not None else None,
                     credential="jwt", name=str(claims.get("sub", "?")))


async def current_principal(
    request: Request,
    authorization: Annotated[str | None, Header(description="`Bearer <API key or JWT>`")] = None,
    x_tenant_id: Annotated[str | None, Header(description="Optional; must name the credential's tenant.")] = None,
) -> Principal:
    """Authenticate the request (no scope check); the principal is kept on ``request.state``."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthenticated("Credentials are required: send `Authorization: Bearer <API key or JWT>`.")
    if token.startswith("twk_"):
        principal = await _principal_from_key(request, token)
    else:
        principal = _principal_from_jwt(request.app.state.settings, token)
    request.state.principal = principal
    if x_tenant_id is not None and x_tenant_id != principal.tenant:
        raise ApiError(403, "tenant_mismatch", "X-Tenant-Id names a tenant this credential does not belong to.")
    return principal


def authorize(scope: Scope) -> Callable[..., Any]:
    """A dependency that authenticates and requires ``scope``."""

    async def require(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if scope.value not in principal.scopes:
            raise ApiError(403, "insufficient_scope", f"This credential lacks the {scope.value!r} scope.",
                           details=[{"required": scope.value, "granted": sorted(principal.scopes)}])
        return principal

    require.__name__ = f"require_{scope.value}"
    return require


CaptureAuth = Annotated[Principal, Depends(authorize(Scope.CAPTURE))]
RespondAuth = Annotated[Principal, Depends(authorize(Scope.RESPOND))]
TrainAuth = Annotated[Principal, Depends(authorize(Scope.TRAIN))]
EvalAuth = Annotated[Principal, Depends(authorize(Scope.EVAL))]
RaterAuth = Annotated[Principal, Depends(authorize(Scope.RATER))]
AdminAuth = Annotated[Principal, Depends(authorize(Scope.ADMIN))]


# --------------------------------------------------------------------------- audit
_UNAUDITED = ("/healthz", "/readyz", "/metrics", "/docs", "/openapi.json", "/redoc",
              "/api/digital-twin/eval/ratings/page")


# What a path parameter names, for requests refused before the route could say so itself.
_PARAM_TYPES = {"session_id": "session", "jobId": "training_job", "interviewerId": "interviewer",
                "rating_id": "rating", "keyId": "api_key"}


def _outcome(status: int) -> str:
    if status < 400:
        return "ok"
    return {401: "unauthenticated", 403: "denied", 404: "not_found"}.get(status, "error" if status >= 500 else
                                                                           "rejected")


# Requests that change state: their audit record is acknowledged before the response is sent.
_STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# POSTs that only ask for an answer and store nothing: audited like reads, so the respond path's
# latency budget does not carry a second broker round trip.
_ANSWER_ONLY = frozenset({"/api/digital-twin/respond"})


class AuditMiddleware:
    """Pure ASGI (streams request bodies untouched): one audit record per request.

    A state-changing request (POST/PUT/PATCH/DELETE) is answered only once its record is durable:
    the response start is held until Kafka acknowledged the record (acks=all, idempotent producer);
    when Kafka does not within ``AUDIT_ACK_TIMEOUT_S``, the record is inserted into PostgreSQL's
    ``audit_log`` directly (the audit agent's own INSERT, idempotent by audit id, so a late Kafka copy
    is harmless). A gateway killed right after answering has lost nothing. If both fail, the response
    is still sent (the change itself is done) and the failure is logged and counted on
    ``app.state.audit_failures``.

    Reads are audited after the response, without delaying it: a read whose gateway dies within the
    producer's linger window may go unaudited.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith(_UNAUDITED):
            return await self.app(scope, receive, send)
        status_box = {"status": 500}
        durable = scope["method"] in _STATE_CHANGING and scope["path"] not in _ANSWER_ONLY
        audited = False
        started = time.time()

        async def send_wrapper(message):
            nonlocal audited
            if message["type"] == "http.response.start":
                status_box["status"] = message["status"]
                if durable and not audited:
                    audited = True
                    await self._audit_durably(scope, message["status"], started)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if not audited:  # a read, or the app failed before it started a response
                audited = True
                if durable:
                    await self._audit_durably(scope, status_box["status"], started)
                else:
                    try:
                        self._queue(scope, status_box["status"], started)
                    except Exception:  # noqa: BLE001 - auditing must never break the response
                        log.exception("could not queue an audit record")

    def _record(self, scope, status: int, started: float):
        from infra.tracing import current_trace_id
        from schemas.models import AuditRecord

        state = scope.get("state") or {}
        principal: Principal | None = state.get("principal")
        route = scope.get("route")
        template = getattr(route, "path", scope["path"])
        if principal is not None and principal.resource is not None:
            resource_type, resource_id = principal.resource
        else:
            params = scope.get("path_params") or {}
            name, resource_id = next(iter(params.items()), ("", "-"))
            resource_type = _PARAM_TYPES.get(name) or (template.strip("/").split("/") + ["api"])[1]
        # A refused request has no principal: file it under the tenant it claimed, if any.
        claimed = dict(scope.get("headers") or []).get(b"x-tenant-id", b"").decode("latin-1")[:64]
        tenant = principal.tenant if principal else (claimed or "unknown")
        return AuditRecord(
            auditId=uuid.uuid4().hex, tenant=tenant, actor=principal.actor if principal else "anonymous",
            action=f"{scope['method']} {template}"[:128], resourceType=str(resource_type)[:128],
            resourceId=str(resource_id)[:128] or "-", outcome=_outcome(status),
            detail={"status": status, "ms": round((time.time() - started) * 1000, 1)},
            traceId=current_trace_id())

    def _publish_task(self, app, record) -> asyncio.Task:
        """Start publishing ``record``; the task is kept in ``app.state.audit_pending`` (drained at shutdown)."""
        from schemas.topics import AUDIT_RECORDS

        pending: set[asyncio.Task] = app.state.audit_pending
        task = asyncio.get_running_loop().create_task(app.state.publisher.publish(AUDIT_RECORDS, record))
        pending.add(task)
        task.add_done_callback(pending.discard)
        return task

    def _queue(self, scope, status: int, started: float) -> None:
        app = scope["app"]
        task = self._publish_task(app, self._record(scope, status, started))

        def done(task: asyncio.Task) -> None:
            if not task.cancelled() and task.exception() is not None:
                app.state.audit_failures = getattr(app.state, "audit_failures", 0) + 1
                log.warning("audit record not published: %s", task.exception())

        task.add_done_callback(done)

    async def _audit_durably(self, scope, status: int, started: float) -> None:
        """Return once the record is acknowledged by Kafka or written to PostgreSQL; never raises."""
        app = scope["app"]
        try:
            record = self._record(scope, status, started)
            # Not cancelled on timeout: a late acknowledgement only duplicates the row's INSERT, which is
            # idempotent; cancelling mid-send could leave the producer half started.
            task = self._publish_task(app, record)
            await asyncio.wait({task}, timeout=app.state.settings.AUDIT_ACK_TIMEOUT_S)
            if task.done() and not task.cancelled() and task.exception() is None:
                return
            why = type(task.exception()).__name__ if task.done() and not task.cancelled() else "no acknowledgement"
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved: no "never retrieved"
        except Exception:  # noqa: BLE001 - auditing must never break the response
            log.exception("could not audit a state-changing request")
            app.state.audit_failures = getattr(app.state, "audit_failures", 0) + 1
            return
        try:
            from infra.audit import record_async

            async with app.state.pool.connection() as conn:
                await record_async(conn, record.tenant, record.actor, record.action, record.resourceType,
                                   record.resourceId, record.outcome, record.detail, audit_id=record.auditId,
                                   trace_id=record.traceId)
            log.warning("audit record %s written to PostgreSQL directly (Kafka: %s)", record.auditId, why)
        except Exception as exc:  # noqa: BLE001
            app.state.audit_failures = getattr(app.state, "audit_failures", 0) + 1
            log.error("audit record %s of %s lost: Kafka (%s) and PostgreSQL (%s) both failed", record.auditId,
                      record.action, why, type(exc).__name__)


async def drain_audit(app, timeout: float = 5.0) -> None:
    """Wait for queued audit records (at shutdown, before the producer stops)."""
    pending = getattr(app.state, "audit_pending", None)
    if pending:
        await asyncio.wait(list(pending), timeout=timeout)
