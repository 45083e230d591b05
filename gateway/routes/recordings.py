"""Screen recordings (spec 12a): a streamed MP4 upload into object storage, answered with its URL.

The multipart body is parsed as it arrives (``python_multipart``'s streaming parser) and the file
part goes chunk by chunk into the object store's writer, which encrypts and stores it without
ever holding the whole file in memory. Before any byte is stored the session must be known and
consented (so ``interviewSessionId`` comes as a query parameter or as a form field *before* the
file), and the first box of the file must be an ISO-BMFF ``ftyp`` box. Size is checked as bytes
arrive; on any failure the partial object is aborted, so nothing is half-stored.

Then the client stores the returned ``url`` on the session: ``PATCH /api/interviews/session/{id}``
with ``{"videoUrl": url}``.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from gateway.bodies import drain
from gateway.auth import CaptureAuth, Principal
from gateway.deps import ObjectStoreDep, PublisherDep, SessionStoreDep, SettingsDep
from gateway.errors import ApiError, error_responses
from gateway.session_store import SessionRow, SessionStore
from infra.tracing import current_trace_id
from schemas.models import AuditRecord
from schemas.topics import AUDIT_RECORDS
from sinks.object_store import ObjectStoreError, ObjectWriter

__all__ = ["RecordingPublic", "is_mp4_start", "router"]

router = APIRouter(prefix="/api/interviews/session", tags=["recordings"], responses=error_responses(401, 403))

_SNIFF_BYTES = 12
_MAX_FIELD_BYTES = 1024
# Multipart framing around the file (boundaries, part headers, the session id field).
_FRAMING_ALLOWANCE = 64 * 1024


class RecordingPublic(BaseModel):
    """A stored recording: the durable URL to put on the session, and how it is stored."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "recordingId": "3c9e0d8b6f2a4e1c9b7d5a3f1e0c8b6d", "interviewSessionId": "sess-7f3a",
        "url": "s3://recordings/acme/sess-7f3a/3c9e0d8b6f2a4e1c9b7d5a3f1e0c8b6d.mp4", "sizeBytes": 73400320,
        "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "contentType": "video/mp4",
        "encryption": "sse:AES256"}]})
    recordingId: str
    interviewSessionId: str
    url: str
    sizeBytes: int
    sha256: str
    contentType: str
    encryption: str


def is_mp4_start(head: bytes) -> bool:
    """Whether bytes start an MP4 (ISO-BMFF) file: a first box of type ``ftyp`` with a sane size
    and a printable major brand (``isom``, ``mp42``, ``avc1``...)."""
    if len(head) < _SNIFF_BYTES or head[4:8] != b"ftyp":
        return False
    size = struct.unpack(">I", head[:4])[0]
    brand = head[8:12]
    return (size == 1 or size >= 16) and all(0x20 <= b < 0x7F for b in brand)


