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
