"""Each evaluation metric on hand-made cases, so that a metric that cannot fail would show up here.

Real lines come from the shared SCOTUS and Lenny dev sets (read from ../shared/corpora, never copied).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import pytest

from processors.twin.evaluation import metrics as M
from processors.twin.evaluation.redteam import RED_TEAM_CASES, run_red_team

PARAPHRASES = [
    ("What was the hardest part of scaling the payments service?",
     "Which part of scaling the payment system was the most difficult?"),
    ("Can you walk me through how you tested that change?",
     "How did you go about testing that change, step by step?"),
    ("Why did you choose Postgres over a document store?",
     "What made you pick PostgreSQL instead of a document database?"),
    ("How did the team react when the launch slipped by a month?",
     "When the launch was delayed by a month, how did your team respond?"),
]
UNRELATED = [
    ("What was the hardest part of scaling the payments service?", "Thank you, counsel. The case is submitted."),
    ("Can you walk me through how you tested that change?", "What's a book you've recommended most to other people?"),
    ("Why did you choose Postgres over a document store?", "Is the statute of limitations tolled during the appeal?"),
    ("How did the team react when the launch slipped by a month?", "Where can folks find you online?"),
]
CHALLENGING = ["But that's absurd, isn't it? How can you possibly say the statute means that?",
               "No, no. Surely that can't be right. Why would Congress write it that way?",
               "Well, isn't that exactly the problem? You're saying the agency can do whatever it likes?"]
WARM = ["Awesome, I love that. What a great story, thank you so much for sharing it.",
        "That's so cool. I really appreciate you being so open about that, it's super helpful.",
        "Amazing. Thank you for being here, this has been such a fun conversation."]


def _lines(transcripts, interviewer_id, n, seed=0):
    lines = [(t.session_id, turn.text) for t in transcripts if t.interviewer_id == interviewer_id
             for turn in t.turns if turn.role == "interviewer" and len(turn.text.split()) >= 6]
    return random.Random(seed).sample(lines, n)


@pytest.fixture(scope="module")
def kagan(scotus):
    return _lines(scotus, "elena_kagan", 80)


@pytest.fixture(scope="module")
def lenny_lines(lenny):
    return [t for _, t in _lines(lenny, "lenny_rachitsky", 40)]


@pytest.fixture(scope="module")
def scorer(embedder, kagan, lenny_lines):
    refs = [t for _, t in kagan] + lenny_lines
    groups = [s for s, _ in kagan] + [f"lenny{i}" for i in range(len(lenny_lines))]
    return M.PairScorer.fit(embedder, refs, groups, n_pairs=80, seed=1)


# --------------------------------------------------------------------------- semantic
def test_identical_replies_score_one_on_every_similarity(scorer):
    texts = [a for a, _ in PARAPHRASES]
    s = scorer.score(texts, texts)
    for key in ("bertscore", "cosine", "style", "combined"):
        assert s[key] == pytest.approx(np.ones(len(texts)), abs=1e-4), key
    assert s["bertscore_raw"] == pytest.approx(np.ones(len(texts)), abs=1e-4)


def test_paraphrases_beat_unrelated_lines_and_unrelated_rescales_near_zero(scorer):
    para = scorer.score([b for _, b in PARAPHRASES], [a for a, _ in PARAPHRASES])
    unrel = scorer.score([b for _, b in UNRELATED], [a for a, _ in UNRELATED])
    assert (para["bertscore"] > unrel["bertscore"]).all()
    assert (para["cosine"] > unrel["cosine"]).all()
    assert para["bertscore"].mean() > 0.3 and para["cosine"].mean() > 0.5
    # Rescaling against random pairs of real lines puts unrelated turns near 0, not near the raw ~0.2.
    assert abs(unrel["bertscore"].mean()) < 0.25 and abs(unrel["cosine"].mean()) < 0.25
    assert unrel["bertscore_raw"].mean() < para["bertscore_raw"].mean()


def test_baselines_come_from_random_pairs_of_real_lines(scorer):
    assert 0.05 < scorer.baselines.bertscore < 0.6
    assert 0.0 < scorer.baselines.cosine < 0.5
    assert scorer.baselines.pairs == 80


def test_idf_weights_rare_word_pieces_more_than_common_ones(embedder):
    table = M.idf_table(["the court held that", "the agency said", "the statute of limitations"],
                        embedder.model.tokenizer)
    assert table.weights(["limitations"])[0] > table.weights(["the"])[0]
    assert table.weights(["neverseen"])[0] == pytest.approx(table.default)


def test_empty_reply_scores_zero_not_an_error(scorer):
    s = scorer.score(["", "Why?"], ["Why is that?", ""])
    assert s["bertscore_raw"].tolist() == [0.0, 0.0] and s["cosine_raw"].tolist() == [0.0, 0.0]


# --------------------------------------------------------------------------- style
def test_style_agreement_is_high_within_a_style_and_lower_across_interviewers():
    same = M.style_agreement(CHALLENGING[:2], CHALLENGING[1:]).mean()
    warm = M.style_agreement(WARM[:2], WARM[1:]).mean()
    across = M.style_agreement(CHALLENGING, WARM).mean()
    assert same > across + 0.1 and warm > across + 0.1
    assert M.style_agreement(["Why?"], ["Why?"])[0] == 1.0


@dataclass
class _KeywordClassifier:
    """A stand-in for the style classifier: 'counsel' lines are the interviewer's; 'love' lines are warm."""

    def predict_interviewer(self, texts):
        return np.array([0.9 if "counsel" in t.lower() else 0.1 for t in texts])

    def predict_style(self, texts):
        return [{"warmth": 0.9 if "love" in t.lower() else 0.1, "questionForm": 1.0 if "?" in t else 0.0}
                for t in texts]


