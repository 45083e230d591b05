"""Editing a past line of the interviewer into the current session.

Hand-written cases pin each rule (addressee, people talked about, case terms, articles,
placeholders); the SCOTUS fixture (``scotus``) moves real lines of one argument into another:
the line must speak to the new case's advocate and name none of the old case's parties.
"""

from __future__ import annotations

import re

import pytest

from processors.twin import offline_generator
from processors.twin.corpus import Transcript, Turn, exchanges
from processors.twin.editing import (
    MAX_SWAPS,
    EditedLine,
    common_names,
    context_turns,
    edit_exemplar,
    is_name,
    mid_sentence_names,
    referenced_spans,
    replace_phrase,
)
from processors.twin.grounding import SessionState
from processors.twin.offline_generator import Exemplar, format_context

ANY_PLACEHOLDER = re.compile(r"<[A-Z_]+>")


def _turns(*pairs: tuple[str, str]) -> list[Turn]:
    return [Turn(role=role, text=text) for role, text in pairs]


# The current session: the Solicitor General on tariffs, a state court, a patent license.
CURRENT = _turns(
    ("candidate", "Mr. Chief Justice, and may it please the Court: the state court has jurisdiction over "
                  "the tariff claims."),
    ("interviewer", "General Prelogar, why does the state court get to decide this?"),
    ("candidate", "Because the state court is where the importers sued, and the patent license says so."),
)
CURRENT_TURN = "The patent license controls, and the state court applied it."

# The exemplar's session: Mr. Clement on a tribal court and an implied license; Ms. Spinelli argued too.
EX_CONTEXT = format_context(_turns(
    ("interviewer", "Mr. Clement, what about the tribal court?"),
    ("candidate", "The tribal court lacks jurisdiction over nonmembers, and the implied license ends with "
                  "rejection. Ms. Spinelli agrees."),
))
EX_TURN = "The tribal court is the wrong forum. An implied license is not a trademark license."


@pytest.fixture(scope="module")
def state() -> SessionState:
    return SessionState.from_history(CURRENT, CURRENT_TURN)


def _edit(reply: str, state: SessionState, embedder=None) -> EditedLine:
    return edit_exemplar(reply, EX_CONTEXT, EX_TURN, state, embedder=embedder)


# -- the addressee and the people -----------------------------------------------------------------

def test_the_address_becomes_this_sessions_addressee(state):
    edited = _edit("Mr. Clement, why isn't the tribal court the right forum?", state)
    assert edited.text == "General Prelogar, why isn't the state court the right forum?"
    assert edited.swaps == [("Mr. Clement", "General Prelogar"), ("tribal court", "state court")]
    assert edited.notes


def test_without_an_addressee_the_address_is_dropped():
    nobody = SessionState.from_history(CURRENT[:1], "")
    assert nobody.addressee is None
    assert _edit("Is that right, Mr. Clement?", nobody).text == "Is that right?"
    assert _edit("Mr. Clement?", nobody).text == ""


def test_people_of_the_other_session_are_not_named(state):
    edited = _edit("Ms. Spinelli says the tribal court decides. Do you agree?", state)
    assert edited.text == "They say the state court decides. Do you agree?"
    assert "Spinelli" not in edited.text


def test_people_of_this_session_and_generic_addresses_stay():
    here = SessionState.from_history(CURRENT + _turns(("interviewer", "Justice Alito asked about the forum.")), "")
    assert _edit("As Justice Alito asked, Counsel, why?", here).text == "As Justice Alito asked, Counsel, why?"
    # A colleague talked about belongs to every argument's bench, named here or not.
    assert _edit("Justice Scalia once asked that, Counsel.", here).text == "Justice Scalia once asked that, Counsel."
    # A colleague spoken to in the other session is no one to speak to here.
    assert _edit("Justice Breyer -- I want you to come back to that.", here).text == (
        "I want you to come back to that.")


# -- case terms ---------------------------------------------------------------------------------

def test_a_case_term_is_swapped_for_its_counterpart_with_the_article_fixed(state):
    edited = _edit("Is that an implied license, Mr. Clement?", state)
    assert edited.text == "Is that a patent license, General Prelogar?"
    assert ("implied license", "patent license") in edited.swaps


def test_generic_words_and_shared_terms_are_never_swapped(state):
    for line in ("What is the situation here, General Prelogar?", "What does the state court think about it?",
                 "Isn't that the problem with your argument?"):
        edited = _edit(line, state)
        assert edited.text == line and edited.swaps == []


