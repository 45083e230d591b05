"""Fact lookup grounds the reply: a question the interviewer's own notes answer is answered from them, on the
real engine, Weaviate and MiniLM; a question they do not answer, and the notes training writes about the
interviewer's habits, leave the reply alone."""

import uuid

import pytest

from processors.twin.memory import PersonaDoc
from processors.twin.tools.facts import DERIVED_NOTE_KEYS, FACT_MIN_SIMILARITY, answer_from_notes, asked_question

LIMITS = ("The rate limiter allows 100 requests per minute for each API key. "
          "Assume the service runs in three regions and Redis is the shared store.")
DATA = "The dataset is about two terabytes and grows by ten gigabytes a day."
NOTES = [PersonaDoc("note", "limits", LIMITS), PersonaDoc("note", "data", DATA)]
HISTORY = [{"role": "interviewer", "text": "Let's design a rate limiter for our public API."}]


def test_the_question_asked_is_the_last_sentence_that_asks():
    assert asked_question("I'd start with a token bucket. Is the limit per API key or global?") == \
        "Is the limit per API key or global?"
    assert asked_question("Can you clarify the limits for me.") == "Can you clarify the limits for me."
    assert asked_question("Right?") is None  # a tag asks nothing on its own
    assert asked_question("I would shard by user id.") is None


@pytest.mark.parametrize(("question", "answer"), [
    ("Is the limit per API key or global?", "The rate limiter allows 100 requests per minute for each API key."),
    ("Should I assume a single region?", "Assume the service runs in three regions and Redis is the shared store."),
    ("How big is the dataset?", DATA),
    ("Do you want me to write tests too?", None),
    ("What do you mean by fair?", None),
    ("Is it okay if I take a minute to think?", None),
])
def test_a_note_answers_only_what_it_is_about(embedder, question, answer):
    found = answer_from_notes(question, [("limits", LIMITS), ("data", DATA)], embedder)
    assert (found.text if found else None) == answer
    if found:
        assert found.similarity >= FACT_MIN_SIMILARITY


def test_the_notes_training_derives_are_the_ones_never_said(dana):
    from processors.twin.corpus import interviewer_turns
    from processors.twin.policy import PolicyStats
    from processors.twin.style import StyleProfile
    from processors.twin.training import derive_persona_docs

    docs = derive_persona_docs(StyleProfile.fit(interviewer_turns(dana), interviewer_id="dana"),
                               PolicyStats.fit(dana, interviewer_id="dana"))
    assert {d.key for d in docs if d.kind == "note"} == DERIVED_NOTE_KEYS


@pytest.fixture(scope="module")
def noted_tenant(cfg, postgres_dsn, weaviate_client) -> str:
    """The sample interviewer trained with notes of its own (no learned models: the rules answer)."""
    from tests.conftest import train_sample

    tenant = f"t-{uuid.uuid4().hex[:8]}"
    train_sample(cfg, tenant, docs=NOTES, learned=False, classifier=False, fine_tune_file=False)
    return tenant


@pytest.fixture
def engine(cfg, weaviate_client):
    from processors.twin.engine import TwinEngine

    engine = TwinEngine.from_settings(cfg, weaviate_client=weaviate_client)
    yield engine
    engine.close()


def _respond(engine, tenant, question):
    return engine.respond(tenant=tenant, interviewer_id="dana", session_id=f"s-{uuid.uuid4().hex[:6]}",
                          history=HISTORY, candidate_turn=question, use_llm=False)


def test_a_question_the_notes_answer_is_answered_from_them_first(engine, noted_tenant):
    reply = _respond(engine, noted_tenant, "I'd use a token bucket per client. Is the limit per API key or global?")
    lookup = next(c for c in reply.function_calls if c.name == "fact_lookup")
    assert lookup.args["result"]["answer"]["note"] == "limits"
    assert reply.text.startswith("The rate limiter allows 100 requests per minute for each API key. ")
    assert len(reply.text) > len("The rate limiter allows 100 requests per minute for each API key. ")
    assert next(s for s in reply.steps if s.name == "generate").detail["fact"] == "limits"


def test_a_question_the_notes_do_not_answer_gets_no_note(engine, noted_tenant):
    for question in ("Should I draw the architecture first?", "What kind of questions do you usually ask people?"):
        reply = _respond(engine, noted_tenant, question)
        lookup = next(c for c in reply.function_calls if c.name == "fact_lookup")
        assert "answer" not in lookup.args["result"]
        assert "fact" not in next(s for s in reply.steps if s.name == "generate").detail
        assert not any(s in reply.text for s in ("rate limiter", "terabytes", "Typical question frames"))


def test_an_interviewer_without_notes_of_its_own_answers_from_none(engine, sample_tenant):
    reply = _respond(engine, sample_tenant, "What kind of questions do you usually ask people?")
    lookup = next(c for c in reply.function_calls if c.name == "fact_lookup")
    assert lookup.args["result"]["facts"]  # the derived notes are found, as before
    assert "answer" not in lookup.args["result"]
