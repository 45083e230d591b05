"""Safety agent: ``twin.drafts`` → the request's reply topic (``twin.replies``) + ``safety.verdicts``.

Every draft is checked by the shared ``SafetyPolicy`` (prohibited questions, toxicity, bias, PII
leakage, the interviewer's own prohibited topics). A failing draft is replaced by the first of the
interviewer's own question templates that passes, else a neutral fallback; the reply's ``safety``
says what happened and an audit record is written for every intervention.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timezone

from infra.metrics import observe_safety
from infra.settings import settings
from opentelemetry.trace import SpanKind

from infra.tracing import extract, tracer
from processors.engine import topics
from processors.engine.app import app, enabled
from processors.engine.deadletter import decode_or_deadletter
from processors.engine.metrics import handling
from processors.twin.safety import SAFE_FALLBACKS
from processors.twin.safety_learned import SafetyPolicy
from schemas import topics as catalogue
from schemas.models import AuditRecord, SafetyOutcome, SafetyVerdict, TwinDraft, TwinReply

__all__ = ["review_draft", "filter_safety"]

AGENT = "safety_filter"
_profiles = None
_config = None


def policy_for(tenant: str, interviewer_id: str, version: int | None = None) -> tuple[SafetyPolicy, list[str]]:
    """The interviewer's safety policy and their own lines to fall back on (of ``version`` when it is
    not the active one: a canary candidate's draft falls back on the candidate's lines).

    The policy follows the tenant/interviewer configuration as it is now (processors/twin/config.py,
    read through the Redis cache): prohibited topics of every layer, and the guardrails flag.
    """
    global _profiles, _config
    from processors.twin.config import ConfigStore
    from processors.twin.profiles import ProfileStore

    if _profiles is None:
        _profiles = ProfileStore(settings.POSTGRES_DSN)
        _config = ConfigStore.from_settings(settings)
    profile = _profiles.active(tenant, interviewer_id)
    if version is not None and profile is not None and profile.version != version:
        profile = _profiles.load(tenant, interviewer_id, version) or profile
    if profile is None:
        return SafetyPolicy.from_config(_config.effective(tenant, interviewer_id)), []
    conf = _config.effective(tenant, interviewer_id, profile.version, profile.config)
    # Templates with an open slot ("{x}") are frames, not lines anyone could say as they are.
    own = [t.text for t in profile.style.question_templates if "{x}" not in t.text]
    return SafetyPolicy.from_config(conf), own


def review_draft(draft: TwinDraft, policy: SafetyPolicy, alternatives: list[str] | None = None,
                 now_ms: int | None = None) -> tuple[TwinReply, SafetyVerdict]:
    """The plain job: check the draft's text and produce the final reply and the verdict."""
    verdict = policy.check(draft.text, stage="output")
    text, action = draft.text, "none"
    if not verdict.passed:
        text = policy.first_safe([*(alternatives or []), *SAFE_FALLBACKS]) or SAFE_FALLBACKS[0]
        action = "replaced"
    now_ms = now_ms or int(time.time() * 1000)
    reply = TwinReply(
        correlationId=draft.correlationId, tenant=draft.tenant, interviewerId=draft.interviewerId,
        sessionId=draft.sessionId, text=text, functionCalls=draft.functionCalls, prosody=draft.prosody,
        traces=draft.traces, safety=SafetyOutcome(passed=verdict.passed, action=action, flags=verdict.flags),
        latencyMs=max(0, now_ms - draft.startedAtMs), generator=draft.generator, model=draft.model,
        profileVersion=draft.profileVersion, candidateTurn=draft.candidateTurn,
    )
    record = SafetyVerdict(correlationId=draft.correlationId, tenant=draft.tenant, interviewerId=draft.interviewerId,
                           stage="output", passed=verdict.passed, flags=verdict.flags, action=action)
    return reply, record


if enabled(AGENT):

    @app.agent(topics.TWIN_DRAFTS)
    async def filter_safety(stream):
        """Check each draft; publish the safe reply where the requester listens."""
        async for event in stream.events():
            draft = await decode_or_deadletter(event, TwinDraft, AGENT)
            if draft is None:
                continue
            with handling(AGENT), tracer().start_as_current_span(
                    "agent.safety_filter", context=extract(draft.traceContext), kind=SpanKind.CONSUMER,
                    attributes={"twin.correlation_id": draft.correlationId}) as span:
                policy, own_lines = await asyncio.to_thread(policy_for, draft.tenant, draft.interviewerId,
                                                            draft.profileVersion)
                reply, verdict = review_draft(draft, policy, own_lines)
                observe_safety("output", verdict.passed, verdict.flags, verdict.action)
                span.set_attribute("twin.safety_passed", verdict.passed)
                await topics.publish(catalogue.TWIN_REPLIES, reply, topic_name=draft.replyTopic)
                await topics.publish(catalogue.SAFETY_VERDICTS, verdict)
                if not verdict.passed:
                    await topics.publish(catalogue.AUDIT_RECORDS, AuditRecord(
                        auditId=str(uuid.uuid4()), tenant=draft.tenant, actor=AGENT, action="safety_intervention",
                        resourceType="twin_reply", resourceId=draft.correlationId, outcome=reply.safety.action,
                        detail={"flags": [f.model_dump() for f in verdict.flags]},
                        traceId=draft.traces.traceId or None, ts=datetime.now(timezone.utc)))
else:  # pragma: no cover
    filter_safety = None
