"""Realistic, deterministic sample messages, one per record: for tests, benchmarks and demos.

Usage::

    from schemas.samples import sample
    request = sample("TwinRequest")          # a validated schemas.models.TwinRequest
    data = codec.encode_model(request)

Every call returns a new model, so callers may modify it. Optional fields are filled in
where realistic so that round trips exercise them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from schemas import models as m

__all__ = ["SAMPLE_TIME", "sample", "sample_events"]

SAMPLE_TIME = datetime(2025, 3, 4, 10, 15, 30, 120_000, tzinfo=timezone.utc)
_MS = int(SAMPLE_TIME.timestamp() * 1000)
_TENANT = "acme"
_SESSION = "sess-7f3a9c"
_INTERVIEWER = "int-ada"
_CORRELATION = "corr-5d2e81"
_TRACE = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}


def sample_events() -> list[m.TelemetryEvent]:
    """One event of each telemetry type, in a plausible order within one session."""
    return [
        m.CodeEditEvent(
            eventId="evt-001",
            ts="2025-03-04T10:15:30.120Z",
            sessionId=_SESSION,
            source="client",
            file="solution.py",
            language="python",
            diffChars=42,
            beforeHash="9c1e0b7d",
            afterHash="a8d2f4e1",
            cursor=m.Cursor(line=12, column=8),
        ),
        m.RunEvent(
            eventId="evt-002",
            ts="2025-03-04T10:16:02.500Z",
            sessionId=_SESSION,
            source="client",
            status="error",
            durationMs=812.5,
            outputHash="5be1c0aa",
            stdoutPreview="",
            stderrPreview="IndexError: list index out of range",
        ),
        m.TurnEvent(
            eventId="evt-003",
            ts="2025-03-04T10:17:45+00:00",
            sessionId=_SESSION,
            source="server",
            role="interviewer",
            text="What happens to your loop when the input list is empty?",
            tokens=13,
            latencyMs=640.0,
            functionCalls=[m.FunctionCall(name="rubric_check", args={"criterion": "edge_cases", "weight": 0.5})],
        ),
        m.ControlEvent(
            eventId="evt-004",
            ts="2025-03-04T10:18:00Z",
            sessionId=_SESSION,
            source="ai",
            action="hint",
            params={"level": 1, "topic": "boundary conditions"},
        ),
    ]


def _traces() -> m.Traces:
    return m.Traces(
        traceId="4bf92f3577b34da6a3ce929d0e0e4736",
        steps=[
            m.TraceStep(name="retrieval", ms=38.2, detail={"hits": 4, "collection": "persona"}),
            m.TraceStep(name="policy", ms=2.1, detail={"decision": "ask_followup"}),
            m.TraceStep(name="generation", ms=412.9),
        ],
    )


def _prosody() -> m.Prosody:
    return m.Prosody(
        pace="normal",
        pauses=[m.Pause(afterWord=3, ms=250)],
        emphasis=["empty"],
        intonation="question",
    )


_REPLY_TEXT = "Before we move on: what does your function return for an empty list?"
_CANDIDATE_TURN = "I loop over the list and keep the running maximum."

_FACTORIES: dict[str, Callable[[], m.AvroModel]] = {
    "TelemetryRaw": lambda: m.TelemetryRaw(
        eventId="batch-0001",
        tenant=_TENANT,
        interviewSessionId=_SESSION,
        receivedAt=SAMPLE_TIME,
        events=sample_events(),
        droppedFields=[m.DroppedField(eventIndex=1, field="stdoutPreview", sha256="e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", size=300_000)],
        traceContext=_TRACE,
    ),
    "TelemetryRedacted": lambda: m.TelemetryRedacted(
        eventId="batch-0001",
        tenant=_TENANT,
        interviewSessionId=_SESSION,
        receivedAt=SAMPLE_TIME,
        events=sample_events(),
        droppedFields=[],
        traceContext=_TRACE,
        redactions=[m.Redaction(eventIndex=2, field="text", entityType="PERSON", count=1)],
    ),
    "SessionEvent": lambda: m.SessionEvent(
        eventId="sevt-0001",
        kind="created",
        tenant=_TENANT,
        sessionId=_SESSION,
        interviewerId=_INTERVIEWER,
        candidateRef="cand-19",
        role="Backend Engineer",
        seniority="senior",
        domain="payments",
        consentRecording=True,
        consentTraining=False,
        videoUrl="file:///var/recordings/sess-7f3a9c.mp4",
        ts=SAMPLE_TIME,
        traceContext=_TRACE,
    ),
    "TwinRequest": lambda: m.TwinRequest(
        correlationId=_CORRELATION,
        tenant=_TENANT,
        interviewerId=_INTERVIEWER,
        sessionId=_SESSION,
        history=[
            m.HistoryTurn(role="interviewer", text="Find the maximum of a list without using max()."),
            m.HistoryTurn(role="candidate", text="Sure, let me write a loop."),
        ],
        candidateTurn=_CANDIDATE_TURN,
        controls=m.TwinControls(challengeLevel=0.7, coachingRatio=0.25, verbosity="terse", tone="warm"),
        temperature=0.4,
        deadlineMs=_MS + 1200,
        replyTopic="twin.replies",
        traceContext=_TRACE,
        requestedAt=SAMPLE_TIME,
    ),
    "TwinDraft": lambda: m.TwinDraft(
        correlationId=_CORRELATION,
        tenant=_TENANT,
        interviewerId=_INTERVIEWER,
        sessionId=_SESSION,
        candidateTurn=_CANDIDATE_TURN,
        text=_REPLY_TEXT,
        functionCalls=[m.FunctionCall(name="rubric_check", args={"criterion": "edge_cases"})],
        prosody=_prosody(),
        traces=_traces(),
        generator="llm",
        model="gpt-4o-mini",
        deadlineMs=_MS + 1200,
        replyTopic="twin.replies",
        traceContext=_TRACE,
        startedAtMs=_MS + 5,
    ),
    "TwinReply": lambda: m.TwinReply(
        correlationId=_CORRELATION,
        tenant=_TENANT,
        interviewerId=_INTERVIEWER,
        sessionId=_SESSION,
        text=_REPLY_TEXT,
        functionCalls=[m.FunctionCall(name="rubric_check", args={"criterion": "edge_cases"})],
        prosody=_prosody(),
        traces=_traces(),
        safety=m.SafetyOutcome(
            passed=True, action="regenerated", flags=[m.SafetyFlag(category="tone", detail="first draft was curt")]
        ),
        latencyMs=487.3,
        generator="llm",
        model="gpt-4o-mini",
    ),
    "SafetyVerdict": lambda: m.SafetyVerdict(
        correlationId=_CORRELATION,
        tenant=_TENANT,
        interviewerId=_INTERVIEWER,
        stage="output",
        passed=False,
        flags=[m.SafetyFlag(category="pii", detail="email address in reply")],
        action="replaced",
        ts=SAMPLE_TIME,
    ),
    "StyleFeatures": lambda: m.StyleFeatures(
        eventId="evt-003",
        tenant=_TENANT,
        sessionId=_SESSION,
        interviewerId=_INTERVIEWER,
        role="interviewer",
        directness=0.8,
        warmth=0.35,
        verbosity=0.2,
        questionForm=1.0,
        followUp=0.9,
        challenge=0.6,
        coaching=0.1,
        wordCount=11,
        ts=SAMPLE_TIME,
    ),
    "CodeActivityFeatures": lambda: m.CodeActivityFeatures(
        tenant=_TENANT,
        sessionId=_SESSION,
        windowEnd=SAMPLE_TIME,
        editRatePerMin=6.5,
        runSuccessRate=0.5,
        timeOnQuestionS=312.0,
        pauseCount=3,
        edits=26,
        runs=4,
    ),
    "EvalSample": lambda: m.EvalSample(
        sampleId="eval-0042",
        tenant=_TENANT,
        interviewerId=_INTERVIEWER,
        sessionId=_SESSION,
        correlationId=_CORRELATION,
        context={"history": [{"role": "candidate", "text": "Sure, let me write a loop."}], "candidateTurn": _CANDIDATE_TURN},
        twinText=_REPLY_TEXT,
        realText="And if the list is empty?",
        scores={"similarity": 0.82, "style": 0.77},
        ts=SAMPLE_TIME,
    ),
    "TrainingJob": lambda: m.TrainingJob(
        jobId="job-0007",
        tenant=_TENANT,
        interviewerId=_INTERVIEWER,
        datasetRef="s3://twin-datasets/acme/int-ada/2025-03-01",
        options={"epochs": 3, "baseModel": "gpt-4o-mini", "holdout": 0.1},
        requestedAt=SAMPLE_TIME,
        traceContext=_TRACE,
    ),
    "TrainingJobStatus": lambda: m.TrainingJobStatus(
        jobId="job-0007",
        tenant=_TENANT,
        interviewerId=_INTERVIEWER,
        status="succeeded",
        progress=1.0,
        message="fine-tune finished",
        version=3,
        ts=SAMPLE_TIME,
    ),
    "AuditRecord": lambda: m.AuditRecord(
        auditId="aud-0100",
        tenant=_TENANT,
        actor="gateway",
        action="telemetry.drop_field",
        resourceType="session",
        resourceId=_SESSION,
        outcome="dropped",
        detail={"field": "stdoutPreview", "size": 300_000},
        traceId="4bf92f3577b34da6a3ce929d0e0e4736",
        ts=SAMPLE_TIME,
    ),
    "DeadLetter": lambda: m.DeadLetter(
        sourceTopic="telemetry.raw",
        partition=2,
        offset=18_446,
        key=b"acme/sess-7f3a9c",
        value=b"\x01\x00\x01\x00\x01\xff\xfe",
        error="DecodeError: TelemetryRaw v1 body does not decode",
        agent="pii_redaction",
        ts=SAMPLE_TIME,
    ),
}


def sample(record_name: str) -> m.AvroModel:
    """A fresh, realistic model of ``record_name`` (a top-level record, e.g. "TwinReply").

    :raises KeyError: no sample for that record.
    """
    try:
        factory = _FACTORIES[record_name]
    except KeyError:
        raise KeyError(f"no sample for {record_name!r}; known: {', '.join(_FACTORIES)}") from None
    return factory()
