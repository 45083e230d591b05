"""The engine's rubric check on the trained sample interviewer: which rubric grades an answer, and that the
verdict reaches what the selector reads, not only the move's label."""

from dataclasses import replace

import pytest

HISTORY = [{"role": "interviewer", "text": "Tell me about a system you built."},
           {"role": "candidate", "text": "I built the order pipeline for a shop."},
           {"role": "interviewer", "text": "How did it handle failures?"}]
# An answer that covers both criteria of the interviewer's own rubric below, word for word.
ANSWER = ("We put every order on a Kafka queue, and when a charge failed the worker retried it with backoff, "
          "three times, before a person looked at it.")
OWN_RUBRIC = ["names the queue it used", "says how a failed charge was retried"]


@pytest.fixture
def engine(cfg, weaviate_client):
    from processors.twin.engine import TwinEngine

    engine = TwinEngine.from_settings(cfg, weaviate_client=weaviate_client)
    yield engine
    engine.close()


def _respond(engine, tenant, monkeypatch, artefacts: dict, session_id: str):
    """The reply to ``ANSWER`` from the sample interviewer with ``artefacts`` over its own, and the decision
    the selector was given."""
    profile = engine.profiles.active(tenant, "dana")
    profile = replace(profile, artefacts={**profile.artefacts, **artefacts})
    seen = []
    select = engine._select

    def spy(selector, turns, candidate_turn, vector, exemplars, decision):
        seen.append(decision)
        return select(selector, turns, candidate_turn, vector, exemplars, decision)

    monkeypatch.setattr(engine, "_select", spy)
    reply = engine.respond(tenant=tenant, interviewer_id="dana", session_id=session_id, history=HISTORY,
                           candidate_turn=ANSWER, profile=profile, use_llm=False)
    return reply, seen[0]


def test_an_answer_is_graded_against_the_interviewer_s_own_rubric_and_the_verdict_reaches_selection(
        engine, sample_tenant, monkeypatch):
    config = {**engine.profiles.active(sample_tenant, "dana").config, "rubric": OWN_RUBRIC}
    reply, decision = _respond(engine, sample_tenant, monkeypatch, {"config": config}, "s-own-rubric")
    check = next(s for s in reply.steps if s.name == "tool.rubric_check")
    assert check.detail["ok"]
    call = next(c for c in reply.function_calls if c.name == "rubric_check")
    assert [c["criterion"] for c in call.args["result"]["criteria"]] == OWN_RUBRIC
    assert call.args["result"]["verdict"] == "strong"
    # A strong answer is left instead of followed up: the move changes, and so do the probabilities the
    # selector weighs each line's move by (the move the verdict chose is now the most probable one).
    assert decision.move.value in ("move_on", "shift_topic") and "rubric: strong answer" in decision.reasons[-1]
    assert max(decision.scores, key=decision.scores.get) == decision.move.value
    assert reply.decision.move == decision.move


def test_no_rubric_no_check(engine, sample_tenant, monkeypatch):
    """No rubric of the interviewer's own, and the generic one did not fit their moves when trained: nothing is
    graded (a technical rubric says nothing of a judge's or a podcast guest's answer)."""
    profile = engine.profiles.active(sample_tenant, "dana")
    assert not profile.config.get("rubric") and "rubric" not in profile.artefacts
    reply, decision = _respond(engine, sample_tenant, monkeypatch, {"rubricCheck": {"applies": False}},
                               "s-no-rubric")
    assert not any(s.name == "tool.rubric_check" for s in reply.steps)
    # The follow-up stands: graded, it would have been turned (see above).
    assert decision.move.value == "ask_followup" and not any("rubric" in r for r in decision.reasons)
