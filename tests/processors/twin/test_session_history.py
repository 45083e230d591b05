"""merge_history: the session's stored turns in front of a sent window (pure logic, no services).

The turns are a real session of the in-repo SCOTUS fixture (a justice questioning advocates); the
"stored" copy is what the capture pipeline keeps: texts PII-redacted, the twin's turns as "twin"
mapped to the interviewer, an oversized text dropped.
"""

from __future__ import annotations

import time

import pytest

from processors.twin.session_history import merge_history, window_start
from schemas.respond_limits import text_bytes

BIG = 1 << 20  # a budget nothing here reaches, unless a test is about the budget


@pytest.fixture(scope="module")
def session(scotus) -> list[dict[str, str]]:
    """A long real session as respond history turns (distinct consecutive texts)."""
    longest = max(scotus, key=lambda t: len(t.turns))
    turns = [{"role": t.role, "text": t.text} for t in longest.turns if t.text.strip()]
    assert len(turns) >= 60
    return turns


def _texts(turns):
    return [(t["role"], t["text"]) for t in turns]


def test_window_inside_the_full_transcript_gets_the_earlier_turns(session):
    # The store has the whole session up to now, and the candidate's current turn after the window.
    stored, window, candidate = session[:40], session[30:39], session[39]["text"]
    merged = merge_history(stored, window, candidate, BIG)
    assert _texts(merged.turns) == _texts(session[:39]), "stored turns before the window, then the window"
    assert (merged.sent, merged.stored, merged.from_store, merged.found) == (9, 40, 30, True)


def test_a_lagging_transcript_overlapping_the_window_start(session):
    stored, window = session[:25], session[20:50]
    merged = merge_history(stored, window, "", BIG)
    assert _texts(merged.turns) == _texts(session[:50]), "the overlap is not repeated"
    assert merged.found is True and merged.from_store == 20


def test_a_transcript_that_ends_before_the_window_goes_in_front(session):
    merged = merge_history(session[:15], session[15:30], "", BIG)
    assert _texts(merged.turns) == _texts(session[:30])
    assert merged.found is False and merged.from_store == 15


def test_nothing_stored_leaves_the_window_as_sent(session):
    merged = merge_history([], session[:10], "and so?", BIG)
    assert _texts(merged.turns) == _texts(session[:10]) and merged.from_store == 0 and merged.found is False


def test_the_window_wins_over_its_redacted_stored_copy(session):
    # PII in the live turns: the store has the redactor's placeholders where the client has the words.
    live = [dict(t) for t in session[:30]]
    live[3] = {"role": live[3]["role"], "text": "Thank you, Ms. Priya Raman. Write to priya.raman@example.com, please."}
    live[26] = {"role": live[26]["role"], "text": "Call John Smith on 415-555-0199 about it."}
    stored = [dict(t) for t in live]
    stored[3]["text"] = "Thank you, Ms. <PERSON>. Write to <EMAIL_ADDRESS>, please."
    stored[26]["text"] = "Call <PERSON> on <PHONE_NUMBER> about it."
    merged = merge_history(stored, live[20:], "", BIG)
    assert merged.found is True, "the redacted stored turn matches the raw one it came from"
    assert _texts(merged.turns) == _texts(stored[:20] + live[20:])
    assert merged.turns[3]["text"].startswith("Thank you, Ms. <PERSON>"), "earlier turns come from the store"
    assert merged.turns[26]["text"] == "Call John Smith on 415-555-0199 about it.", "the window's text wins"


def test_a_placeholder_never_matches_a_different_text(session):
    stored = [{"role": "candidate", "text": "Call <PERSON> on <PHONE_NUMBER> about it."}]
    window = [{"role": "candidate", "text": "Call John about it."}]
    assert window_start(stored, window) is None
    assert window_start(stored, [{"role": "interviewer", "text": "Call John on 415-555-0199 about it."}]) is None


def test_a_dropped_stored_text_stands_for_its_turn_and_is_not_merged(session):
    # The capture pipeline drops a text over its limit (stored as ""): alignment must not shift.
    stored = [dict(t) for t in session[:30]]
    stored[5]["text"] = ""
    stored[24]["text"] = ""
    merged = merge_history(stored, session[22:30], "", BIG)
    assert merged.found is True
    assert _texts(merged.turns) == _texts(session[:5] + session[6:30]), "the dropped turn carries nothing"


def test_repeated_short_turns_anchor_on_the_whole_window():
    go, right, why = ({"role": "interviewer", "text": "Go on."}, {"role": "candidate", "text": "Right."},
                      {"role": "interviewer", "text": "Why?"})
    stored = [go, right, go, right, why]
    assert window_start(stored, [go, right, why]) == 2
    assert len(merge_history(stored, [go, right, why], "", BIG).turns) == 5
    # A transcript that lags: the longest agreement wins over a later, shorter one.
    assert window_start([go, right, go], [go, right, go, right, why]) == 0


def test_roles_must_agree(session):
    stored = [{"role": "candidate", "text": "Yes."}, {"role": "interviewer", "text": "Go on."}]
    assert window_start(stored, [{"role": "interviewer", "text": "Yes."}]) is None
    assert window_start(stored, [{"role": "interviewer", "text": "  go ON. "}]) == 1, "spacing and case do not matter"


def test_no_window_uses_the_store_without_the_captured_candidate_turn(session):
    # The client sends only the candidate's turn; it was already streamed, in two parts.
    candidate = "I would say the cross is a memorial. It honours the dead of the war."
    stored = session[:12] + [{"role": "candidate", "text": "I would say the cross is a memorial."},
                             {"role": "candidate", "text": "It honours the dead of the war."}]
    merged = merge_history(stored, [], candidate, BIG)
    assert _texts(merged.turns) == _texts(session[:12]), "the candidate's turn is not also history"
    assert merged.found is None and merged.from_store == 12 and merged.sent == 0


def test_the_budget_keeps_the_most_recent_turns(session):
    stored, window, candidate = session[:60], session[50:60], "So what is the test?"
    budget = sum(text_bytes(t["text"]) for t in session[40:60]) + text_bytes(candidate)
    merged = merge_history(stored, window, candidate, budget)
    assert _texts(merged.turns) == _texts(session[40:60])
    assert merged.text_bytes <= budget and merged.from_store == 10
    one_less = merge_history(stored, window, candidate, budget - 1)
    assert _texts(one_less.turns) == _texts(session[41:60]), "a turn that does not fit whole is left out"


def test_utf8_bytes_not_characters_count():
    turns = [{"role": "candidate", "text": "é" * 10}, {"role": "interviewer", "text": "ok"}]
    assert len(merge_history(turns, [], "", 22).turns) == 2
    assert len(merge_history(turns, [], "", 21).turns) == 1, "é is two bytes"


def test_a_pathological_transcript_is_searched_in_bounded_time():
    same = [{"role": "candidate", "text": "Mm."}] * 20_000
    started = time.perf_counter()
    merged = merge_history(same, same[:3_000], "", BIG)
    assert time.perf_counter() - started < 5.0
    # Which of the identical starts is taken cannot be told from the texts; the window is kept whole.
    assert merged.found is True and merged.turns[-3_000:] == same[:3_000]
