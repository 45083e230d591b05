"""The safety agent's plain job: an unsafe draft is replaced, a safe one passes, the verdict says which."""

from __future__ import annotations

from processors.safety_filter import review_draft
from processors.twin.safety import SAFE_FALLBACKS
from processors.twin.safety_learned import SafetyPolicy
from schemas.models import Traces, TwinDraft


def _draft(text: str) -> TwinDraft:
    return TwinDraft(correlationId="c-1", tenant="acme", interviewerId="dana", sessionId="s-1",
                     candidateTurn="I built a search service.", text=text, traces=Traces(traceId="t", steps=[]),
                     generator="offline", deadlineMs=0, replyTopic="twin.replies", startedAtMs=1_000)


def test_an_unsafe_draft_is_replaced_by_the_interviewers_first_safe_line():
    own = ["Do you have kids at home?", "What made you choose that index?"]  # their lines, one unsafe
    reply, verdict = review_draft(_draft("Nice. So how old are you?"), SafetyPolicy(), own, now_ms=1_250)
    assert reply.text == "What made you choose that index?"
    assert reply.safety.passed is False and reply.safety.action == "replaced"
    assert {f.category for f in reply.safety.flags} == {"prohibited_question"}
    assert verdict.stage == "output" and verdict.action == "replaced" and not verdict.passed
    assert reply.latencyMs == 250


def test_without_a_safe_line_of_their_own_the_neutral_fallback_answers():
    reply, _ = review_draft(_draft("Are you married?"), SafetyPolicy(), ["Are you married?"])
    assert reply.text == SAFE_FALLBACKS[0]


def test_a_safe_draft_passes_unchanged():
    reply, verdict = review_draft(_draft("What made you choose that index?"), SafetyPolicy(), [])
    assert reply.text == "What made you choose that index?"
    assert reply.safety.passed and reply.safety.action == "none" and verdict.passed


def test_the_tenants_prohibited_topics_are_checked_too():
    reply, _ = review_draft(_draft("What salary are you expecting?"), SafetyPolicy(prohibited_topics=["salary"]),
                            ["Tell me about the index."])
    assert reply.text == "Tell me about the index."
    assert ("prohibited_topic", "salary") in {(f.category, f.detail) for f in reply.safety.flags}
