"""Which of memory's lines the engine lets the twin say.

Each test puts one line first in the learned selector's order (it fits the moment best of all) and checks
that the real engine, on the trained sample interviewer, lets it give way to the next.
"""

HISTORY = [{"role": "interviewer", "text": "Tell me about a system you built."}]
TURN = "I built a billing pipeline that charges customers monthly from a cron job."


def _respond_with_first(cfg, tenant, weaviate_client, monkeypatch, line: dict, session_id: str, history=HISTORY):
    """The engine's reply to ``TURN`` when a copy of memory's best candidate, changed by ``line`` (its
    ``exemplar_id``, ``reply``, ``context``), is put first; and the engine's sample profile."""
    from processors.twin.engine import TwinEngine

    engine = TwinEngine.from_settings(cfg, weaviate_client=weaviate_client)
    select = engine._select

    def put_first(*args, **kwargs):
        ordered, query = select(*args, **kwargs)
        best, score = ordered[0]
        return [(best.model_copy(update=line), score + 10.0), *ordered], query

    monkeypatch.setattr(engine, "_select", put_first)
    try:
        profile = engine.profiles.active(tenant, "dana")
        reply = engine.respond(tenant=tenant, interviewer_id="dana", session_id=session_id, history=history,
                               candidate_turn=TURN, use_llm=False)
    finally:
        engine.close()
    assert reply.text.strip() and line["exemplar_id"] not in reply.exemplar_ids
    return reply, profile


def _step(reply, name: str) -> dict:
    return next(s for s in reply.steps if s.name == name).detail


def test_a_line_cut_off_before_it_said_anything_is_never_said(cfg, sample_tenant, weaviate_client, monkeypatch):
    """The interviewer was interrupted in "So, just to --"; the twin is not, and would say "So, just to." whole."""
    reply, _ = _respond_with_first(cfg, sample_tenant, weaviate_client, monkeypatch,
                                   {"reply": "So, just to --", "exemplar_id": "cut-short"}, "s-cut-short")
    assert "just to" not in reply.text.lower()
    assert _step(reply, "select")["cut_short_lines"] == 1


def test_the_twin_does_not_say_again_what_it_has_just_said(cfg, sample_tenant, weaviate_client, monkeypatch):
    """Memory can hold a near-copy of the interviewer's latest line (a stock question, a clip retold in another
    session): it fits the moment best of all, and still gives way."""
    from processors.twin.text import restates

    asked = "Walk me through the billing system you built and how it retries failed charges."
    again = {"exemplar_id": "said-again",
             "reply": "So walk me through that billing system you built: how does it retry failed charges?"}
    reply, _ = _respond_with_first(cfg, sample_tenant, weaviate_client, monkeypatch, again, "s-said-again",
                                   history=[{"role": "interviewer", "text": asked}])
    assert not restates(reply.text, asked)
    assert _step(reply, "select")["restated_lines"] >= 1


def test_a_line_naming_another_sessions_company_gives_way(cfg, sample_tenant, weaviate_client, monkeypatch):
    """Editing cannot place a name this session never used ("Larkspur Freight", the other session's company).
    Training recorded the names that every session may hear, and this one is not among them."""
    theirs = {"exemplar_id": "other-company", "context": "Candidate: I ran data at Larkspur Freight for two years.",
              "reply": "And how did the billing at Larkspur Freight retry its failed charges?"}
    reply, profile = _respond_with_first(cfg, sample_tenant, weaviate_client, monkeypatch, theirs, "s-other-company")
    assert isinstance(profile.artefacts["commonNames"], list)
    assert "Larkspur Freight" not in profile.artefacts["commonNames"]
    assert "Larkspur" not in reply.text
    assert _step(reply, "generate")["other_session_lines"] >= 1


def test_said_before_counts_what_the_twin_said_of_a_remembered_line():
    from processors.twin.engine import said_before

    remembered = ("I think whether he has to say that or not has a lot to do with -- with when the effective date "
                  "ought to be, it seems to me. Don't you agree?")
    trimmed = ("I think whether he has to say that or not has a lot to do with when the effective date ought to be, it "
               "seems to me.")
    other = ["What is the effective date of the second statute?", "Is the rule in the statute or in the regulation?"]
    assert said_before(remembered, [trimmed, *other[:1]])  # one of the latest two, as said: trimmed and tidied
    assert not said_before(remembered, [trimmed, *other])  # said once, three lines back: people come back to it
    assert said_before(remembered, [trimmed, trimmed, *other])  # but not a third time
    assert not said_before("Got it.", ["Got it.", "Got it."])  # a bare acknowledgement may come back


def test_a_live_twin_answering_on_its_own_lines_does_not_loop(cfg, sample_tenant, weaviate_client, monkeypatch):
    """In a live session the interviewer's side of the history is the twin's own replies. A remembered line put
    first at every turn, said tidied ("with -- with" is "with") and with few content words, comes back at most
    ``THREAD_MAX_REPEATS`` times, never right after itself; before, it was said at every turn."""
    from processors.twin.engine import TwinEngine
    from processors.twin.offline_generator import THREAD_MAX_REPEATS

    favourite = ("I think whether they have to retry that or not has a lot to do with -- with when the charge "
                 "ought to be made, it seems to me.")
    engine = TwinEngine.from_settings(cfg, weaviate_client=weaviate_client)
    select = engine._select

    def favourite_first(*args, **kwargs):
        ordered, query = select(*args, **kwargs)
        best, score = ordered[0]
        return [(best.model_copy(update={"reply": favourite, "exemplar_id": "favourite"}), score + 10.0),
                *ordered], query

    monkeypatch.setattr(engine, "_select", favourite_first)
    answers = [TURN, "It retries three times with backoff, then parks the charge.", "We alert on the parked ones.",
               "Finance reviews them every morning.", "About two hundred a day at first, now forty.",
               "We added a second payment provider."]
    history: list[dict] = list(HISTORY)
    sources: list[str] = []
    try:
        for answer in answers:
            reply = engine.respond(tenant=sample_tenant, interviewer_id="dana", session_id="s-live-loop",
                                   history=history, candidate_turn=answer, use_llm=False)
            assert reply.text.strip()
            history += [{"role": "candidate", "text": answer}, {"role": "interviewer", "text": reply.text}]
            sources.append("favourite" if "has a lot to do with when the charge" in reply.text else reply.text)
    finally:
        engine.close()
    assert sources.count("favourite") == THREAD_MAX_REPEATS  # from memory or from the session's own thread
    assert all(a != b for a, b in zip(sources, sources[1:]))
