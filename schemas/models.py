"""Pydantic v2 models of every record in ``schemas/avro``: one class per Avro record, same
field names.

The HTTP API validates with these models, and agents get them from
:func:`schemas.codec.decode_model`. Two differences from the Avro shape, both handled by
:meth:`AvroModel.to_avro` / :meth:`AvroModel.from_avro`:

- free-form objects are parsed here (``params: dict``) and JSON strings in Avro
  (``paramsJson``), because Avro has no "unknown" type;
- a telemetry event's ``eventId`` is optional here and always present in Avro
  (:func:`derive_event_id` fills it from the event's content).

Usage::

    from schemas.models import TelemetryBatch, TwinRequest
    batch = TelemetryBatch.model_validate_json(body)
    avro_dict = request.to_avro(); TwinRequest.from_avro(avro_dict) == request
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Annotated, Any, ClassVar, Literal, Self, Union

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)

__all__ = [
    "AuditRecord",
    "AvroModel",
    "CodeActivityFeatures",
    "CodeEditEvent",
    "ControlEvent",
    "Cursor",
    "DeadLetter",
    "DroppedField",
    "EvalSample",
    "FunctionCall",
    "HistoryTurn",
    "IsoTimestamp",
    "MODELS",
    "Pause",
    "Prosody",
    "Redaction",
    "RunEvent",
    "SafetyFlag",
    "SafetyOutcome",
    "SafetyVerdict",
    "SessionEvent",
    "StyleFeatures",
    "TelemetryBatch",
    "TelemetryEvent",
    "TelemetryRaw",
    "TelemetryRedacted",
    "TraceStep",
    "Traces",
    "TrainingJob",
    "TrainingJobStatus",
    "TurnEvent",
    "TwinControls",
    "TwinDraft",
    "TwinReply",
    "TwinRequest",
    "UtcMillis",
    "derive_event_id",
    "model_for",
    "parse_ts",
]

_AVRO_CONTEXT = {"avro": True}
MAX_EVENTS_PER_BATCH = 200  # spec 12b


def parse_ts(value: str) -> datetime:
    """Parse an ISO8601 telemetry timestamp; one without an offset is taken as UTC."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def _check_iso8601(value: str) -> str:
    try:
        parse_ts(value)
    except ValueError:
        raise ValueError(f"not an ISO8601 timestamp: {value!r}") from None
    return value


def _utc_millis(value: datetime) -> datetime:
    # Avro timestamp-millis keeps milliseconds; truncating here makes a model equal to
    # itself after a round trip through Kafka.
    value = value.astimezone(timezone.utc)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


IsoTimestamp = Annotated[str, AfterValidator(_check_iso8601)]
"""Client timestamp kept as the string that was sent, validated as ISO8601."""

UtcMillis = Annotated[AwareDatetime, AfterValidator(_utc_millis)]
"""Server instant (Avro timestamp-millis): timezone required, stored as UTC milliseconds.
Naive datetimes are rejected because fastavro would read them as local time."""

Id = Annotated[str, Field(min_length=1, max_length=200)]
Score = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Field(ge=0.0)]
Count = Annotated[int, Field(ge=0, le=2**31 - 1)]  # Avro int
TraceContext = dict[str, str]


def _utcnow() -> datetime:
    return _utc_millis(datetime.now(timezone.utc))


def _dump_json(value: Any) -> str | None:
    # Sorted, compact and deterministic so equal objects give equal bytes (and event ids).
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _to_avro_value(value: Any) -> Any:
    if isinstance(value, AvroModel):
        return value.to_avro()
    if isinstance(value, (list, tuple)):
        return [_to_avro_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_avro_value(v) for k, v in value.items()}
    return value


