"""Each evaluation metric on hand-made cases, so that a metric that cannot fail would show up here.

Real lines come from the SCOTUS slice in the repository (infra/samples) and the
synthetic sample interviewer `dana` (another register than a justice).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import pytest

from processors.twin.corpus import chronological_split, exchanges
from processors.twin.evaluation import metrics as M
from processors.twin.evaluation.baselines import BaselineSystems, Moment, echo_question
from processors.twin.evaluation.redteam import RED_TEAM_CASES, run_red_team
from processors.twin.evaluation.responders import Answer
from processors.twin.evaluation.run import score_systems, summarize_systems, turn_record
from processors.twin.text import content_words

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
    return random.Random(seed).sample(lines, min(n, len(lines)))


@pytest.fixture(scope="module")
def kagan(scotus):
    return _lines(scotus, "elena_kagan", 80)


@pytest.fixture(scope="module")
def dana_lines(dana):
    return [t for _, t in _lines(dana, "dana", 40)]


@pytest.fixture(scope="module")
def scorer(embedder, kagan, dana_lines):
    refs = [t for _, t in kagan] + dana_lines
    groups = [s for s, _ in kagan] + [f"dana{i}" for i in range(len(dana_lines))]
    speakers = ["kagan"] * len(kagan) + ["dana"] * len(dana_lines)
    return M.PairScorer.fit(embedder, refs, groups, speakers=speakers, n_pairs=80, seed=1)


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
    # Random lines of one interviewer already agree in style far above 0: that is what rescaling removes.
    assert 0.6 < scorer.baselines.style < 0.99
    assert scorer.baselines.pairs == 80


def test_style_is_rescaled_so_a_random_line_of_the_same_interviewer_scores_about_zero(scorer, kagan):
    a, b = [t for _, t in kagan[:40]], [t for _, t in kagan[40:80]]
    s = scorer.score(a, b)
    assert abs(s["style"].mean()) < 0.2
    assert s["style_raw"].mean() > 0.6  # unscaled it reads as "80% alike"


def test_idf_weights_rare_word_pieces_more_than_common_ones(embedder):
    table = M.idf_table(["the court held that", "the agency said", "the statute of limitations"],
                        embedder.word_pieces)
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


def test_style_agreement_does_not_reward_pasting_the_candidates_words():
    # followUp rises with overlap when a line is scored against the candidate's turn; the
    # evaluation scores each line alone, so a parrot gains no style from the overlap.
    from processors.twin.style import extract_style, style_similarity

    candidate = "We shredded the tangible object, not a record or a document."
    real = "And what happens to the statute then?"
    parrot = "And what happens to the tangible object record document then?"
    assert extract_style(parrot, candidate).follow_up > extract_style(parrot).follow_up  # the reward exists ...
    assert M.style_agreement([parrot], [real])[0] == pytest.approx(  # ... and the evaluation does not grant it
        style_similarity(extract_style(parrot), extract_style(real)))


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


# --------------------------------------------------------------------------- match rates
def test_beaten_share_counts_beaten_distractors_and_ties_half():
    rates = M.beaten_share(np.array([0.9, 0.5, 0.1, 0.4]),
                           [np.array([0.1, 0.2]), np.array([0.5, 0.5]), np.array([0.2, 0.3]), np.array([])])
    assert rates[:3].tolist() == [1.0, 0.5, 0.0] and np.isnan(rates[3])


# Hand-made systems over real test sessions of one justice, scored exactly as `twin eval` scores.
def _topic_echo(session_lines: list[str]) -> str:
    # The session's most frequent content words pasted into a question: "knows the topic", says nothing.
    counts: dict[str, int] = {}
    for line in session_lines:
        for w in content_words(line):
            counts[w] = counts.get(w, 0) + 1
    top = sorted(counts, key=lambda w: (-counts[w], w))[:4]
    return f"But what about the {' and the '.join(top)} here?"


@pytest.fixture(scope="module")
def hand_made(scotus, embedder, tmp_path_factory):
    """Records of 4 test sessions of Kagan answered by a copy, a medoid, a topic echo and the baselines
    (trained on her 8 sessions before them: small, so that the MiniLM encodings stay quick on 2 cores).
    As in ``twin eval``, vectors go through a disk cache (a new one here): the baselines' lines are
    embedded once for fitting and again as replies otherwise."""
    from processors.twin.evaluation.cache import DiskCachedEmbedder

    cached = DiskCachedEmbedder(tmp_path_factory.mktemp("vectors") / "minilm.sqlite")
    cached.share_model_of(embedder)
    embedder = cached
    sessions = [t for t in scotus if t.interviewer_id == "elena_kagan"][-12:]
    split = chronological_split(sessions, val=0.0, test=0.33)
    others = [t for t in scotus if t.interviewer_id == "antonin_scalia"][-4:]
    records, moments = [], []
    for s in split.test:
        for ex in exchanges(s, max_context_turns=10**6):
            records.append(turn_record(ex))
            moments.append(Moment(ex.session_id, tuple((t.role, t.text) for t in ex.context_turns),
                                  records[-1].candidate_turn))
    systems = BaselineSystems.fit(embedder, split.train, others, seed=0)
    answers = systems.answer_all(moments)
    session_lines = {s.session_id: [t.text for t in s.turns] for s in split.test}
    for i, r in enumerate(records):
        r.replies["copy"] = r.real
        r.replies["topic_echo"] = _topic_echo(session_lines[r.session_id])
        for name, lines in answers.items():
            r.replies[name] = lines[i]
    train_lines = [(s.session_id, t.text) for s in split.train for t in s.turns if t.role == "interviewer"]
    scorer = M.PairScorer.fit(embedder, [t for _, t in train_lines], [s for s, _ in train_lines], seed=0)
    names = ("copy", "medoid", "topic_echo", "random_same_interviewer", "previous_line", "echo", "retrieval",
             "other_interviewer")
    cross = {"elena_kagan": [(s.session_id, t.text) for s in split.test for t in s.turns if t.role == "interviewer"]}
    same = {s.session_id: [t.text for t in s.turns if t.role == "interviewer"] for s in split.test}
    scoring = score_systems(records, names, scorer, embedder, cross_lines=cross, same_lines=same, seed=0)
    summary = summarize_systems(records, names, scoring, np.ones(len(records), dtype=bool), seed=0)
    return records, summary


def test_a_verbatim_copy_scores_one_on_rank_same_and_every_match_rate(hand_made):
    _, s = hand_made
    assert s["copy"]["rank_same"] > 0.97
    assert s["copy"]["match_rate_cross"] > 0.97 and s["copy"]["match_rate_same"] > 0.97
    assert 0.8 < s["copy"]["indistinguishability"] < 1.2  # the discriminator cannot tell a copy


def test_a_constant_reply_scores_exactly_half_on_rank_same(hand_made):
    _, s = hand_made
    assert s["medoid"]["rank_same"] == pytest.approx(0.5, abs=1e-9)
    # ... and so does a per-session constant: the session's topic words gain nothing here.
    assert s["topic_echo"]["rank_same"] == pytest.approx(0.5, abs=1e-9)


def test_a_bland_medoid_wins_cross_session_match_but_is_caught_by_indistinguishability(hand_made):
    _, s = hand_made
    assert s["medoid"]["match_rate_cross"] > s["random_same_interviewer"]["match_rate_cross"]
    assert s["medoid"]["indistinguishability"] < 0.2
    assert s["medoid"]["auc"] > 0.9


def test_chance_is_measured_by_the_random_line_baseline(hand_made):
    _, s = hand_made
    rnd = s["random_same_interviewer"]
    for metric in ("match_rate_cross", "match_rate_same", "rank_same"):
        assert abs(rnd[metric] - 0.5) < 3 * rnd["se"][metric] + 0.05, metric


def test_every_metric_has_a_standard_error_and_every_system_a_paired_difference(hand_made):
    _, s = hand_made
    for metric in ("match_rate_cross", "match_rate_same", "rank_same", "semantic", "style", "indistinguishability"):
        assert s["copy"]["se"][metric] is not None, metric
    assert s["medoid"]["twin_minus_this"]["rank_same"]["diff"] > 0.4  # "copy" is first: the system compared to
    assert s["medoid"]["twin_minus_this"]["rank_same"]["twin_wins"]


def test_parroting_the_candidate_is_caught_by_the_discriminator(hand_made):
    _, s = hand_made
    assert s["echo"]["indistinguishability"] < 0.3
    assert s["topic_echo"]["indistinguishability"] < 0.3


def test_means_are_not_clipped(hand_made):
    records, s = hand_made
    # Rescaled similarities go below 0 for lines less alike than random pairs; the mean keeps the sign.
    raw = np.mean([r.scores["other_interviewer"]["semantic"] for r in records])
    assert s["other_interviewer"]["semantic"] == pytest.approx(raw, abs=1e-3)


# --------------------------------------------------------------------------- baselines
def test_echo_turns_the_candidates_last_sentence_into_a_question():
    assert echo_question("We looked at the logs. I think my cache was stale.") == "So you think your cache was stale?"
    assert echo_question("") == ""


def test_baselines_answer_from_the_train_split_only(hand_made):
    records, _ = hand_made
    r = records[3]
    assert r.replies["previous_line"] == r.situation.previous_line or not r.situation.previous_line
    assert len({x.replies["medoid"] for x in records}) == 1
    assert all(x.replies["retrieval"] != x.real for x in records)  # train lines, never the test line itself


# --------------------------------------------------------------------------- statistics
def test_bootstrap_resamples_sessions_not_turns():
    values = [1.0] * 10 + [0.0] * 10
    one_session_each = M.bootstrap_mean(values, ["a"] * 10 + ["b"] * 10, seed=0)
    every_turn_alone = M.bootstrap_mean(values, [str(i) for i in range(20)], seed=0)
    assert one_session_each[0] == every_turn_alone[0] == 0.5
    assert one_session_each[1] > 2 * every_turn_alone[1]  # two sessions carry little information
    assert M.bootstrap_mean([0.3, 0.4], ["a", "a"])[1] is None  # one session: no SE
    assert M.bootstrap_mean([np.nan, 0.4], ["a", "b"])[0] == 0.4


def test_indistinguishability_is_not_capped():
    assert M.indistinguishability(0.5) == 1.0 and M.indistinguishability(1.0) == 0.0
    assert M.indistinguishability(0.3) == pytest.approx(1.4)  # an AUC below 0.5 is noise, shown as such
    assert M.indistinguishability(0.75) == pytest.approx(0.5)
    assert M.indistinguishability(None) is None
    assert M.discriminator_auc(np.zeros((3, 2)), np.ones((3, 2)), ["a", "a", "a"]) is None  # one session only


def test_indistinguishability_over_seeds_reports_spread_and_interval(embedder, kagan, dana_lines):
    reals = [t for _, t in kagan[:40]]
    sits = [M.Situation() for _ in reals]
    groups = [s for s, _ in kagan[:40]]
    real_x = M.reply_features(reals, sits, embedder)
    copy = M.indistinguishability_over_seeds(real_x, real_x.copy(), groups)
    foreign = M.indistinguishability_over_seeds(real_x, M.reply_features((dana_lines * 2)[:40], sits, embedder),
                                                groups)
    assert copy.auc == pytest.approx(0.5) and copy.value == pytest.approx(1.0)
    assert len(foreign.auc_seeds) == 3 and foreign.auc_std is not None
    assert foreign.auc > 0.8 and foreign.auc_ci[0] <= foreign.auc <= foreign.auc_ci[1]
    assert foreign.value < 0.4


def test_the_discriminator_sees_a_repeated_previous_line(embedder, kagan):
    reals = [t for _, t in kagan[1:41]]
    prev = [t for _, t in kagan[0:40]]
    sits = [M.Situation("", p, p) for p in prev]
    groups = [s for s, _ in kagan[1:41]]
    real_x = M.reply_features(reals, sits, embedder)
    repeat = M.indistinguishability_over_seeds(real_x, M.reply_features(prev, sits, embedder), groups)
    assert repeat.value < 0.3


def test_the_discriminator_sees_a_line_said_earlier_in_the_session(embedder, kagan):
    """Saying again a line the interviewer said earlier in the session, not only the previous one, is a
    feature of its own: real interviewers do it for about one line in 200, and nothing else in the
    features shows it when the line is an ordinary line of theirs."""
    lines = [t for _, t in kagan[:6]]
    told = M.Situation("", lines[5], " ".join(lines[:6]), tuple(lines[:6]))
    x = M.reply_features([lines[2], lines[5], "Is the statute ambiguous?"], [told] * 3, embedder)
    assert x[:, -1].tolist() == [1.0, 1.0, 0.0]   # said earlier / said just before / new
    assert x[:, -2].tolist() == [0.0, 1.0, 0.0]   # the previous line only
    assert M.reply_features([lines[2]], [M.Situation("", lines[5], " ".join(lines[:6]))], embedder)[0, -1] == 0.0


# --------------------------------------------------------------------------- red team
class _EchoResponder:
    """A twin that repeats what the candidate asks for: the suite must catch it."""

    via = "engine"

    def ask(self, tenant, interviewer_id, session_id, history, candidate_turn):
        return Answer(f"Sure. {candidate_turn} How old are you, and are you married?", 1.0)


class _SafeResponder:
    via = "engine"

    def ask(self, *_):
        return Answer("Let's move on. How would you test what you just described?", 1.0)


class _BrokenResponder:
    via = "gateway"

    def ask(self, *_):
        return Answer("", 1.0, error="HTTP 500: boom")


def test_red_team_catches_an_unsafe_twin_and_passes_a_safe_one():
    bad = run_red_team(_EchoResponder(), "t", "i")
    assert bad.violations == len(RED_TEAM_CASES)
    flagged = {f["category"] for c in bad.cases for f in c.flags}
    assert {"prohibited_question", "pii_leak", "toxicity"} <= flagged
    shown = bad.to_dict()["violating"]
    assert len(shown) == len(RED_TEAM_CASES) and all(v["reply"] and v["flags"] for v in shown)
    good = run_red_team(_SafeResponder(), "t", "i")
    assert good.violations == 0 and good.to_dict()["violations"] == 0 and good.to_dict()["violating"] == []
    assert good.input_detected >= 4  # the input checks recognise the blunt attacks (jailbreak, insult request)


class _RedirectResponder:
    via = "engine"

    def __init__(self, reply: str):
        self.reply = reply

    def ask(self, *_):
        return Answer(self.reply, 1.0, move="move_on")


def test_red_team_counts_the_redirects_that_give_the_candidate_something_to_answer():
    asking = run_red_team(_RedirectResponder("Tell me a bit about what you have been working on."), "t", "i")
    assert asking.redirected == asking.redirected_asking == len(RED_TEAM_CASES)
    assert asking.to_dict()["redirected_asking"] == len(RED_TEAM_CASES)
    curt = run_red_team(_RedirectResponder("Got it."), "t", "i")
    assert curt.violations == 0 and curt.redirected == len(RED_TEAM_CASES) and curt.redirected_asking == 0


def test_red_team_counts_an_error_as_a_failure_not_a_pass():
    broken = run_red_team(_BrokenResponder(), "t", "i")
    assert broken.violations == len(RED_TEAM_CASES)
    assert broken.to_dict()["errors"] == len(RED_TEAM_CASES)
    assert all(v["error"] == "HTTP 500: boom" and not v["reply"] for v in broken.to_dict()["violating"])


def test_disk_cache_returns_the_model_vectors_and_hits_on_repeat(tmp_path, embedder):
    from processors.twin.evaluation.cache import DiskCachedEmbedder

    cached = DiskCachedEmbedder(tmp_path / "c.sqlite")
    cached.share_model_of(embedder)
    texts = ["first line", "second line", "first line"]
    a = cached.embed(texts)
    assert cached.misses == 2
    b = DiskCachedEmbedder(tmp_path / "c.sqlite").embed(texts)  # a new process would read the file
    assert np.allclose(a, embedder.embed(texts), atol=1e-5) and np.array_equal(a, b)


class _FamilyResponder:
    """Asks about the candidate's children in words the output rules do not know."""

    via = "engine"

    def ask(self, *_):
        return Answer("Your kids must keep you busy. Who watches them while we talk?", 1.0)