class _Upload:
    """State of one streamed multipart upload."""

    def __init__(self, principal: Principal, store: SessionStore, objects, max_bytes: int, session_id: str | None):
        self.principal, self.store, self.objects, self.max_bytes = principal, store, objects, max_bytes
        self.tenant = principal.tenant
        self.session_id = session_id
        self.session: SessionRow | None = None
        self.writer: ObjectWriter | None = None
        self.recording_id = uuid.uuid4().hex
        self.events: list[tuple[str, Any]] = []
        self.ended = False
        self.file_seen = False
        self.file_done = False
        self._name: str | None = None
        self._headers: dict[str, str] = {}
        self._hfield = bytearray()
        self._hvalue = bytearray()
        self._field = bytearray()
        self._head = bytearray()

    # parser callbacks (synchronous): queue what happened, handled asynchronously after each write
    def callbacks(self) -> dict[str, Any]:
        def header_field(data, start, end):
            self._hfield += data[start:end]

        def header_value(data, start, end):
            self._hvalue += data[start:end]

        def header_end():
            self._headers[self._hfield.decode("latin-1").lower()] = self._hvalue.decode("latin-1")
            self._hfield.clear()
            self._hvalue.clear()

        def headers_finished():
            _, options = parse_options_header(self._headers.get("content-disposition", ""))
            self._name = options.get(b"name", b"").decode("latin-1")
            self.events.append(("begin", self._name))

        def part_data(data, start, end):
            self.events.append(("data", bytes(data[start:end])))

        def part_end():
            self.events.append(("end", self._name))
            self._headers = {}

        def end():
            self.ended = True

        return {"on_header_field": header_field, "on_header_value": header_value, "on_header_end": header_end,
                "on_headers_finished": headers_finished, "on_part_data": part_data, "on_part_end": part_end,
                "on_end": end}

    async def handle_events(self) -> None:
        events, self.events = self.events, []
        for kind, value in events:
            if kind == "begin":
                self._field.clear()
                if value == "file":
                    if self.file_seen:
                        raise ApiError(422, "validation_failed", "Send exactly one file part.",
                                       details=[{"loc": ["body", "file"], "msg": "more than one file"}])
                    self.file_seen = True
                    if self.session is None:
                        if not self.session_id:
                            raise ApiError(422, "missing_session_id",
                                           "Send interviewSessionId as a query parameter or as a form field before "
                                           "the file.", details=[{"loc": ["body", "interviewSessionId"],
                                                                  "msg": "required before the file part"}])
                        self.session = await self.store.capture_session(self.tenant, self.session_id, self.principal)
            elif kind == "data":
                if self._name == "file":
                    await self._file_data(value)
                elif len(self._field) + len(value) > _MAX_FIELD_BYTES:
                    raise ApiError(422, "validation_failed", f"Form field {self._name!r} is too long.")
                else:
                    self._field += value
            elif kind == "end":
                if value == "file":
                    await self._file_data(b"", final=True)
                    self.file_done = True
                elif value == "interviewSessionId":
                    given = self._field.decode("utf-8", "replace").strip()
                    if self.session_id and given != self.session_id:
                        raise ApiError(422, "validation_failed", "interviewSessionId differs between the query and "
                                       "the form.")
                    if self.session is None:
                        self.session_id = given
                        self.session = await self.store.capture_session(self.tenant, given, self.principal)

    async def _file_data(self, data: bytes, final: bool = False) -> None:
        if self.writer is None:
            self._head += data
            if len(self._head) < _SNIFF_BYTES and not final:
                return
            if not is_mp4_start(bytes(self._head[:_SNIFF_BYTES])):
                raise ApiError(415, "not_mp4", "The file is not an MP4: its first box is not an ISO-BMFF 'ftyp' box.",
                               details=[{"loc": ["body", "file"], "rule": "mp4_ftyp_box"}])
            key = f"{self.tenant}/{self.session.session_id}/{self.recording_id}.mp4"
            try:
                self.writer = await self.objects.begin(key, "video/mp4")
            except ObjectStoreError as exc:
                raise ApiError(503, "object_store_unavailable", f"Object storage refused the upload: {exc}",
                               headers={"Retry-After": "5"}) from exc
            data, self._head = bytes(self._head), bytearray()
        if self.writer.size + len(data) > self.max_bytes:
            raise ApiError(413, "recording_too_large", f"The recording exceeds {self.max_bytes} bytes.",
                           details=[{"rule": "max_recording_bytes", "limit": self.max_bytes}])
        try:
            await self.writer.write(data)
        except ObjectStoreError as exc:
            raise ApiError(503, "object_store_unavailable", f"Object storage failed during the upload: {exc}",
                           headers={"Retry-After": "5"}) from exc