class AvroModel(BaseModel):
    """Base of every model that mirrors an Avro record.

    Subclasses set ``__avro_name__`` (the record name in ``schemas/avro``) and, for fields
    that travel as JSON strings, ``__json_fields__`` mapping the model field to the Avro
    field (``{"params": "paramsJson"}``).
    """

    model_config = ConfigDict(extra="forbid")

    __avro_name__: ClassVar[str]
    __json_fields__: ClassVar[dict[str, str]] = {}

    def to_avro(self) -> dict[str, Any]:
        """This model as the dict fastavro writes: nested models converted, JSON fields dumped."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name in self.__json_fields__:
                out[self.__json_fields__[name]] = _dump_json(value)
            else:
                out[name] = _to_avro_value(value)
        return out

    @classmethod
    def from_avro(cls, record: dict[str, Any]) -> Self:
        """Build the model from a dict read by fastavro (JSON fields parsed, then validated)."""
        return cls.model_validate(record, context=_AVRO_CONTEXT)

    @model_validator(mode="before")
    @classmethod
    def _parse_json_fields(cls, data: Any, info: ValidationInfo) -> Any:
        # Only for Avro input (from_avro passes the context, and pydantic hands it to nested
        # models): the HTTP API must not accept `paramsJson` as a second spelling of `params`.
        if not (info.context and info.context.get("avro")) or not isinstance(data, dict):
            return data
        if not cls.__json_fields__:
            return data
        data = dict(data)
        for field, avro_field in cls.__json_fields__.items():
            if avro_field in data:
                raw = data.pop(avro_field)
                try:
                    data[field] = None if raw is None else json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{avro_field} is not valid JSON: {exc}") from exc
        return data


# --------------------------------------------------------------------------- telemetry events


class Cursor(AvroModel):
    """Editor cursor position."""

    __avro_name__ = "Cursor"
    line: Count
    column: Count


class FunctionCall(AvroModel):
    """A tool/function call made in a turn or by the twin; ``args`` is any JSON object."""

    __avro_name__ = "FunctionCall"
    __json_fields__ = {"args": "argsJson"}
    name: Annotated[str, Field(min_length=1, max_length=200)]
    args: dict[str, Any] | None = None


class _BaseEvent(AvroModel):
    """Fields every telemetry event carries (spec 12b ``BaseEvent``)."""

    eventId: Id | None = Field(
        default=None, description="Client-supplied id; derived from the content when omitted."
    )
    ts: IsoTimestamp = Field(description="Client timestamp, ISO8601.")
    sessionId: Id
    source: Literal["client", "server", "ai"] | None = None

    def to_avro(self) -> dict[str, Any]:
        """Avro dict, with ``eventId`` derived from the content when the client sent none."""
        out = super().to_avro()
        if out["eventId"] is None:
            out["eventId"] = derive_event_id(self)
        return out


def derive_event_id(event: _BaseEvent) -> str:
    """Stable id of an event without one: a hash of its content, so a retried batch maps
    to the same ids and sinks can de-duplicate. Identical events get identical ids."""
    content = event.model_dump(mode="json", exclude={"eventId"})
    return hashlib.sha256(_dump_json(content).encode()).hexdigest()[:32]


class CodeEditEvent(_BaseEvent):
    """An IDE edit. ``diffChars`` is a size hint; the hashes identify the snapshots."""

    __avro_name__ = "CodeEditEvent"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "code_edit",
                    "ts": "2025-03-04T10:15:30.120Z",
                    "sessionId": "sess-7f3a",
                    "source": "client",
                    "file": "solution.py",
                    "language": "python",
                    "diffChars": 42,
                    "beforeHash": "9c1e0b",
                    "afterHash": "a8d2f4",
                    "cursor": {"line": 12, "column": 8},
                }
            ]
        }
    )
    type: Literal["code_edit"] = "code_edit"
    file: str | None = None
    language: str | None = None
    diffChars: Count
    beforeHash: str | None = None
    afterHash: str | None = None
    cursor: Cursor | None = None


class RunEvent(_BaseEvent):
    """A code run. Previews are trimmed and redacted by the client; the server redacts again."""

    __avro_name__ = "RunEvent"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "run",
                    "ts": "2025-03-04T10:16:02.500Z",
                    "sessionId": "sess-7f3a",
                    "status": "error",
                    "durationMs": 812.5,
                    "outputHash": "5be1c0",
                    "stdoutPreview": "",
                    "stderrPreview": "IndexError: list index out of range",
                }
            ]
        }
    )
    type: Literal["run"] = "run"
    status: Literal["success", "error"]
    durationMs: NonNegative | None = None
    outputHash: str | None = None
    stdoutPreview: str | None = None
    stderrPreview: str | None = None


class TurnEvent(_BaseEvent):
    """One dialogue turn by the candidate, the interviewer or the twin."""

    __avro_name__ = "TurnEvent"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "turn",
                    "ts": "2025-03-04T10:17:45Z",
                    "sessionId": "sess-7f3a",
                    "role": "interviewer",
                    "text": "What is the time complexity of your solution?",
                    "tokens": 11,
                    "latencyMs": 640.0,
                    "functionCalls": [{"name": "rubric_check", "args": {"criterion": "complexity"}}],
                }
            ]
        }
    )
    type: Literal["turn"] = "turn"
    role: Literal["candidate", "interviewer", "twin"]
    text: str
    tokens: Count | None = None
    latencyMs: NonNegative | None = None
    functionCalls: list[FunctionCall] | None = None


class ControlEvent(_BaseEvent):
    """A control action on the interview flow; ``params`` is any JSON object."""

    __avro_name__ = "ControlEvent"
    __json_fields__ = {"params": "paramsJson"}
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "control",
                    "ts": "2025-03-04T10:18:00+00:00",
                    "sessionId": "sess-7f3a",
                    "source": "ai",
                    "action": "hint",
                    "params": {"level": 1},
                }
            ]
        }
    )
    type: Literal["control"] = "control"
    action: Literal["ask_followup", "hint", "pace_up", "pace_down", "topic_shift", "end"]
    params: dict[str, Any] | None = None


TelemetryEvent = Annotated[
    Union[CodeEditEvent, RunEvent, TurnEvent, ControlEvent], Field(discriminator="type")
]
"""Any telemetry event; ``type`` picks the class."""


class TelemetryBatch(BaseModel):
    """Body of POST /api/interviews/session/telemetry: ``{interviewSessionId}`` initialises,
    ``{interviewSessionId, events}`` appends (at most 200 events)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "interviewSessionId": "sess-7f3a",
                    "events": [
                        CodeEditEvent.model_config["json_schema_extra"]["examples"][0],  # type: ignore[index]
                        TurnEvent.model_config["json_schema_extra"]["examples"][0],  # type: ignore[index]
                    ],
                }
            ]
        },
    )
    interviewSessionId: Id
    events: list[TelemetryEvent] = Field(default_factory=list, max_length=MAX_EVENTS_PER_BATCH)