def test_no_counterpart_no_swap(state):
    # "nonmembers" is the other case's, but nothing here shares a word with it.
    edited = _edit("What about the nonmembers, General Prelogar?", state)
    assert edited.text == "What about the nonmembers, General Prelogar?" and edited.swaps == []


def test_at_most_a_few_swaps(state):
    edited = _edit("The tribal court, the implied license, the wrong forum, and the trademark license?", state)
    assert len([s for s in edited.swaps if s[0] != "Mr. Clement"]) <= MAX_SWAPS


def test_the_embedder_finds_a_counterpart_without_shared_words(embedder):
    cur = SessionState.from_history(_turns(
        ("interviewer", "Officer Diaz searched the car, General Prelogar?"),
        ("candidate", "Yes. The car was parked on the street and the car was unlocked."),
    ), "The search of the car needed no warrant.")
    ctx = format_context(_turns(("candidate", "The automobile was on the highway. The automobile was searched.")))
    reply = "Why does the automobile matter?"
    assert edit_exemplar(reply, ctx, "The automobile exception applies.", cur).text == reply
    edited = edit_exemplar(reply, ctx, "The automobile exception applies.", cur, embedder=embedder)
    assert edited.text == "Why does the car matter?"
    assert edited.swaps == [("automobile", "car")]


# -- names of the other session left in ------------------------------------------------------------

def test_names_editing_cannot_place_are_reported_unless_every_session_hears_them(state):
    ctx = format_context(_turns(("candidate", "Kontrick says the rule is mandatory, and Congress agreed.")))
    line = "But the Court said in the Kontrick line of cases that Congress meant it?"
    assert edit_exemplar(line, ctx, "The rule is mandatory.", state).leftovers == ["Kontrick", "Congress"]
    assert edit_exemplar(line, ctx, "The rule is mandatory.", state, common={"Congress"}).leftovers == ["Kontrick"]
    # The session's "white" is a colour, not the other case's party White.
    race = SessionState.from_history(CURRENT, "Would a white juror see it the same way?")
    ctx = format_context(_turns(("candidate", "White was charged with animus.")))
    assert edit_exemplar("What animus is White charged with?", ctx, "White was charged.", race).leftovers == ["White"]
    # A session without capitals (uncased speech recognition) says its names in lower case.
    uncased = SessionState.from_history(_turns(("candidate", "mr white was charged with animus.")), "he was.")
    assert not uncased.cased
    assert edit_exemplar("What animus is White charged with?", ctx, "White was charged.", uncased).leftovers == []
    elsewhere = SessionState.from_history(_turns(("candidate", "the charge was animus.")), "it was.")
    assert edit_exemplar("What animus is White charged with?", ctx, "White was charged.", elsewhere).leftovers == [
        "White"]


def test_common_names_are_those_a_share_of_the_sessions_use():
    sessions = [["We asked Congress about it.", "And what did Congress say?"],  # counted once per session
                ["Does that bind Congress, and Kontrick?"], ["I doubt that Congress would."],
                *[["Nothing named here."]] * 7]
    assert mid_sentence_names("Is it the First Amendment, or what Bartlett did?") == ["First Amendment", "Bartlett"]
    assert common_names(sessions) == ["Congress"]  # 3 of 10 sessions; Kontrick 1
    assert common_names(sessions, share=0.35) == []  # at 0.35 a name needs 3.5 of 10
    assert common_names(sessions[:2]) == ["Congress"]  # and never fewer than two sessions
    assert common_names(sessions[:1]) == []


# -- placeholders ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "reply",
    [
        "General <PERSON>, what about <LOCATION>?",
        "<PERSON> said the tribal court decides; write to <EMAIL_ADDRESS>.",
        "Mr. <PERSON>?",
        "Is that right, <PERSON_1>, or does <ORGANIZATION> say otherwise on <DATE_TIME>?",
    ],
)
def test_placeholders_never_survive(state, reply):
    edited = _edit(reply, state)
    assert not ANY_PLACEHOLDER.search(edited.text)
    if reply.startswith(("General", "Mr.", "Is that")):
        assert "General Prelogar" in edited.text


# -- helpers shared with the offline generator ------------------------------------------------------

def test_phrase_helpers_have_one_copy():
    assert offline_generator._replace_phrase is replace_phrase
    assert offline_generator._referenced_spans is referenced_spans
    assert offline_generator._is_name is is_name