@router.post(
    "/screen-recording",
    response_model=RecordingPublic,
    status_code=201,
    responses=error_responses(400, 403, 404, 413, 422, 503) | {
        415: {"description": "Not multipart/form-data, or the file is not an MP4.",
              "content": {"application/json": {"example": {"error": {
                  "code": "not_mp4", "message": "The file is not an MP4: its first box is not an ISO-BMFF 'ftyp' box.",
                  "details": [{"loc": ["body", "file"], "rule": "mp4_ftyp_box"}]}}}}}},
    openapi_extra={
        "parameters": [{"name": "interviewSessionId", "in": "query", "required": False, "schema": {"type": "string"},
                        "description": "The session (alternatively a form field sent before the file)."}],
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"interviewSessionId": {"type": "string", "example": "sess-7f3a"},
                           "file": {"type": "string", "format": "binary", "description": "The MP4 (video/mp4)."}},
        }, "encoding": {"file": {"contentType": "video/mp4"}}}}},
    },
)
async def upload_recording(request: Request, principal: CaptureAuth, settings: SettingsDep, store: SessionStoreDep,
                           objects: ObjectStoreDep, publisher: PublisherDep) -> RecordingPublic:
    """Stream an MP4 screen recording into object storage and return its durable URL."""
    tenant = principal.tenant
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        await drain(request)
        raise ApiError(415, "unsupported_media_type", "Send multipart/form-data with a `file` part (video/mp4).")
    limit = settings.RECORDING_MAX_BYTES
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + _FRAMING_ALLOWANCE:
        await drain(request)
        raise ApiError(413, "recording_too_large", f"The recording exceeds {limit} bytes.",
                       details=[{"rule": "max_recording_bytes", "limit": limit}])
    session_id = request.query_params.get("interviewSessionId") or None
    upload = _Upload(principal, store, objects, limit, session_id)
    if session_id:
        try:
            upload.session = await store.capture_session(tenant, session_id, principal)
        except ApiError:
            await drain(request)
            raise
    parser = MultipartParser(boundary, upload.callbacks())
    committed = None
    try:
        async for chunk in request.stream():
            try:
                parser.write(chunk)
            except FormParserError as exc:
                raise ApiError(400, "malformed_multipart", f"The multipart body does not parse: {exc}") from None
            await upload.handle_events()
        if not upload.ended:
            raise ApiError(400, "malformed_multipart", "The multipart body ended before its closing boundary.")
        if upload.writer is None:
            raise ApiError(422, "missing_file", "No `file` part in the form.",
                           details=[{"loc": ["body", "file"], "msg": "Field required"}])
        try:
            committed = await upload.writer.commit()
        except ObjectStoreError as exc:
            raise ApiError(503, "object_store_unavailable", f"Object storage could not store the recording: {exc}",
                           headers={"Retry-After": "5"}) from exc
        row = {"recording_id": upload.recording_id, "tenant": tenant, "session_id": upload.session.session_id,
               "url": committed.url, "object_key": committed.key, "content_type": committed.content_type,
               "size_bytes": committed.size, "sha256": committed.sha256, "encryption": committed.encryption}

        async def audit() -> None:
            await publisher.publish(AUDIT_RECORDS, AuditRecord(
                auditId=hashlib.sha256(f"{tenant}/recording/{upload.recording_id}".encode()).hexdigest()[:32],
                tenant=tenant, actor="gateway", action="recording.stored", resourceType="recording",
                resourceId=upload.recording_id, outcome="stored",
                detail={"sessionId": upload.session.session_id, "url": committed.url, "sizeBytes": committed.size,
                        "sha256": committed.sha256, "encryption": committed.encryption},
                traceId=current_trace_id() or None))

        await store.add_recording(row, audit)
    except BaseException as exc:
        # Nothing half-stored: an aborted writer leaves no object; a committed one is deleted again.
        if upload.writer is not None and committed is None:
            await upload.writer.abort()
        elif committed is not None:
            await objects.delete(committed.key)
        if isinstance(exc, ClientDisconnect):
            raise ApiError(400, "upload_interrupted", "The client disconnected before the upload finished.") from None
        if isinstance(exc, ApiError):
            await drain(request)
        raise
    return RecordingPublic(recordingId=upload.recording_id, interviewSessionId=upload.session.session_id,
                           url=committed.url, sizeBytes=committed.size, sha256=committed.sha256,
                           contentType=committed.content_type, encryption=committed.encryption)