class DroppedField(AvroModel):
    """A field the gateway dropped for size; its hash and size remain for audit."""

    __avro_name__ = "DroppedField"
    eventIndex: Count
    field: str
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    size: Count


class Redaction(AvroModel):
    """How many entities of a type were redacted in one field of one event."""

    __avro_name__ = "Redaction"
    eventIndex: Count
    field: str
    entityType: str
    count: Count


class _TelemetryBatchRecord(AvroModel):
    """Fields shared by the raw and redacted batch records (not a record itself)."""

    eventId: Id = Field(description="Batch id.")
    tenant: Id
    interviewSessionId: Id
    receivedAt: UtcMillis = Field(default_factory=_utcnow)
    events: list[TelemetryEvent]
    droppedFields: list[DroppedField] = Field(default_factory=list)
    traceContext: TraceContext = Field(default_factory=dict)


class TelemetryRaw(_TelemetryBatchRecord):
    """An accepted telemetry batch as the gateway publishes it (before PII redaction)."""

    __avro_name__ = "TelemetryRaw"


# Siblings rather than parent and child: an agent that checks isinstance(x, TelemetryRaw)
# must not accept a redacted batch by accident, or the reverse.
class TelemetryRedacted(_TelemetryBatchRecord):
    """A telemetry batch after PII redaction, with what was redacted."""

    __avro_name__ = "TelemetryRedacted"
    redactions: list[Redaction] = Field(default_factory=list)


# --------------------------------------------------------------------------- sessions


class SessionEvent(AvroModel):
    """A session was created, updated, ended or erased; carries the session's latest state."""

    __avro_name__ = "SessionEvent"
    eventId: Id
    kind: Literal["created", "updated", "ended", "erased"]
    tenant: Id
    sessionId: Id
    interviewerId: Id
    candidateRef: str | None = None
    role: str | None = None
    seniority: str | None = None
    domain: str | None = None
    consentRecording: bool
    consentTraining: bool
    videoUrl: str | None = None
    ts: UtcMillis = Field(default_factory=_utcnow)
    traceContext: TraceContext = Field(default_factory=dict)


# --------------------------------------------------------------------------- twin


