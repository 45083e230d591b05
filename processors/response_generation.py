"""Twin agent: ``twin.requests`` → ``twin.drafts`` (and input-stage ``safety.verdicts``).

Each request is answered by the shared ``TwinEngine`` in a worker thread (CPU-bound; the event
loop keeps heart-beating). A request already past its deadline is dropped and counted: nobody is
waiting for it any more. The engine answers the whole session so far: the request's window after
the session's earlier stored turns (``processors/twin/session_history.py``), within the request
byte budget (``RESPOND_MAX_BYTES``); the reply's trace ends with a ``history`` step counting them.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from infra.metrics import CANARY_REQUESTS, REQUESTS_EXPIRED, observe_generation, observe_safety
from infra.settings import settings
from opentelemetry.trace import SpanKind

from infra.tracing import current_trace_id, extract, inject, tracer
from processors.engine import topics
from processors.engine.app import app, enabled
from processors.engine.deadletter import decode_or_deadletter, send_dead_letter
from processors.engine.metrics import handling
from processors.twin.safety_learned import SafetyPolicy
from processors.twin.session_history import SessionTranscripts, session_history
from schemas import topics as catalogue
from schemas.models import SafetyVerdict, TraceStep, Traces, TwinDraft, TwinRequest

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
    # The learned safety checks load their models on first use (4 s on a busy machine): the input check
    # runs on every request, before generation, and the first candidate turn must not pay for it.
    from processors.twin.safety import screen_input

    policy = SafetyPolicy()
    screen_input(policy, "Warm up: I'm Maria, reach me at maria@example.com or 415-555-0132.")
    policy.check("Warm up: what would you measure first?", "output")
    if engine.llm is not None:
        # Prime the model server (weights, kernels, the shared prompt prefix with the tool preamble).
        engine.llm.warm_up()
    log.info("twin engine ready")


_router = None


def get_router():
    """The worker's canary router (which profile version answers a request; processors/twin/canary.py)."""
    global _router
    if _router is None:
        from processors.twin.canary import CanaryRouter

        _router = CanaryRouter(settings.POSTGRES_DSN, ttl_s=settings.CANARY_ROUTE_TTL_S)
    return _router


_transcripts = None


def get_transcripts() -> SessionTranscripts:
    """The worker's reader of stored session transcripts (the history before a request's window)."""
    global _transcripts
    if _transcripts is None:
        _transcripts = SessionTranscripts(settings.POSTGRES_DSN)
    return _transcripts


def _respond(request: TwinRequest, engine, router, history: list[dict[str, str]]):
    """Run the engine on ``history`` with the version the canary router picks; a failing candidate falls
    back to the baseline (spec §10: canary traffic with fallback)."""
    kwargs = dict(tenant=request.tenant, interviewer_id=request.interviewerId, session_id=request.sessionId,
                  history=history, candidate_turn=request.candidateTurn,
                  controls=request.controls, temperature=request.temperature)
    route = router.route(engine.profiles, request.tenant, request.interviewerId, request.sessionId) if router else None
    if route is None or route.profile is None:
        return engine.respond(**kwargs), None
    try:
        reply = engine.respond(**kwargs, profile=route.profile)
    except Exception:
        if route.arm != "candidate":
            raise
        log.exception("canary candidate v%s failed for %s; answering with the baseline", route.profile.version,
                      request.correlationId)
        reply, route = engine.respond(**kwargs), None
    if route is not None and route.arm is not None:
        CANARY_REQUESTS.labels(request.tenant, request.interviewerId, route.arm, str(reply.profile_version)).inc()
    return reply, route


def draft_reply(request: TwinRequest, engine, router=None,
                transcripts: SessionTranscripts | None = None) -> tuple[TwinDraft, SafetyVerdict]:
    """The plain job: merge the session's stored turns (from ``transcripts``, when given) before the
    request's window, check the input, run the engine (on the version the canary ``router`` picks, when
    given), wrap the result as a draft tagged with that version."""
    started_ms = int(time.time() * 1000)
    t0 = time.perf_counter()
    with tracer().start_as_current_span("twin.history") as span:
        merged = session_history(request, transcripts, settings.RESPOND_MAX_BYTES)
        for key, value in merged.detail().items():
            if value is not None:
                span.set_attribute(f"twin.history.{key}", value)
    history_step = TraceStep(name="history", ms=round((time.perf_counter() - t0) * 1000, 3), detail=merged.detail())
    reply, _ = _respond(request, engine, router, merged.turns)
    # The engine checked the input before generating (under the configuration the reply was made with).
    if reply.input_screen is not None:
        verdict = reply.input_screen.verdict
    else:
        policy = SafetyPolicy.from_config(reply.config) if reply.config is not None else SafetyPolicy()
        verdict = policy.check(request.candidateTurn, stage="input")
    draft = TwinDraft(
        correlationId=request.correlationId, tenant=request.tenant, interviewerId=request.interviewerId,
        sessionId=request.sessionId, candidateTurn=request.candidateTurn, text=reply.text,
        functionCalls=reply.function_calls, prosody=reply.prosody,
        traces=Traces(traceId=current_trace_id(), steps=[*reply.steps, history_step]), generator=reply.generator,
        model=reply.model,
        deadlineMs=request.deadlineMs, replyTopic=request.replyTopic, traceContext=inject(), startedAtMs=started_ms,
        profileVersion=reply.profile_version,
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
                REQUESTS_EXPIRED.inc()
                continue
            with handling(AGENT) as unit, tracer().start_as_current_span(
                    "agent.response_generation", context=extract(request.traceContext), kind=SpanKind.CONSUMER,
                    attributes={"twin.correlation_id": request.correlationId}):
                try:
                    # copy_context: the engine's spans (in the worker thread) join this trace.
                    draft, verdict = await loop.run_in_executor(
                        _executor, contextvars.copy_context().run, draft_reply, request, get_engine(), get_router(),
                        get_transcripts())
                except LookupError as exc:  # unknown interviewer (trained away since the gateway checked)
                    unit.fail()
                    await send_dead_letter(event, f"{type(exc).__name__}: {exc}", AGENT)
                    continue
                observe_safety("input", verdict.passed, verdict.flags)
                observe_generation(tenant=draft.tenant, interviewer=draft.interviewerId, generator=draft.generator,
                                   steps=draft.traces.steps,
                                   price_prompt_per_1k=settings.LLM_PRICE_PER_1K_PROMPT_TOKENS,
                                   price_completion_per_1k=settings.LLM_PRICE_PER_1K_COMPLETION_TOKENS)
                await topics.publish(catalogue.TWIN_DRAFTS, draft)
                await topics.publish(catalogue.SAFETY_VERDICTS, verdict)
            stats["answered"] += 1
else:  # pragma: no cover - this worker runs other agents
    generate_response = None