def test_classifier_agreement_checks_attribution_and_style_labels():
    clf = _KeywordClassifier()
    real = ["Counsel, why is that?", "Counsel, why is that?"]
    twin = ["Counsel, how so?", "I love that story."]
    out = M.classifier_agreement(clf, twin, real)
    assert out["attributed"].tolist() == [1.0, 0.0]
    assert out["real_attributed"].tolist() == [1.0, 1.0]
    # Same decision and all 7 labels equal -> 1; different decision, warmth and question labels differ -> 5/7 / 2.
    assert out["agreement"][0] == pytest.approx(1.0)
    assert out["agreement"][1] == pytest.approx(0.5 * 5 / 7)


# --------------------------------------------------------------------------- match rate
def test_match_rate_counts_beaten_distractors_and_ties_half():
    rates = M.match_rates(np.array([0.9, 0.5, 0.1, 0.4]),
                          [np.array([0.1, 0.2]), np.array([0.5, 0.5]), np.array([0.2, 0.3]), np.array([])])
    assert rates[:3].tolist() == [1.0, 0.5, 0.0] and np.isnan(rates[3])


def _match(scorer, kagan, replies, n_distractors=15, seed=3):
    """Mean match rate of `replies` against Kagan's real lines, distractors from her other sessions."""
    rng = random.Random(seed)
    reals = kagan[:25]
    system = scorer.score(replies, [t for _, t in reals])["combined"]
    dists = []
    for sid, real in reals:
        options = [t for s, t in kagan[50:] if s != sid]
        picks = rng.sample(options, n_distractors)
        dists.append(scorer.score(picks, [real] * len(picks))["combined"])
    return float(np.nanmean(M.match_rates(system, dists)))


def test_match_rate_is_one_for_a_copy_half_for_the_same_interviewer_and_low_for_another(scorer, kagan, lenny_lines):
    copy = _match(scorer, kagan, [t for _, t in kagan[:25]])
    same_person = _match(scorer, kagan, [t for _, t in kagan[25:50]])
    other_person = _match(scorer, kagan, lenny_lines[:25])
    generic = _match(scorer, kagan, ["Could you say more about that?"] * 25)
    assert copy > 0.97
    assert 0.3 < same_person < 0.7  # a random line of the right person is chance
    assert other_person < min(same_person, 0.45)  # wrong persona, wrong topic
    assert generic < 0.45


# --------------------------------------------------------------------------- discriminator
def test_discriminator_cannot_tell_a_copy_but_tells_a_generic_or_foreign_line(embedder, kagan, lenny_lines):
    reals = [t for _, t in kagan[:40]]
    cands = ["" for _ in reals]
    groups = [s for s, _ in kagan[:40]]
    real_x = M.reply_features(reals, cands, embedder)
    copy = M.indistinguishability(M.discriminator_auc(real_x, real_x.copy(), groups))
    generic = M.indistinguishability(M.discriminator_auc(
        real_x, M.reply_features(["Could you say more about that?"] * 40, cands, embedder), groups))
    foreign = M.indistinguishability(M.discriminator_auc(
        real_x, M.reply_features((lenny_lines * 2)[:40], cands, embedder), groups))
    assert copy == 1.0
    assert generic < 0.3
    assert foreign < 0.5


def test_indistinguishability_formula_is_capped():
    assert M.indistinguishability(0.5) == 1.0 and M.indistinguishability(1.0) == 0.0
    assert M.indistinguishability(0.3) == 1.0 and M.indistinguishability(0.75) == pytest.approx(0.5)
    assert M.indistinguishability(None) is None
    assert M.discriminator_auc(np.zeros((3, 2)), np.ones((3, 2)), ["a", "a", "a"]) is None  # one session only


# --------------------------------------------------------------------------- red team
@dataclass
class _Reply:
    text: str


class _EchoEngine:
    """A twin that repeats what the candidate asks for: the suite must catch it."""

    def respond(self, *, candidate_turn, **_):
        return _Reply(f"Sure. {candidate_turn} How old are you, and are you married?")


class _SafeEngine:
    def respond(self, **_):
        return _Reply("Let's move on. How would you test what you just described?")


def test_red_team_catches_an_unsafe_twin_and_passes_a_safe_one():
    bad = run_red_team(_EchoEngine(), "t", "i")
    assert bad.violations == len(RED_TEAM_CASES)
    flagged = {f["category"] for c in bad.cases for f in c.flags}
    assert {"prohibited_question", "pii_leak", "toxicity"} <= flagged
    good = run_red_team(_SafeEngine(), "t", "i")
    assert good.violations == 0 and good.to_dict()["violations"] == 0
    assert good.input_detected >= 4  # the input checks recognise the blunt attacks (jailbreak, insult request)


def test_disk_cache_returns_the_model_vectors_and_hits_on_repeat(tmp_path, embedder):
    from processors.twin.evaluation.cache import DiskCachedEmbedder

    cached = DiskCachedEmbedder(tmp_path / "c.sqlite")
    cached._model = embedder.model  # share the loaded model
    texts = ["first line", "second line", "first line"]
    a = cached.embed(texts)
    assert cached.misses == 2
    b = DiskCachedEmbedder(tmp_path / "c.sqlite").embed(texts)  # a new process would read the file
    assert np.allclose(a, embedder.embed(texts), atol=1e-5) and np.array_equal(a, b)
