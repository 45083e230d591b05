"""Session telemetry (spec 12b): initialise a session's telemetry, or append a batch of events.

Exact rules, each answered with the shared error shape and a machine-readable ``code``:

- body over ``TELEMETRY_MAX_BYTES`` (256 KB): 413 ``payload_too_large`` (rule ``max_payload_bytes``);
- more than ``TELEMETRY_MAX_EVENTS`` (200) events: 413 ``batch_too_large`` (rule ``max_events_per_batch``);
- not JSON: 400 ``malformed_json``; not the batch shape: 422 ``validation_failed``;
- an event with an unknown type, a bad enum value, a missing or mistyped field, or another
  session's ``sessionId``: 422 ``invalid_events``, each detail naming ``eventIndex`` and ``field``;
- unknown session: 404 ``unknown_session``; no recorded consent: 403 ``consent_required``;
- Kafka did not acknowledge: 503 ``broker_unavailable``. Retry the same batch: a batch the producer had
  buffered may still arrive, and the event and batch ids make the retry a no-op then.

Oversized ``text`` / ``stdoutPreview`` / ``stderrPreview`` values are dropped, not rejected: the
event keeps its other fields, the batch carries the dropped value's SHA-256 and size, and an
audit record is published for each drop. An accepted batch is answered 202 only after the broker
acknowledged it (acks=all). Event ids (client-supplied, else derived from content) and the batch id
(derived from them) make a retried request idempotent all the way to the stores.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from gateway.bodies import read_limited
from gateway.auth import CaptureAuth
from gateway.deps import PublisherDep, SessionStoreDep, SettingsDep
from gateway.errors import ApiError, error_responses
from infra.tracing import current_trace_id, inject, tracer
from schemas.models import AuditRecord, DroppedField, TelemetryBatch, TelemetryEvent, TelemetryRaw, derive_event_id
from schemas.topics import AUDIT_RECORDS, TELEMETRY_RAW

__all__ = ["TelemetryAccepted", "TelemetryInitialized", "router", "drop_oversized", "batch_id"]

router = APIRouter(prefix="/api/interviews/session", tags=["telemetry"], responses=error_responses(401, 403))

_EVENT = TypeAdapter(TelemetryEvent)
_EVENT_TYPES = ("code_edit", "run", "turn", "control")


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid")
    interviewSessionId: Annotated[str, Field(min_length=1, max_length=200)]
    events: list[Any] | None = None


class TelemetryInitialized(BaseModel):
    """The session's telemetry record exists (``created`` says whether this call made it)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "interviewSessionId": "sess-7f3a", "created": True,
        "counts": {"code_edit": 0, "run": 0, "turn": 0, "control": 0}, "total": 0}]})
    interviewSessionId: str
    created: bool
    counts: dict[str, int]
    total: int


class TelemetryAccepted(BaseModel):
    """A batch the broker acknowledged; ``eventIds`` are in request order."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "interviewSessionId": "sess-7f3a", "batchId": "5f0c2b9e8d7a41e3b6a1c0d9e8f7a6b5", "accepted": 2,
        "eventIds": ["3f1d0c7b2a9e4d5c8b7a6f5e4d3c2b1a", "client-evt-42"],
        "droppedFields": [{"eventIndex": 1, "field": "stdoutPreview", "sha256": "9f86d08188...", "size": 12000}]}]})
    interviewSessionId: str
    batchId: str
    accepted: int
    eventIds: list[str]
    droppedFields: list[DroppedField]


def _inline_refs(schema: dict) -> dict:
    """A JSON schema with ``#/$defs/...`` references inlined (for an ``openapi_extra`` body)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(dict(defs[ref.rsplit("/", 1)[1]]))
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


_BODY_SCHEMA = _inline_refs(TelemetryBatch.model_json_schema())
_BODY_EXAMPLES = {
    "initialise": {"summary": "Initialise (zeroed telemetry record)", "value": {"interviewSessionId": "sess-7f3a"}},
    "append": {"summary": "Append events", "value": TelemetryBatch.model_config["json_schema_extra"]["examples"][0]},
}


