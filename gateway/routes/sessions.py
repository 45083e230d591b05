"""Interview sessions: create, read, update (spec 12a). Capture endpoints check consent here."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.auth import CaptureAuth
from gateway.deps import PublisherDep, SessionStoreDep
from gateway.errors import ApiError, error_responses
from gateway.session_store import SessionRow
from infra.tracing import current_trace_id, inject
from schemas.models import AuditRecord, SessionEvent
from schemas.topics import AUDIT_RECORDS, SESSIONS_LIFECYCLE

__all__ = ["SessionCreate", "SessionPublic", "SessionUpdate", "router", "session_event"]

router = APIRouter(prefix="/api/interviews/session", tags=["sessions"], responses=error_responses(401, 403))

SessionId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")]
Text = Annotated[str, Field(max_length=200)]
_URL_RE = re.compile(r"^(https?|s3|file)://\S+$")


class SessionCreate(BaseModel):
    """A new interview session. Consent flags record what the candidate agreed to; capture
    (recording upload, telemetry) is refused without ``consentRecording``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "sessionId": "sess-7f3a", "interviewerId": "dana", "candidateRef": "cand-0192",
        "role": "Backend Engineer", "seniority": "senior", "domain": "payments",
        "consentRecording": True, "consentTraining": True,
    }]})
    sessionId: SessionId | None = Field(default=None, description="Client-chosen id (makes a retried create "
                                                                   "idempotent); generated when absent.")
    interviewerId: Annotated[str, Field(min_length=1, max_length=128)]
    candidateRef: Text | None = Field(default=None, description="An opaque reference, never the candidate's name.")
    role: Text | None = None
    seniority: Annotated[str, Field(max_length=64)] | None = None
    domain: Text | None = None
    consentRecording: bool = Field(default=False, description="Consent to screen/audio recording and telemetry.")
    consentTraining: bool = Field(default=False, description="Consent to use this session to train the twin.")


class SessionUpdate(BaseModel):
    """Mutable session fields; only the fields sent are changed."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"videoUrl": "s3://recordings/acme/sess-7f3a/3c9e.mp4"},
        {"status": "ended"},
        {"consentTraining": False},
    ]})
    videoUrl: Annotated[str, Field(max_length=2048)] | None = Field(
        default=None, description="Where the recording is (the url returned by the upload); needs consentRecording.")
    candidateRef: Text | None = None
    role: Text | None = None
    seniority: Annotated[str, Field(max_length=64)] | None = None
    domain: Text | None = None
    status: Literal["active", "ended"] | None = None
    consentRecording: bool | None = None
    consentTraining: bool | None = None

    @field_validator("videoUrl")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not _URL_RE.match(value):
            raise ValueError("videoUrl must be an http(s)://, s3:// or file:// URL")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> "SessionUpdate":
        if not self.model_fields_set:
            raise ValueError("send at least one field to change")
        return self


class SessionPublic(BaseModel):
    """A session as the API returns it."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "sessionId": "sess-7f3a", "tenant": "acme", "interviewerId": "dana", "candidateRef": "cand-0192",
        "role": "Backend Engineer", "seniority": "senior", "domain": "payments", "consentRecording": True,
        "consentTraining": True, "videoUrl": None, "status": "active",
        "createdAt": "2025-03-04T10:00:00Z", "updatedAt": "2025-03-04T10:00:00Z",
    }]})
    sessionId: str
    tenant: str
    interviewerId: str
    candidateRef: str | None
    role: str | None
    seniority: str | None
    domain: str | None
    consentRecording: bool
    consentTraining: bool
    videoUrl: str | None
    status: str
    createdAt: datetime
    updatedAt: datetime

    @classmethod
    def of(cls, row: SessionRow) -> "SessionPublic":
        return cls(sessionId=row.session_id, tenant=row.tenant, interviewerId=row.interviewer_id,
                   candidateRef=row.candidate_ref, role=row.role, seniority=row.seniority, domain=row.domain,
                   consentRecording=row.consent_recording, consentTraining=row.consent_training,
                   videoUrl=row.video_url, status=row.status, createdAt=row.created_at, updatedAt=row.updated_at)


_FIELD_TO_COLUMN = {"videoUrl": "video_url", "candidateRef": "candidate_ref", "role": "role", "seniority": "seniority",
                    "domain": "domain", "status": "status", "consentRecording": "consent_recording",
                    "consentTraining": "consent_training"}


def session_event(row: SessionRow, kind: str) -> SessionEvent:
    """The lifecycle event carrying a row's state (its ``ts`` is the row's ``updated_at``)."""
    ts = row.updated_at.astimezone(timezone.utc)
    return SessionEvent(
        eventId=f"{row.session_id}:{kind}:{int(ts.timestamp() * 1000)}", kind=kind, tenant=row.tenant,
        sessionId=row.session_id, interviewerId=row.interviewer_id, candidateRef=row.candidate_ref, role=row.role,
        seniority=row.seniority, domain=row.domain, consentRecording=row.consent_recording,
        consentTraining=row.consent_training, videoUrl=row.video_url, ts=ts, traceContext=inject(),
    )


