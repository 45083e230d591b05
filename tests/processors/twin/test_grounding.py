"""Session grounding: who is addressed, what the session is about, and placeholders never spoken.

Hand-written sessions pin the rules; the SCOTUS fixture (``scotus``) checks them on real oral
arguments, where a justice addresses the advocate as "General X", "Mr. X" or "Ms. X".
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.twin.corpus import Transcript, Turn
from processors.twin.grounding import PLACEHOLDER_RE, SessionState, find_mentions, remove_placeholders

ANY_PLACEHOLDER = re.compile(r"<[A-Z_]+>")


def _turns(*pairs: tuple[str, str]) -> list[Turn]:
    return [Turn(role=role, text=text) for role, text in pairs]


TARIFF_CASE = _turns(
    ("candidate", "Mr. Chief Justice, and may it please the Court: IEEPA does not authorize tariffs. "
                  "The major questions doctrine forecloses the Government's reading of the statute."),
    ("interviewer", "Mr. Katyal, what do you do with the word regulate?"),
    ("candidate", "Justice Kagan, regulate importation does not mean tax it."),
    ("candidate", "Mr. Chief Justice, and may it please the Court: the President's tariffs rest on IEEPA's "
                  "text, and Chevron deference has nothing to do with it."),
    ("interviewer", "General Prelogar, how does Chevron deference bear on the emergency powers here?"),
    ("candidate", "It does not, Justice Kagan. The emergency powers are delegated in plain terms."),
    ("interviewer", "But Mr. Katyal says the major questions doctrine applies. Do you agree, General?"),
)
CANDIDATE = ("No, Your Honor. The major questions doctrine has no role in foreign affairs, "
             "because tariffs are regulation.")


@pytest.fixture(scope="module")
def tariff_state() -> SessionState:
    return SessionState.from_history(TARIFF_CASE, CANDIDATE)


# -- who is addressed ---------------------------------------------------------------------------

def test_addressee_is_the_latest_person_spoken_to_with_their_full_name(tariff_state):
    # The last address was a bare "General"; the session said "General Prelogar" before it.
    assert tariff_state.addressee == "General Prelogar"
    assert tariff_state.addressee_title == "General"
    assert tariff_state.addresses == ("General Prelogar", "Mr. Katyal")


def test_names_the_other_party_used_for_the_interviewer(tariff_state):
    assert set(tariff_state.interviewer_names) >= {"Justice Kagan", "Your Honor", "Mr. Chief Justice"}
    # A person talked about is one of the people, not the addressee.
    assert {"Mr. Katyal", "General Prelogar", "Justice Kagan"} <= set(tariff_state.people)


def test_a_new_advocate_starting_resets_the_addressee():
    turns = TARIFF_CASE[:3] + [Turn(role="candidate", text="Mr. Chief Justice, and may it please the Court: ...")]
    assert SessionState.from_history(turns[:3], "").addressee == "Mr. Katyal"
    assert SessionState.from_history(turns, "").addressee is None
    # The new turn itself can be the new advocate's opening.
    assert SessionState.from_history(turns[:3], "Mr. Chief Justice, and may it please the Court: x").addressee is None


def test_talking_about_someone_or_to_a_colleague_is_not_addressing_them():
    turns = _turns(
        ("interviewer", "Ms. Blatt, is that your position?"),
        ("candidate", "It is."),
        ("interviewer", "Justice Alito, I think, asked about this. And Mr. Clement says otherwise."),
    )
    state = SessionState.from_history(turns, "He is wrong.")
    assert state.addressee == "Ms. Blatt"
    mentions = {m.surface: m.vocative for m in find_mentions(turns[2].text)}
    assert mentions == {"Justice Alito": True, "Mr. Clement": False}


def test_first_names_greeted_or_self_introduced():
    greeted = _turns(("interviewer", "Hi Sarah, thanks for joining us today."), ("candidate", "Happy to be here."))
    assert SessionState.from_history(greeted, "").addressee == "Sarah"
    introduced = _turns(("interviewer", "Welcome! Tell me about yourself."))
    state = SessionState.from_history(introduced, "Hi, I'm Dana Reyes, and I lead the data platform team.")
    assert state.addressee == "Dana"
    assert state.self_names == ("Dana Reyes",)
    asked = _turns(("interviewer", "Today my guest is Ken Norton. Ken, what did you learn at Google?"))
    assert SessionState.from_history(asked, "").addressee == "Ken"
    # A capitalised word before a comma is usually not a name at all.
    plain = _turns(("interviewer", "Awesome, that makes sense. Google, Instacart and Uber all did it?"))
    assert SessionState.from_history(plain, "").addressee is None
    company = _turns(("interviewer", "You worked at Uber and Lyft. So Lyft, you were there super early?"))
    assert SessionState.from_history(company, "").addressee is None


def test_nobody_addressed():
    state = SessionState.from_history(_turns(("interviewer", "What brings you here?")), "A new job.")
    assert state.addressee is None and state.address_for("General") is None


# -- what the session is about --------------------------------------------------------------------

def test_key_terms_open_question_and_claim(tariff_state):
    terms = {t.text: t for t in tariff_state.key_terms}
    # A name ends where its capitals end ("Chevron deference" -> "Chevron").
    assert "Chevron" in terms and terms["Chevron"].kind == "name"
    assert "emergency powers" in terms and terms["emergency powers"].kind == "phrase"
    # A possessive names the thing itself ("IEEPA's text" -> "IEEPA").
    assert {"IEEPA", "Government", "foreign affairs", "statute"} <= set(terms)
    # Not forms of address, nor a modifier always followed by its noun ("major questions").
    assert not {"Honor", "General", "major", "IEEPA's"} & set(terms)
    assert tariff_state.open_question == "Do you agree, General?"
    assert tariff_state.questions == (
        "Mr. Katyal, what do you do with the word regulate?",
        "General Prelogar, how does Chevron deference bear on the emergency powers here?",
        "Do you agree, General?",
    )
    assert tariff_state.claim == ("The major questions doctrine has no role in foreign affairs, "
                                  "because tariffs are regulation.")


def test_common_words_weigh_less():
    turns = _turns(("candidate", "Look at the statute and the tariffs. The statute is old; the tariffs are new."))
    plain = {t.text: t.weight for t in SessionState.from_history(turns, "").key_terms}
    damped = {t.text: t.weight for t in SessionState.from_history(turns, "", common={"statute": 0.9}).key_terms}
    assert damped["statute"] < plain["statute"] and damped["tariffs"] == plain["tariffs"]


def test_presence_checks(tariff_state):
    assert tariff_state.mentions("chevron deference") and not tariff_state.mentions("Lanham Act")
    assert tariff_state.uses_word("regulating") and tariff_state.uses_word("Tariff")
    assert not tariff_state.uses_word("trademark")


# -- placeholders -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("General <PERSON>, what do you make of Chevron?", "General Prelogar, what do you make of Chevron?"),
        ("Is that right, Mr. <PERSON>?", "Is that right, General Prelogar?"),
        ("Well, <PERSON>, how is that consistent?", "Well, General Prelogar, how is that consistent?"),
        ("I thought that was what <PERSON> said.", "I thought that was what they said."),
        ("<PERSON> says the statute is clear. Do you agree?", "They say the statute is clear. Do you agree?"),
        ("That is consistent with Justice <PERSON>'s question.", "That is consistent with their question."),
        ("I asked <PERSON> about it.", "I asked them about it."),
        ("Justice <PERSON> -- I want you to come back to that.", "I want you to come back to that."),
        ("<PERSON> and <PERSON> both argue it.", "They both argue it."),
        ("You lived in <LOCATION>? Send it to <EMAIL_ADDRESS> or <PHONE_NUMBER> by Monday.",
         "You lived there? Send it by Monday."),
        ("My number is <PHONE_NUMBER>. What is yours?", "What is yours?"),
        ("What is <US_SSN>?", "What is that?"),
        ("Hi <PERSON>, I am <PERSON> from <ORGANIZATION>.", "Hi General Prelogar."),
        ("<REDACTED>", ""),
        ("So, <PERSON_1> -- what is it?", "So, General Prelogar -- what is it?"),
        # A restart on the old title goes with the old name.
        ("Mr. -- Mr. <PERSON>, the strength of your rule?", "General Prelogar, the strength of your rule?"),
        ("Can I take you back to the Justice <PERSON> question?", "Can I take you back to the question?"),
    ],
)
def test_remove_placeholders(tariff_state, raw, expected):
    text, notes = remove_placeholders(raw, tariff_state)
    assert text == expected
    assert notes


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("General <PERSON>, what do you make of Chevron?", "What do you make of Chevron?"),
        ("Is that right, Mr. <PERSON>?", "Is that right?"),
        ("Well, <PERSON>, how is that consistent?", "Well, how is that consistent?"),
        ("I think the question, Mr. <PERSON>, is what the statute means.",
         "I think the question is what the statute means."),
        ("I'll just finish here, General <PERSON> -- I mean, yes.", "I'll just finish here -- I mean, yes."),
        ("Mr. <PERSON>?", ""),
    ],
)
def test_an_address_with_nobody_to_address_is_dropped_cleanly(raw, expected):
    state = SessionState.from_history(_turns(("interviewer", "What does the statute mean?")), "It means tariffs.")
    assert remove_placeholders(raw, state)[0] == expected


def test_a_title_held_by_one_person_finds_them_after_a_new_speaker():
    turns = TARIFF_CASE + [Turn(role="candidate", text="Mr. Chief Justice, and may it please the Court: rebuttal.")]
    state = SessionState.from_history(turns, "")
    assert state.addressee is None
    assert remove_placeholders("General <PERSON>, one question.", state)[0] == "General Prelogar, one question."
    # "Mr." is held by many: the last Mr. addressed may have sat down.
    assert remove_placeholders("Mr. <PERSON>, one question.", state)[0] == "One question."


def test_text_without_placeholders_is_untouched(tariff_state):
    assert remove_placeholders("What about <b>bold</b> and a < b > c?", tariff_state) == (
        "What about <b>bold</b> and a < b > c?", [])


_WORDS = ["what", "is", "the", "statute", "Mr.", "General", "Justice", "in", "at", "to", "and", "or", "says",
          "you", "I", "asked", "question", "'s", ",", ".", "?", "--", "Well", "Hi", "my", "number", "from"]
_PLACEHOLDERS = ["<PERSON>", "<PERSON_2>", "<LOCATION>", "<EMAIL_ADDRESS>", "<PHONE_NUMBER>", "<ORGANIZATION>",
                 "<DATE_TIME>", "<US_SSN>", "<REDACTED>", "<NRP>", "<IP_ADDRESS>"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tokens=st.lists(st.sampled_from(_WORDS + _PLACEHOLDERS * 2), min_size=1, max_size=24),
       addressed=st.booleans())
def test_no_placeholder_ever_survives(tariff_state, tokens, addressed):
    state = tariff_state if addressed else SessionState()
    text, _ = remove_placeholders(" ".join(tokens), state)
    assert not ANY_PLACEHOLDER.search(text)
    assert not PLACEHOLDER_RE.search(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.sampled_from(list("<>APERSONLCTI_ ,.?'-ab12")), max_size=60))
def test_no_placeholder_survives_in_arbitrary_text(tariff_state, text):
    assert not ANY_PLACEHOLDER.search(remove_placeholders(text, tariff_state)[0])


# -- real oral arguments -------------------------------------------------------------------------

# A justice speaking to the advocate: "General X, ...", "..., Mr. X?", "Ms. X, ...".
_SPOKEN_TO = re.compile(r"(?:^|[,.?!-]\s+)((?:General|Mr\.|Ms\.|Mrs\.) [A-Z][A-Za-z'’-]+)\s*[,?.]")


def _addressed_moments(transcripts: list[Transcript]):
    """(session, turn index, name) for each justice turn addressing the advocate by title and name."""
    for t in transcripts:
        for i, turn in enumerate(t.turns):
            found = _SPOKEN_TO.findall(turn.text) if turn.role == "interviewer" else []
            if found:
                yield t, i, found[-1]


def test_the_addressed_advocate_is_found_in_real_sessions(scotus):
    checked = 0
    for t, i, name in _addressed_moments(scotus):
        after = t.turns[i + 1].text if i + 1 < len(t.turns) and t.turns[i + 1].role == "candidate" else ""
        if "may it please" in after.lower():
            continue  # the next advocate starts: nobody is addressed yet
        state = SessionState.from_history(t.turns[: i + 1], after)
        assert state.addressee == name, (t.session_id, i, t.turns[i].text[:200])
        checked += 1
    assert checked >= 50  # 67 such moments in the fixture


def test_the_addressee_holds_until_the_next_advocate(scotus):
    held = 0
    for t, i, name in _addressed_moments(scotus):
        later = t.turns[i + 1 : i + 5]
        if any(turn.role == "interviewer" and _SPOKEN_TO.search(turn.text) for turn in later):
            continue
        if any("may it please" in turn.text.lower() for turn in later):
            continue
        assert SessionState.from_history(t.turns[: i + 1 + len(later)], "").addressee == name
        held += 1
    assert held >= 20


def test_redacted_lines_of_one_case_address_the_advocate_of_another(scotus):
    """A justice's line as training data stores it ("Mr. <PERSON>?") speaks to this case's advocate."""
    moments = list(_addressed_moments(scotus))
    t, i, name = moments[0]
    state = SessionState.from_history(t.turns[: i + 1], "")
    assert state.addressee == name
    others = [m for m in moments if m[0].session_id != t.session_id][:30]
    for other, j, other_name in others:
        redacted = other.turns[j].text.replace(other_name.split(" ", 1)[1], "<PERSON>")
        text, _ = remove_placeholders(redacted, state)
        assert not ANY_PLACEHOLDER.search(text)
        assert name in text, (redacted, text)
        assert other_name.split(" ", 1)[1] not in text


def test_every_real_state_builds_and_its_terms_come_from_the_session(scotus):
    for t in scotus:
        state = SessionState.from_history(t.turns[:-1], t.turns[-1].text)
        assert state.key_terms, t.session_id
        for term in state.key_terms:
            assert state.mentions(term.text), (t.session_id, term.text)