def _event_errors(index: int, exc: ValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = list(err.get("loc", ()))
        if loc and loc[0] in _EVENT_TYPES:  # the discriminated union puts the tag first
            loc = loc[1:]
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = ["type"]
        field = ".".join(str(p) for p in loc) or "type"
        out.append({"eventIndex": index, "field": field, "loc": ["events", index, *loc], "msg": err["msg"],
                    "type": err["type"]})
    return out


def parse_events(raw_events: list[Any], session_id: str) -> list[Any]:
    """Validate every event against the spec types; ApiError(422) naming each bad index and field."""
    events, errors = [], []
    for i, raw in enumerate(raw_events):
        try:
            event = _EVENT.validate_python(raw)
        except ValidationError as exc:
            errors += _event_errors(i, exc)
            continue
        if event.sessionId != session_id:
            errors.append({"eventIndex": i, "field": "sessionId", "loc": ["events", i, "sessionId"],
                           "msg": "must equal interviewSessionId", "type": "session_mismatch"})
            continue
        events.append(event)
    if errors:
        first = errors[0]
        bad = len({e["eventIndex"] for e in errors})
        raise ApiError(422, "invalid_events",
                       f"events[{first['eventIndex']}].{first['field']}: {first['msg']} "
                       f"({len(errors)} error(s) in {bad} event(s); nothing was accepted)", details=errors)
    return events


def drop_oversized(events: list[Any], max_text: int, max_preview: int) -> tuple[list[Any], list[DroppedField]]:
    """Events with ids fixed and oversized texts dropped, plus what was dropped (hash and size)."""
    out, dropped = [], []
    for i, event in enumerate(events):
        # The id is derived from the content as sent, before any drop, so a retry maps to the same id.
        update: dict[str, Any] = {} if event.eventId else {"eventId": derive_event_id(event)}
        limits = {"text": max_text} if event.type == "turn" else (
            {"stdoutPreview": max_preview, "stderrPreview": max_preview} if event.type == "run" else {})
        for field, limit in limits.items():
            value = getattr(event, field)
            if value is not None and len(value) > limit:
                data = value.encode()
                dropped.append(DroppedField(eventIndex=i, field=field, sha256=hashlib.sha256(data).hexdigest(),
                                            size=len(data)))
                update[field] = "" if field == "text" else None
        out.append(event.model_copy(update=update) if update else event)
    return out, dropped


def batch_id(tenant: str, session_id: str, event_ids: list[str]) -> str:
    """Deterministic batch id: the same events sent again are the same batch."""
    return hashlib.sha256("\n".join([tenant, session_id, *event_ids]).encode()).hexdigest()[:32]


def _drop_audits(tenant: str, session_id: str, bid: str, events: list[Any], dropped: list[DroppedField],
                 limits: dict[str, int]) -> list[AuditRecord]:
    trace_id = current_trace_id() or None
    out = []
    for d in dropped:
        event_id = events[d.eventIndex].eventId
        out.append(AuditRecord(
            auditId=hashlib.sha256(f"{tenant}/{bid}/{d.eventIndex}/{d.field}".encode()).hexdigest()[:32],
            tenant=tenant, actor="gateway", action="telemetry.field_dropped", resourceType="telemetry_event",
            resourceId=f"{session_id}/{event_id}", outcome="dropped",
            detail={"batchId": bid, "eventIndex": d.eventIndex, "eventId": event_id, "field": d.field,
                    "sha256": d.sha256, "size": d.size, "limitChars": limits[d.field]},
            traceId=trace_id,
        ))
    return out


@router.post(
    "/telemetry",
    response_model=TelemetryAccepted,
    status_code=202,
    responses={200: {"model": TelemetryInitialized, "description": "Initialised (no `events` in the body)."},
               **error_responses(400, 403, 404, 413, 422, 503)},
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": _BODY_SCHEMA, "examples": _BODY_EXAMPLES}}}},
)
async def record_telemetry(request: Request, principal: CaptureAuth, settings: SettingsDep, store: SessionStoreDep,
                           publisher: PublisherDep) -> Any:
    """Initialise a session's telemetry (`{interviewSessionId}`) or append events to it."""
    tenant = principal.tenant
    body = await read_limited(request, settings.TELEMETRY_MAX_BYTES)
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "malformed_json", f"The body is not valid JSON: {exc}",
                       details=[{"rule": "json", "msg": str(exc)}]) from None
    if isinstance(data, dict) and isinstance(data.get("events"), list) and len(data["events"]) > settings.TELEMETRY_MAX_EVENTS:
        raise ApiError(413, "batch_too_large",
                       f"{len(data['events'])} events in one batch; at most {settings.TELEMETRY_MAX_EVENTS} are allowed.",
                       details=[{"rule": "max_events_per_batch", "limit": settings.TELEMETRY_MAX_EVENTS,
                                 "actual": len(data["events"])}])
    try:
        envelope = _Envelope.model_validate(data)
    except ValidationError as exc:
        details = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        where = ".".join(str(p) for p in details[0]["loc"]) or "body"
        raise ApiError(422, "validation_failed", f"{where}: {details[0]['msg']}", details=details) from None
    session_id = envelope.interviewSessionId
    events = parse_events(envelope.events, session_id) if envelope.events is not None else None
    await store.capture_session(tenant, session_id, principal)

    if events is None:
        created, counts = await store.init_telemetry(tenant, session_id)
        counts = {t: counts.get(t, 0) for t in ("code_edit", "run", "turn", "control")}
        out = TelemetryInitialized(interviewSessionId=session_id, created=created, counts=counts,
                                   total=sum(counts.values()))
        return JSONResponse(out.model_dump(mode="json"), status_code=200)

    limits = {"text": settings.TELEMETRY_MAX_TEXT_CHARS, "stdoutPreview": settings.TELEMETRY_MAX_PREVIEW_CHARS,
              "stderrPreview": settings.TELEMETRY_MAX_PREVIEW_CHARS}
    events, dropped = drop_oversized(events, limits["text"], limits["stdoutPreview"])
    event_ids = [e.eventId for e in events]
    bid = batch_id(tenant, session_id, event_ids)
    if events:
        with tracer().start_as_current_span("gateway.telemetry", attributes={
            "twin.tenant": tenant, "twin.session_id": session_id, "twin.events": len(events),
            "twin.dropped_fields": len(dropped),
        }):
            raw = TelemetryRaw(eventId=bid, tenant=tenant, interviewSessionId=session_id, events=events,
                               droppedFields=dropped, traceContext=inject())
            audits = _drop_audits(tenant, session_id, bid, events, dropped, limits)
            sends = [publisher.publish(TELEMETRY_RAW, raw)]
            if audits:
                sends.append(publisher.publish_many(AUDIT_RECORDS, audits))
            await asyncio.gather(*sends)
    out = TelemetryAccepted(interviewSessionId=session_id, batchId=bid, accepted=len(events), eventIds=event_ids,
                            droppedFields=dropped)
    return JSONResponse(out.model_dump(mode="json"), status_code=202)
