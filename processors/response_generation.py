"""Twin agent: ``twin.requests`` → ``twin.drafts`` (and input-stage ``safety.verdicts``).

Each request is answered by the shared ``TwinEngine`` in a worker thread (CPU-bound; the event
loop keeps heart-beating). A request already past its deadline is dropped and counted: nobody is
waiting for it any more.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from infra.settings import settings
from opentelemetry.trace import SpanKind

from infra.tracing import current_trace_id, extract, inject, tracer
from processors.engine import topics
from processors.engine.app import app, enabled
from processors.engine.deadletter import decode_or_deadletter, send_dead_letter
from processors.twin.safety import SafetyPolicy
from schemas import topics as catalogue
from schemas.models import SafetyVerdict, Traces, TwinDraft, TwinRequest

__all__ = ["draft_reply", "generate_response"]

log = logging.getLogger(__name__)
AGENT = "response_generation"
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="twin-engine")
_engine = None
stats = {"expired": 0, "answered": 0}


def get_engine():
    """The worker's engine, built on first use (loads the embedding model once)."""
    global _engine
    if _engine is None:
        from processors.twin.engine import TwinEngine

        _engine = TwinEngine.from_settings(settings)
    return _engine


def warm_up() -> None:
    """Load the model, connect the stores and run one embedding, so the first request is fast."""
    engine = get_engine()
    # A batch the size the generator ranks, so the first real request meets warm kernels.
    engine.embedder.embed([f"warm up {i}" for i in range(engine.retrieve_k)])
    if engine.llm is not None:
        # Prime the model server (weights, kernels, the shared prompt prefix with the tool preamble).
        engine.llm.warm_up()
    log.info("twin engine ready")


def draft_reply(request: TwinRequest, engine) -> tuple[TwinDraft, SafetyVerdict]:
    """The plain job: check the input, run the engine, wrap the result as a draft."""
    started_ms = int(time.time() * 1000)
    verdict = SafetyPolicy().check(request.candidateTurn, stage="input")
    reply = engine.respond(tenant=request.tenant, interviewer_id=request.interviewerId, session_id=request.sessionId,
                           history=[t.model_dump() for t in request.history], candidate_turn=request.candidateTurn,
                           controls=request.controls, temperature=request.temperature)
    draft = TwinDraft(
        correlationId=request.correlationId, tenant=request.tenant, interviewerId=request.interviewerId,
        sessionId=request.sessionId, candidateTurn=request.candidateTurn, text=reply.text,
        functionCalls=reply.function_calls, prosody=reply.prosody,
        traces=Traces(traceId=current_trace_id(), steps=reply.steps), generator=reply.generator, model=reply.model,
        deadlineMs=request.deadlineMs, replyTopic=request.replyTopic, traceContext=inject(), startedAtMs=started_ms,
    )
    input_verdict = SafetyVerdict(correlationId=request.correlationId, tenant=request.tenant,
                                  interviewerId=request.interviewerId, stage="input", passed=verdict.passed,
                                  flags=verdict.flags, action="none")
    return draft, input_verdict


if enabled(AGENT):

    @app.agent(topics.TWIN_REQUESTS)
    async def generate_response(stream):
        """Answer each twin request with a draft for the safety agent."""
        loop = asyncio.get_running_loop()
        # Readiness: a worker that cannot answer yet must not take requests off the topic.
        await loop.run_in_executor(_executor, warm_up)
        async for event in stream.events():
            request = await decode_or_deadletter(event, TwinRequest, AGENT)
            if request is None:
                continue
            if time.time() * 1000 > request.deadlineMs:
                stats["expired"] += 1
                continue
            with tracer().start_as_current_span("agent.response_generation", context=extract(request.traceContext),
                                                kind=SpanKind.CONSUMER,
                                                attributes={"twin.correlation_id": request.correlationId}):
                try:
                    # copy_context: the engine's spans (in the worker thread) join this trace.
                    draft, verdict = await loop.run_in_executor(
                        _executor, contextvars.copy_context().run, draft_reply, request, get_engine())
                except LookupError as exc:  # unknown interviewer (trained away since the gateway checked)
                    await send_dead_letter(event, f"{type(exc).__name__}: {exc}", AGENT)
                    continue
                await topics.publish(catalogue.TWIN_DRAFTS, draft)
                await topics.publish(catalogue.SAFETY_VERDICTS, verdict)
            stats["answered"] += 1
else:  # pragma: no cover - this worker runs other agents
    generate_response = None
