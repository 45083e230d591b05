"""Which of memory's lines the engine lets the twin say."""

HISTORY = [{"role": "interviewer", "text": "Tell me about a system you built."}]
TURN = "I built a billing pipeline that charges customers monthly from a cron job."


def test_a_line_cut_off_before_it_said_anything_is_never_said(cfg, sample_tenant, weaviate_client, monkeypatch):
    """The interviewer was interrupted in "So, just to --"; the twin is not, and would say "So, just to." whole.
    Put first in the selector's order, the line still gives way to the next one."""
    from processors.twin.engine import TwinEngine

    engine = TwinEngine.from_settings(cfg, weaviate_client=weaviate_client)
    select = engine._select

    def cut_line_first(*args, **kwargs):
        ordered, query = select(*args, **kwargs)
        best, score = ordered[0]
        cut = best.model_copy(update={"reply": "So, just to --", "exemplar_id": "cut-short"})
        return [(cut, score + 10.0), *ordered], query

    monkeypatch.setattr(engine, "_select", cut_line_first)
    try:
        reply = engine.respond(tenant=sample_tenant, interviewer_id="dana", session_id="s-cut-short",
                               history=HISTORY, candidate_turn=TURN, use_llm=False)
    finally:
        engine.close()
    assert reply.text.strip() and "just to" not in reply.text.lower()
    assert "cut-short" not in reply.exemplar_ids
    assert next(s for s in reply.steps if s.name == "select").detail["cut_short_lines"] == 1


def test_the_twin_does_not_say_again_what_it_has_just_said(cfg, sample_tenant, weaviate_client, monkeypatch):
    """Memory can hold a near-copy of the interviewer's latest line (a stock question, a clip retold in another
    session). Put first in the selector's order, it fits the moment best of all, and still gives way."""
    from processors.twin.engine import TwinEngine
    from processors.twin.text import restates

    engine = TwinEngine.from_settings(cfg, weaviate_client=weaviate_client)
    select = engine._select
    asked = "Walk me through the billing system you built and how it retries failed charges."

    def near_copy_first(*args, **kwargs):
        ordered, query = select(*args, **kwargs)
        best, score = ordered[0]
        again = best.model_copy(update={"exemplar_id": "said-again",
                                        "reply": "So walk me through that billing system you built: how does it "
                                                 "retry failed charges?"})
        return [(again, score + 10.0), *ordered], query

    monkeypatch.setattr(engine, "_select", near_copy_first)
    try:
        reply = engine.respond(tenant=sample_tenant, interviewer_id="dana", session_id="s-said-again",
                               history=[{"role": "interviewer", "text": asked}], candidate_turn=TURN, use_llm=False)
    finally:
        engine.close()
    assert reply.text.strip() and "said-again" not in reply.exemplar_ids
    assert not restates(reply.text, asked)
    assert next(s for s in reply.steps if s.name == "select").detail["restated_lines"] >= 1


def test_a_line_naming_another_sessions_company_gives_way(cfg, sample_tenant, weaviate_client, monkeypatch):
    """Editing cannot place a name this session never used ("Fishtown Analytics", the other session's company):
    put first in the selector's order, such a line gives way to the next. Training recorded the names that
    every session may hear, and this one is not among them."""
    from processors.twin.engine import TwinEngine

    engine = TwinEngine.from_settings(cfg, weaviate_client=weaviate_client)
    profile = engine.profiles.active(sample_tenant, "dana")
    assert isinstance(profile.artefacts["commonNames"], list)
    assert "Fishtown Analytics" not in profile.artefacts["commonNames"]
    select = engine._select

    def other_company_first(*args, **kwargs):
        ordered, query = select(*args, **kwargs)
        best, score = ordered[0]
        theirs = best.model_copy(update={
            "exemplar_id": "other-company", "context": "Candidate: I ran data at Fishtown Analytics for two years.",
            "reply": "And how did the billing at Fishtown Analytics retry its failed charges?"})
        return [(theirs, score + 10.0), *ordered], query

    monkeypatch.setattr(engine, "_select", other_company_first)
    try:
        reply = engine.respond(tenant=sample_tenant, interviewer_id="dana", session_id="s-other-company",
                               history=HISTORY, candidate_turn=TURN, use_llm=False)
    finally:
        engine.close()
    assert reply.text.strip() and "Fishtown" not in reply.text and "other-company" not in reply.exemplar_ids
    assert next(s for s in reply.steps if s.name == "generate").detail["other_session_lines"] >= 1
