"""A ``prohibited`` persona document: the topics it lists join the version's prohibitedTopics, so the real engine
never says a line that raises one; a sentence instead of topics is refused when the options are read."""

import uuid

import pytest
from pydantic import ValidationError

from processors.twin.memory import PersonaDoc
from processors.twin.options import PersonaDocIn, TrainingOptions, prohibited_topics_of


def test_a_prohibited_document_lists_topics_one_per_line_or_by_semicolons():
    assert prohibited_topics_of("salary history; criminal record\n  union   membership.\n\n") == [
        "salary history", "criminal record", "union membership"]
    assert PersonaDocIn(kind="prohibited", key="pay", text="salary history; current salary").text


@pytest.mark.parametrize("text", ["Never ask the candidate what they earn now or earned before.", " ; \n "])
def test_a_sentence_or_nothing_is_refused_with_the_reason(text):
    with pytest.raises(ValidationError, match="a prohibited document lists topics"):
        PersonaDocIn(kind="prohibited", key="pay", text=text)
    # Other kinds are free text.
    assert PersonaDocIn(kind="note", key="pay", text=text)


def test_at_most_200_topics_from_documents_and_config_together():
    docs = [{"kind": "prohibited", "key": "many", "text": "; ".join(f"topic {i}" for i in range(150))}]
    TrainingOptions.model_validate({"docs": docs})
    with pytest.raises(ValidationError, match="201 prohibited topics"):
        TrainingOptions.model_validate({"docs": docs,
                                        "config": {"prohibitedTopics": [f"other {i}" for i in range(51)]}})


@pytest.fixture(scope="module")
def tenants(cfg, postgres_dsn, weaviate_client) -> tuple[str, str]:
    """The sample interviewer trained twice (no learned models: the rules answer), the second time with a
    prohibited document that lists a topic of their own lines."""
    from tests.conftest import train_sample

    plain, guarded = (f"t-{uuid.uuid4().hex[:8]}" for _ in range(2))
    options = {"learned": False, "classifier": False, "fine_tune_file": False}
    train_sample(cfg, plain, **options)
    train_sample(cfg, guarded, docs=[PersonaDoc("prohibited", "infra", "Redis; union membership")], **options)
    return plain, guarded


def test_the_documents_topics_are_never_said(cfg, weaviate_client, tenants, dana):
    from processors.twin.engine import TwinEngine

    plain, guarded = tenants
    engine = TwinEngine.from_settings(cfg, weaviate_client=weaviate_client)
    try:
        assert engine.profiles.active(guarded, "dana").config["prohibitedTopics"] == ["Redis", "union membership"]
        session = next(s for s in dana if s.session_id == "dana-003")
        asked = 0
        for i, turn in enumerate(session.turns):
            if turn.role != "candidate":
                continue
            history = [{"role": t.role, "text": t.text} for t in session.turns[:i]]
            replies = [engine.respond(tenant=t, interviewer_id="dana", session_id="s-prohibited", history=history,
                                      candidate_turn=turn.text, use_llm=False).text for t in (plain, guarded)]
            asked += "redis" in replies[0].lower()
            assert "redis" not in replies[1].lower(), replies
        assert asked >= 1  # without the document the twin does raise it here
    finally:
        engine.close()