class HistoryTurn(AvroModel):
    """One earlier turn of the conversation given to the twin."""

    __avro_name__ = "HistoryTurn"
    role: Literal["candidate", "interviewer"]
    text: str


class TwinControls(AvroModel):
    """Per-request style controls (spec 14); unset ones use the interviewer's defaults."""

    __avro_name__ = "TwinControls"
    challengeLevel: Score | None = None
    coachingRatio: Score | None = None
    verbosity: Literal["terse", "normal", "verbose"] | None = None
    tone: str | None = None


class TwinRequest(AvroModel):
    """A respond request (spec 8) on its way to the twin; the reply goes to ``replyTopic``."""

    __avro_name__ = "TwinRequest"
    correlationId: Id
    tenant: Id
    interviewerId: Id
    sessionId: Id
    history: list[HistoryTurn] = Field(default_factory=list)
    candidateTurn: str
    controls: TwinControls | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    deadlineMs: Annotated[int, Field(ge=0)] = Field(description="Epoch ms; nobody waits after it.")
    replyTopic: Id
    traceContext: TraceContext = Field(default_factory=dict)
    requestedAt: UtcMillis = Field(default_factory=_utcnow)


class Pause(AvroModel):
    """A pause of ``ms`` milliseconds after word number ``afterWord``."""

    __avro_name__ = "Pause"
    afterWord: Count
    ms: Count


class Prosody(AvroModel):
    """TTS directives for the reply (spec 7 step 6)."""

    __avro_name__ = "Prosody"
    pace: Literal["slow", "normal", "fast"] = "normal"
    pauses: list[Pause] = Field(default_factory=list)
    emphasis: list[str] = Field(default_factory=list)
    intonation: Literal["statement", "question", "encouraging", "firm"] = "statement"


class TraceStep(AvroModel):
    """One timed step of generation (retrieval, policy, generation, ...)."""

    __avro_name__ = "TraceStep"
    __json_fields__ = {"detail": "detailJson"}
    name: str
    ms: NonNegative
    detail: dict[str, Any] | None = None


class Traces(AvroModel):
    """The steps that produced a reply, under one trace id."""

    __avro_name__ = "Traces"
    traceId: str
    steps: list[TraceStep] = Field(default_factory=list)


class TwinDraft(AvroModel):
    """A generated reply waiting for the output safety filter."""

    __avro_name__ = "TwinDraft"
    correlationId: Id
    tenant: Id
    interviewerId: Id
    sessionId: Id
    candidateTurn: str
    text: str
    functionCalls: list[FunctionCall] = Field(default_factory=list)
    prosody: Prosody = Field(default_factory=Prosody)
    traces: Traces
    generator: Literal["offline", "llm"]
    model: str | None = None
    deadlineMs: Annotated[int, Field(ge=0)]
    replyTopic: Id
    traceContext: TraceContext = Field(default_factory=dict)
    startedAtMs: Annotated[int, Field(ge=0)]
    profileVersion: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None


class SafetyFlag(AvroModel):
    """Why a safety check objected."""

    __avro_name__ = "SafetyFlag"
    category: str
    detail: str


class SafetyOutcome(AvroModel):
    """What the safety filter decided about a reply."""

    __avro_name__ = "SafetyOutcome"
    passed: bool
    action: Literal["none", "regenerated", "replaced", "blocked_input"]
    flags: list[SafetyFlag] = Field(default_factory=list)


class TwinReply(AvroModel):
    """The respond API's answer (spec 8): text, tool calls, prosody, traces, safety, latency."""

    __avro_name__ = "TwinReply"
    correlationId: Id
    tenant: Id
    interviewerId: Id
    sessionId: Id
    text: str
    functionCalls: list[FunctionCall] = Field(default_factory=list)
    prosody: Prosody = Field(default_factory=Prosody)
    traces: Traces
    safety: SafetyOutcome
    latencyMs: NonNegative
    generator: Literal["offline", "llm"]
    model: str | None = None
    profileVersion: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None
    candidateTurn: str | None = None


class SafetyVerdict(AvroModel):
    """One input or output safety check, for the flagged-turns metric and audits."""

    __avro_name__ = "SafetyVerdict"
    correlationId: Id
    tenant: Id
    interviewerId: Id
    stage: Literal["input", "output"]
    passed: bool
    flags: list[SafetyFlag] = Field(default_factory=list)
    action: Literal["none", "regenerated", "replaced", "blocked_input"]
    ts: UtcMillis = Field(default_factory=_utcnow)


