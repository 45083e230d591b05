import json
import math
import random

import numpy as np
import pytest

from processors.twin.corpus import InterviewerTurn, interviewer_turns
from processors.twin.style import FEATURES, StyleProfile, StyleVector, extract_style, style_similarity

BLUNT_CHALLENGE = "That's wrong. How do you square that with the statute? Doesn't that contradict your own brief?"
WARM_HINT = "Great start! Maybe consider what happens when the cache is cold. What if you try adding a TTL?"


# Each row: the first text must score higher than the second on `feature`.
@pytest.mark.parametrize(
    ("feature", "higher", "lower", "previous_candidate_text"),
    [
        ("challenge", BLUNT_CHALLENGE, WARM_HINT, None),
        ("challenge", "But isn't it true that the rule applies anyway?", "Tell me about your last project.", None),
        ("coaching", WARM_HINT, BLUNT_CHALLENGE, None),
        ("coaching", "Have you considered starting with the simplest case?", "Why did you choose Kafka?", None),
        ("warmth", "Thank you, that's a wonderful answer, I love that example.", "That's wrong and it makes no sense.", None),
        ("warmth", WARM_HINT, BLUNT_CHALLENGE, None),
        ("verbosity", "So walk me through, step by step, how the deploy pipeline works from the commit to production, "
                      "including the tests you run, who approves it and how you roll it back when it fails.", "Why?", None),
        ("questionForm", "Why did you pick Postgres?", "I see. That makes sense.", None),
        # An interrupted question without "?" still counts for something, a statement for nothing.
        ("questionForm", "What is vague about it --", "It is vague.", None),
        ("followUp", "You said the onboarding flow was slow. Why was the onboarding flow slow?",
                     "What is your favourite book?", "The onboarding flow was slow for new teams."),
        # Without the candidate's text, the "you said" cue alone still marks a follow-up.
        ("followUp", "You mentioned that earlier, what do you mean by it?", "What is your favourite book?", None),
        ("directness", "Why did you choose Kafka?",
                       "I was wondering, if you don't mind, maybe you could perhaps say a little bit about queues, I guess.", None),
    ],
)
def test_feature_orders_contrasting_turns(feature, higher, lower, previous_candidate_text):
    a = extract_style(higher, previous_candidate_text).to_dict()
    b = extract_style(lower, previous_candidate_text).to_dict()
    assert a[feature] > b[feature], (feature, a, b)


def test_features_stay_in_unit_interval_on_real_turns(scotus, dana):
    rng = random.Random(0)
    turns = interviewer_turns(scotus) + interviewer_turns(dana)
    assert len(turns) > 400
    for t in rng.sample(turns, 400):
        vec = extract_style(t.text, t.previous_candidate_text)
        arr = vec.as_array()
        assert arr.dtype == np.float32 and arr.shape == (len(FEATURES),)
        assert np.all((arr >= 0) & (arr <= 1)), (t.text, vec)
        assert vec.word_count > 0


def test_empty_text_gives_zero_vector():
    vec = extract_style("   ")
    assert vec.word_count == 0 and not vec.as_array().any()


def test_verbosity_grows_with_length_and_saturates():
    lengths = [1, 5, 20, 80, 200, 400]
    scores = [extract_style(" ".join(["word"] * n)).verbosity for n in lengths]
    assert scores == sorted(scores) and scores[0] < scores[2] < scores[4]
    assert scores[-1] == 1.0


def test_style_similarity_is_symmetric_and_peaks_on_identity():
    a, b = extract_style(BLUNT_CHALLENGE), extract_style(WARM_HINT)
    c = extract_style("That's not right. How do you square that with the text? Isn't that inconsistent?")
    assert style_similarity(a, a) == pytest.approx(1.0)
    assert style_similarity(a, b) == pytest.approx(style_similarity(b, a))
    assert 0.0 <= style_similarity(a, b) < style_similarity(a, c) <= 1.0


def test_style_vector_serialises_camel_case():
    d = extract_style("Why?", "We used Kafka.").to_dict()
    assert set(d) == set(FEATURES) | {"wordCount"}
    assert StyleVector.model_validate(d) == extract_style("Why?", "We used Kafka.")


def _synthetic_turns() -> list[InterviewerTurn]:
    turns = []
    for i in range(12):
        turns.append(InterviewerTurn(f"Well, what about the cache number {i}? Is that right?", "We cache it.", None, "s1", i))
        turns.append(InterviewerTurn("Okay. Tell me about the queue.", None, None, "s1", 100 + i))
    return turns


def test_profile_learns_habits_from_turns():
    profile = StyleProfile.fit(_synthetic_turns(), interviewer_id="synthetic")
    assert profile.n_turns == 24
    assert profile.lead_ins[0].text in ("Well,", "Okay.")
    assert {p.text for p in profile.lead_ins} == {"Well,", "Okay."}
    assert profile.lead_in_rate == pytest.approx(1.0)
    assert any(p.text == "is that right?" for p in profile.closings)
    assert any(p.text == "what about the {x}" for p in profile.question_templates)
    counts = [len(t.text.split()) for t in _synthetic_turns()]
    assert profile.word_count["p50"] == pytest.approx(np.percentile(counts, 50))
    assert profile.question_rate == pytest.approx(0.5)


def test_profile_round_trips_through_json():
    profile = StyleProfile.fit(_synthetic_turns(), interviewer_id="synthetic")
    data = json.loads(json.dumps(profile.to_dict()))
    assert "questionTemplates" in data and "leadInRate" in data
    assert StyleProfile.from_dict(data) == profile


def test_fit_score_prefers_typical_turns():
    profile = StyleProfile.fit(_synthetic_turns())
    typical = extract_style("Well, what about the cache number 99? Is that right?", "We cache it.")
    odd = extract_style(BLUNT_CHALLENGE + " " + WARM_HINT * 5)
    assert profile.fit_score(typical) > profile.fit_score(odd)


def test_profiles_of_two_justices_differ_measurably(scotus):
    def turns_of(iid, sessions=None):
        chosen = [t for t in scotus if t.interviewer_id == iid]
        return interviewer_turns(chosen if sessions is None else sessions(chosen))

    scalia = StyleProfile.fit(turns_of("antonin_scalia"))
    kagan = StyleProfile.fit(turns_of("elena_kagan"))
    # Baseline: Scalia against himself (odd vs even sessions) shows sampling noise only.
    scalia_odd = StyleProfile.fit(turns_of("antonin_scalia", lambda s: s[1::2]))
    scalia_even = StyleProfile.fit(turns_of("antonin_scalia", lambda s: s[0::2]))
    between = scalia.distance(kagan)
    within = scalia_odd.distance(scalia_even)
    assert between > 3 * within, (between, within)  # 3.4x on this fixture, 4.7x on the full dev sets

    # At least one feature mean differs by far more than its standard error. z grows with the square
    # root of the turns: above 11 on the full SCOTUS dev sets (80 sessions each), 5.1 (challenge) on this
    # fixture's 14 + 24 sessions (~670 turns), hence 4.5 here: still p < 1e-5 for one feature.
    def z(name):
        a, b = scalia.features[name], kagan.features[name]
        se = math.sqrt(a.std**2 / scalia.n_turns + b.std**2 / kagan.n_turns)
        return abs(a.mean - b.mean) / se

    assert max(z(name) for name in FEATURES) > 4.5