def test_replace_phrase_respects_names_and_articles():
    assert replace_phrase("I read the New York Times.", "York", "Boston") == ("I read the New York Times.", 0)
    # A name across punctuation is another name.
    assert replace_phrase("Is it York, General?", "York", "Boston") == ("Is it Boston, General?", 1)
    assert replace_phrase("Is that a trademark?", "trademark", "implied license") == (
        "Is that an implied license?", 1)


def test_context_turns_reads_the_rendered_context():
    turns = context_turns("Interviewer: Why?\nCandidate: Because\nit rained.\nnoise before a label")
    assert [(t.role, t.text) for t in turns] == [("interviewer", "Why?"),
                                                 ("candidate", "Because it rained. noise before a label")]


# -- real oral arguments ------------------------------------------------------------------------

_TITLED = re.compile(r"\b(?:Mr\.|Ms\.|Mrs\.|General) ([A-Z][A-Za-z'’-]+)")
_SPOKEN_TO = re.compile(r"(?:^|[,.?!-]\s+)((?:General|Mr\.|Ms\.|Mrs\.) [A-Z][A-Za-z'’-]+)\s*[,?.]")


def _state_addressing(t: Transcript) -> tuple[SessionState, str] | None:
    """The session's state right after the justice first addresses an advocate by name."""
    for i, turn in enumerate(t.turns):
        found = _SPOKEN_TO.findall(turn.text) if turn.role == "interviewer" else []
        if found:
            return SessionState.from_history(t.turns[: i + 1], ""), found[-1]
    return None


def _addressing_lines(t: Transcript) -> list[Exemplar]:
    return [Exemplar.from_exchange(ex) for ex in exchanges(t) if _SPOKEN_TO.search(ex.interviewer_reply.text)]


def _redact(text: str) -> str:
    """What PII redaction leaves of a titled name ("Mr. <PERSON>")."""
    return _TITLED.sub(lambda m: m.group(0).replace(m.group(1), "<PERSON>"), text)


def test_lines_of_one_argument_edited_into_another(scotus):
    """Every addressing line of argument A, edited into argument B, speaks to B's advocate and names no party of A."""
    edited_lines = 0
    for a, b in zip(scotus, scotus[1:] + scotus[:1]):
        target = _state_addressing(b)
        if target is None:
            continue
        state, addressee = target
        assert state.addressee == addressee
        here = " ".join(turn.text for turn in b.turns)
        parties = {name for name in _TITLED.findall(" ".join(turn.text for turn in a.turns)) if name not in here}
        for ex in _addressing_lines(a)[:6]:
            edited = edit_exemplar(ex.reply, ex.context, ex.candidate_turn, state)
            assert addressee in edited.text, (ex.reply, edited.text)
            assert not [p for p in parties if re.search(rf"\b{re.escape(p)}\b", edited.text)], (ex.reply, edited.text)
            assert not ANY_PLACEHOLDER.search(edited.text)
            edited_lines += 1
    assert edited_lines >= 60


def test_redacted_lines_of_one_argument_edited_into_another(scotus):
    """The same with lines as training data stores them: "Mr. <PERSON>, ..."."""
    edited_lines = 0
    for a, b in zip(scotus, scotus[2:] + scotus[:2]):
        target = _state_addressing(b)
        if target is None:
            continue
        state, addressee = target
        for ex in _addressing_lines(a)[:4]:
            edited = edit_exemplar(_redact(ex.reply), _redact(ex.context), _redact(ex.candidate_turn), state)
            assert not ANY_PLACEHOLDER.search(edited.text), edited.text
            assert addressee in edited.text, (ex.reply, edited.text)
            edited_lines += 1
    assert edited_lines >= 40


def test_real_lines_with_the_embedder_keep_their_grammar(scotus, embedder):
    """With the embedder, real lines still get the new addressee, few swaps, and no placeholders."""
    a, b = scotus[0], scotus[5]
    state, addressee = _state_addressing(b)
    for ex in _addressing_lines(a)[:8]:
        edited = edit_exemplar(_redact(ex.reply), ex.context, ex.candidate_turn, state, embedder=embedder)
        assert addressee in edited.text
        assert len(edited.swaps) <= MAX_SWAPS + ex.reply.count("Mr.") + ex.reply.count("Ms.") + 2
        assert not ANY_PLACEHOLDER.search(edited.text)