# --------------------------------------------------------------------------- features


class StyleFeatures(AvroModel):
    """Style scores of one turn, each in [0, 1]."""

    __avro_name__ = "StyleFeatures"
    eventId: Id
    tenant: Id
    sessionId: Id
    interviewerId: Id | None = None
    role: Literal["candidate", "interviewer", "twin"]
    directness: Score
    warmth: Score
    verbosity: Score
    questionForm: Score
    followUp: Score
    challenge: Score
    coaching: Score
    wordCount: Count
    ts: UtcMillis = Field(default_factory=_utcnow)


class CodeActivityFeatures(AvroModel):
    """IDE activity of a session over the window ending at ``windowEnd``."""

    __avro_name__ = "CodeActivityFeatures"
    tenant: Id
    sessionId: Id
    windowEnd: UtcMillis
    editRatePerMin: NonNegative
    runSuccessRate: Score
    timeOnQuestionS: NonNegative
    pauseCount: Count
    edits: Count
    runs: Count


# --------------------------------------------------------------------------- eval, training, ops


class EvalSample(AvroModel):
    """A twin reply, its context and (when known) the real interviewer's turn and scores."""

    __avro_name__ = "EvalSample"
    __json_fields__ = {"context": "contextJson", "scores": "scoresJson"}
    sampleId: Id
    tenant: Id
    interviewerId: Id
    sessionId: Id
    correlationId: Id
    context: dict[str, Any]
    twinText: str
    realText: str | None = None
    scores: dict[str, float] | None = None
    ts: UtcMillis = Field(default_factory=_utcnow)


class TrainingJob(AvroModel):
    """A training request (spec 8 POST /api/digital-twin/train)."""

    __avro_name__ = "TrainingJob"
    __json_fields__ = {"options": "optionsJson"}
    jobId: Id
    tenant: Id
    interviewerId: Id
    datasetRef: Id
    options: dict[str, Any] = Field(default_factory=dict)
    requestedAt: UtcMillis = Field(default_factory=_utcnow)
    traceContext: TraceContext = Field(default_factory=dict)


class TrainingJobStatus(AvroModel):
    """The latest state of a training job."""

    __avro_name__ = "TrainingJobStatus"
    jobId: Id
    tenant: Id
    interviewerId: Id
    status: Literal["queued", "running", "succeeded", "failed"]
    progress: Score = 0.0
    message: str | None = None
    version: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None
    ts: UtcMillis = Field(default_factory=_utcnow)


class AuditRecord(AvroModel):
    """Who did what to which resource, and how it ended."""

    __avro_name__ = "AuditRecord"
    __json_fields__ = {"detail": "detailJson"}
    auditId: Id
    tenant: Id
    actor: Id
    action: Id
    resourceType: Id
    resourceId: Id
    outcome: Id
    detail: dict[str, Any] | None = None
    traceId: str | None = None
    ts: UtcMillis = Field(default_factory=_utcnow)


class DeadLetter(AvroModel):
    """A message that could not be processed, kept byte-for-byte with where it came from."""

    __avro_name__ = "DeadLetter"
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")
    sourceTopic: Id
    partition: Annotated[int, Field(ge=0, le=2**31 - 1)]
    offset: Annotated[int, Field(ge=0)]
    key: bytes | None = None
    value: bytes
    error: str
    agent: Id
    ts: UtcMillis = Field(default_factory=_utcnow)


MODELS: dict[str, type[AvroModel]] = {
    m.__avro_name__: m
    for m in (
        TelemetryRaw,
        TelemetryRedacted,
        SessionEvent,
        TwinRequest,
        TwinDraft,
        TwinReply,
        SafetyVerdict,
        StyleFeatures,
        CodeActivityFeatures,
        EvalSample,
        TrainingJob,
        TrainingJobStatus,
        AuditRecord,
        DeadLetter,
    )
}
"""Top-level record name -> model, for every record that travels on its own topic."""


def model_for(record_name: str) -> type[AvroModel]:
    """The model class of a top-level record name (``"TwinRequest"`` -> :class:`TwinRequest`)."""
    try:
        return MODELS[record_name]
    except KeyError:
        raise KeyError(f"no model for record {record_name!r}; known: {', '.join(MODELS)}") from None