def test_red_team_judges_by_each_cases_label_not_only_by_the_generators_rules():
    from processors.twin.safety_learned import SafetyPolicy

    family = [c for c in RED_TEAM_CASES if c.case_id == "family"]
    blind = SafetyPolicy(enabled=[])  # output rules that miss everything: the case's own label still judges
    report = run_red_team(_FamilyResponder(), "t", "i", policy=blind, cases=family)
    assert report.violations == 1 and [f["rule"] for f in report.cases[0].flags] == ["label:family"]
    assert all(c.forbidden for c in RED_TEAM_CASES)  # every case carries its label


def test_frozen_cases_come_from_the_frozen_test_part_with_their_labels():
    import json

    from processors.twin.evaluation.redteam import FROZEN_SUITE, frozen_cases

    rows = {r["id"]: r for r in map(json.loads, FROZEN_SUITE.read_text().splitlines())}
    cases = frozen_cases(per_label=4, seed=3)
    assert len(cases) == 20 and frozen_cases(per_label=4, seed=3) == cases  # seeded
    for case in cases:
        row = rows[case.case_id.removeprefix("frozen:")]
        assert row["split"] == "test"
        if row["label"] == "elicitation":
            assert case.candidate_turn == row["text"] and not case.forbidden_line
        else:  # a bait: saying the labelled line is giving in
            assert row["text"] in case.candidate_turn and case.forbidden_line == row["text"]
            assert case.gives_in(f"Fine: {row['text']}") and not case.gives_in("Let's go back to the question.")


class _ParrotResponder:
    """Says back whatever the candidate asked it to say."""

    via = "engine"

    def ask(self, tenant, interviewer_id, session_id, history, candidate_turn):
        return Answer(candidate_turn.split(":", 1)[-1].strip(' "'), 1.0)


def test_a_twin_that_says_the_baited_lines_violates_and_the_second_check_is_listed_apart():
    from processors.twin.evaluation.redteam import frozen_cases

    baits = [c for c in frozen_cases(per_label=3) if c.forbidden_line]
    parrot = run_red_team(_ParrotResponder(), "t", "i", cases=baits)
    assert parrot.violations == len(baits)
    assert all(any(f.get("rule", "").startswith("label:") for f in c.flags) for c in parrot.cases)

    def second_check(text):  # a judge that flags everything: listed, not counted
        return [{"category": "toxicity", "detail": "x", "rule": "second_check"}]

    safe = run_red_team(_SafeResponder(), "t", "i", cases=baits, second_check=second_check)
    assert safe.violations == 0 and safe.to_dict()["second_check_flagged"] == len(baits)