def _consent_audit(row: SessionRow, before: SessionRow | None) -> AuditRecord | None:
    """An audit record when consent was recorded or changed (None when it did not change)."""
    now = (row.consent_recording, row.consent_training)
    if before is not None and (before.consent_recording, before.consent_training) == now:
        return None
    if before is None and not any(now):
        return None
    key = f"{row.tenant}/{row.session_id}/consent/{row.updated_at.isoformat()}"
    return AuditRecord(
        auditId=hashlib.sha256(key.encode()).hexdigest()[:32], tenant=row.tenant, actor="gateway",
        action="session.consent_recorded", resourceType="session", resourceId=row.session_id, outcome="recorded",
        detail={"consentRecording": row.consent_recording, "consentTraining": row.consent_training,
                "previous": None if before is None else {"consentRecording": before.consent_recording,
                                                         "consentTraining": before.consent_training}},
        traceId=current_trace_id() or None, ts=row.updated_at,
    )


@router.post("", response_model=SessionPublic, status_code=201,
             responses={200: {"model": SessionPublic, "description": "The same session already existed (retry)."},
                        **error_responses(400, 409, 422, 503)})
async def create_session(body: SessionCreate, principal: CaptureAuth, store: SessionStoreDep,
                         publisher: PublisherDep) -> Any:
    """Create an interview session with its metadata and consent flags."""
    tenant = principal.tenant
    principal.require_interviewer(body.interviewerId)
    row: dict[str, Any] = {
        "session_id": body.sessionId or f"sess-{uuid.uuid4().hex}", "tenant": tenant,
        "interviewer_id": body.interviewerId, "candidate_ref": body.candidateRef, "role": body.role,
        "seniority": body.seniority, "domain": body.domain, "consent_recording": body.consentRecording,
        "consent_training": body.consentTraining, "ts": datetime.now(timezone.utc),
    }

    async def publish(created: SessionRow) -> None:
        audit = _consent_audit(created, None)
        if audit is not None:
            await publisher.publish(AUDIT_RECORDS, audit)
        await publisher.publish(SESSIONS_LIFECYCLE, session_event(created, "created"))

    session, created = await store.create(row, publish)
    return JSONResponse(SessionPublic.of(session).model_dump(mode="json"), status_code=201 if created else 200)


@router.get("/{session_id}", response_model=SessionPublic, responses=error_responses(404, 503))
async def read_session(session_id: Annotated[str, Path(max_length=128)], principal: CaptureAuth,
                       store: SessionStoreDep) -> SessionPublic:
    """Return one session of this tenant."""
    row = await store.get(principal.tenant, session_id, fresh=True)
    if row is None:
        raise ApiError(404, "unknown_session", f"No session {session_id!r} in this tenant.")
    principal.require_interviewer(row.interviewer_id)
    principal.touch("session", session_id)
    return SessionPublic.of(row)


@router.patch("/{session_id}", response_model=SessionPublic, responses=error_responses(400, 403, 404, 409, 422, 503))
async def update_session(session_id: Annotated[str, Path(max_length=128)], body: SessionUpdate, principal: CaptureAuth,
                         store: SessionStoreDep, publisher: PublisherDep) -> SessionPublic:
    """Change mutable session fields (videoUrl, metadata, status, consent)."""
    tenant = principal.tenant
    principal.touch("session", session_id)
    sent = body.model_dump(exclude_unset=True)
    changes = {_FIELD_TO_COLUMN[k]: v for k, v in sent.items()}
    for column in ("status", "consent_recording", "consent_training"):
        if column in changes and changes[column] is None:
            raise ApiError(422, "validation_failed", f"{column} cannot be null.")
    changes["updated_at"] = datetime.now(timezone.utc)

    def check(current: SessionRow, ch: dict[str, Any]) -> None:
        principal.require_interviewer(current.interviewer_id)
        principal.touch("session", session_id)
        consent = ch.get("consent_recording", current.consent_recording)
        if ch.get("video_url") and not consent:
            raise ApiError(403, "consent_required",
                           f"Session {session_id!r} has no recorded consent to recording; a video URL cannot be "
                           "stored for it.", details=[{"field": "videoUrl", "consentRecording": False}])
        if current.status == "ended" and ch.get("status") == "active":
            raise ApiError(409, "session_ended", f"Session {session_id!r} has ended and cannot be reopened.")
        ch["updated_at"] = max(ch["updated_at"], current.updated_at)

    async def publish(before: SessionRow, after: SessionRow) -> None:
        audit = _consent_audit(after, before)
        if audit is not None:
            await publisher.publish(AUDIT_RECORDS, audit)
        kind = "ended" if after.status == "ended" and before.status != "ended" else "updated"
        await publisher.publish(SESSIONS_LIFECYCLE, session_event(after, kind))

    return SessionPublic.of(await store.update(tenant, session_id, changes, check, publish))
