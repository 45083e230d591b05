"""The twin's respond endpoint: publish a request, wait on the reply topic, answer.

A request is bounded by the bytes of its texts (``RESPOND_MAX_BYTES``, measured by
``schemas.respond_limits``), not by its number of turns: over the budget it is refused with 422
``history_too_large`` (rule ``max_text_bytes``, with the limit and the size). A client may send only
a recent window: the twin merges the session's earlier turns from the stored transcript.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.auth import RespondAuth
from gateway.deps import DirectoryDep, PublisherDep, RepliesDep, SettingsDep
from gateway.errors import ApiError, error_responses
from infra.tracing import inject, tracer
from schemas.models import FunctionCall, HistoryTurn, Prosody, SafetyOutcome, Traces, TwinControls, TwinRequest
from schemas.respond_limits import MAX_TURN_CHARS, RespondLimits
from schemas.topics import TWIN_REQUESTS

router = APIRouter(prefix="/api/digital-twin", tags=["twin"], responses=error_responses(401, 403))


class RespondTurn(BaseModel):
    """One earlier turn."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["candidate", "interviewer"]
    text: Annotated[str, Field(min_length=1, max_length=MAX_TURN_CHARS)]


class RespondRequest(BaseModel):
    """The turns the twin answers. ``history`` may be the whole session or only a recent
    window: the twin puts the session's earlier stored turns (``sessionId``) in front of it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{
            "interviewerId": "dana", "sessionId": "s-123",
            "history": [{"role": "interviewer", "text": "Tell me about a system you designed."}],
            "candidateTurn": "I built a rate limiter with Redis and a token bucket.",
            "controls": {"challengeLevel": 0.7, "verbosity": "normal"}, "temperature": 0.3,
        }]},
    )
    interviewerId: Annotated[str, Field(min_length=1, max_length=128)]
    sessionId: Annotated[str, Field(min_length=1, max_length=128)]
    history: list[RespondTurn] = Field(
        default_factory=list,
        description="Earlier turns, oldest first: any number, as long as their texts and candidateTurn total at "
                    "most RESPOND_MAX_BYTES bytes (UTF-8; 262144 by default). Earlier turns of the session that "
                    "the capture pipeline stored are merged in front by the twin.")
    candidateTurn: Annotated[str, Field(max_length=MAX_TURN_CHARS)] = ""
    controls: TwinControls | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    timeoutMs: Annotated[int, Field(ge=100, le=30_000)] | None = Field(
        default=None, description="Deadline for this reply; the server default applies when absent.")

    @model_validator(mode="after")
    def _something_to_answer(self) -> "RespondRequest":
        if not self.history and not self.candidateTurn.strip():
            raise ValueError("history is empty and candidateTurn is blank: there is nothing to respond to")
        return self


class RespondResponse(BaseModel):
    """Spec §8 response plus TTS prosody directives and which generator answered."""

    correlationId: str
    text: str
    functionCalls: list[FunctionCall]
    traces: Traces
    safety: SafetyOutcome
    latencyMs: float
    prosody: Prosody
    generator: str
    model: str | None = None
    profileVersion: int | None = Field(
        default=None, description="The interviewer profile version that answered (a canary's candidate or the active one).")


def _check_size(body: RespondRequest, limits: RespondLimits) -> None:
    """Refuse a request whose texts exceed the byte budget, saying the limit and the size."""
    size = limits.request_bytes((t.text for t in body.history), body.candidateTurn)
    if size > limits.max_bytes:
        raise ApiError(
            422, "history_too_large",
            f"history and candidateTurn hold {size} bytes of text (UTF-8); at most {limits.max_bytes} are accepted. "
            "Send the most recent turns that fit: the twin reads the session's earlier turns from its stored "
            "transcript.",
            details=[{"loc": ["body", "history"], "rule": "max_text_bytes", "limit": limits.max_bytes,
                      "actual": size}])


@router.post(
    "/respond",
    response_model=RespondResponse,
    responses=error_responses(400, 401, 403, 404, 422, 503, 504),
)
async def respond(body: RespondRequest, principal: RespondAuth, settings: SettingsDep, publisher: PublisherDep,
                  replies: RepliesDep, directory: DirectoryDep) -> Any:
    """Return the interviewer's next turn, as that interviewer would say it."""
    started = time.perf_counter()
    tenant = principal.tenant
    principal.require_interviewer(body.interviewerId)
    timeout_ms = body.timeoutMs or settings.RESPOND_TIMEOUT_MS
    _check_size(body, RespondLimits.of(settings))
    if not await directory.exists(tenant, body.interviewerId):
        raise ApiError(404, "unknown_interviewer",
                       f"No trained twin for interviewer {body.interviewerId!r} in this tenant.")
    if not replies.ready and not await replies.wait_ready(min(2.0, timeout_ms / 1000)):
        raise ApiError(503, "broker_unavailable", "The reply consumer is not connected to Kafka; retry later.",
                       headers={"Retry-After": "5"})
    correlation_id = str(uuid.uuid4())
    with tracer().start_as_current_span("gateway.respond", attributes={
        "twin.correlation_id": correlation_id, "twin.tenant": tenant, "twin.interviewer_id": body.interviewerId,
    }):
        request = TwinRequest(
            correlationId=correlation_id, tenant=tenant, interviewerId=body.interviewerId, sessionId=body.sessionId,
            history=[HistoryTurn(role=t.role, text=t.text) for t in body.history],
            candidateTurn=body.candidateTurn, controls=body.controls, temperature=body.temperature,
            deadlineMs=int(time.time() * 1000) + timeout_ms,
            replyTopic=settings.topic("twin.replies"), traceContext=inject(),
        )
        waiter = replies.expect(correlation_id)
        try:
            await publisher.publish(TWIN_REQUESTS, request)
            remaining = timeout_ms / 1000 - (time.perf_counter() - started)
            reply = await asyncio.wait_for(waiter, max(remaining, 0.001))
        except asyncio.TimeoutError:
            raise ApiError(504, "deadline_exceeded",
                           f"The twin did not answer within {timeout_ms} ms; the request was abandoned.",
                           details=[{"correlationId": correlation_id, "timeoutMs": timeout_ms}]) from None
        finally:
            replies.forget(correlation_id)
    return RespondResponse(
        correlationId=correlation_id, text=reply.text, functionCalls=reply.functionCalls, traces=reply.traces,
        safety=reply.safety, latencyMs=round((time.perf_counter() - started) * 1000, 2), prosody=reply.prosody,
        generator=reply.generator, model=reply.model, profileVersion=reply.profileVersion,
    )
