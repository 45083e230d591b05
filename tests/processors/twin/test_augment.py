"""Augmentations (spec §9): paraphrase negatives, candidate perturbations and the policy stress set."""

import random

import pytest

from processors.twin.augment import (
    PARAPHRASE_KINDS,
    PERTURBATION_KINDS,
    candidate_perturbations,
    paraphrase,
    paraphrase_negatives,
    perturb_candidate,
    policy_stress_report,
    policy_stress_set,
)
from processors.twin.corpus import interviewer_turns
from processors.twin.policy import PolicyStats
from processors.twin.style import StyleProfile


@pytest.fixture(scope="module")
def kagan(scotus):
    return [t for t in scotus if t.interviewer_id == "elena_kagan"][:12]


@pytest.mark.parametrize("kind, text, expected", [
    ("strip", "Well, so, what's the rule you'd have us adopt?", "What's the rule you'd have us adopt?"),
    ("formal", "Okay, I think you're saying it doesn't apply?", "You are saying it does not apply?"),
    ("question_only", "That's a long story. But what happened next?", "But what happened next?"),
    # One sentence: there is no preamble to drop, so question_only does not apply.
    ("question_only", "What happened next?", ""),
])
def test_paraphrase_kinds(kind, text, expected):
    assert paraphrase(text, kind) == expected


def test_neutral_frame_keeps_the_topic_in_a_generic_question():
    out = paraphrase("Tell me about the pricing page redesign you led last year.", "neutral_frame",
                     rng=random.Random(1))
    assert out.endswith("?") and "pricing page" in out.lower()


def test_paraphrase_negatives_are_deterministic_and_never_copies(kagan):
    lines = [t.text for t in interviewer_turns(kagan)][:60]
    style = StyleProfile.fit(interviewer_turns(kagan))
    a = paraphrase_negatives(lines, style, seed=3)
    assert a == paraphrase_negatives(lines, style, seed=3)
    assert len(a) >= 40 and {x.kind for x in a} <= set(PARAPHRASE_KINDS)
    norm = lambda s: " ".join(s.lower().split())  # noqa: E731
    assert all(norm(x.text) != norm(lines[x.source]) for x in a)


@pytest.mark.parametrize("kind", PERTURBATION_KINDS)
def test_every_perturbation_changes_the_turn(kind):
    text = "We sharded the queue by customer id and measured p99 latency before and after the change."
    out = perturb_candidate(text, kind, random.Random(0))
    assert out and out != text


def test_candidate_perturbations_cycle_kinds():
    out = candidate_perturbations(["one two three four five six"] * 6, seed=1)
    assert [a.kind for a in out] == ["hedged", "truncated", "filler"] * 2


def test_policy_stress_report_on_a_real_interviewer(kagan):
    stats = PolicyStats.fit(kagan[:9])
    items = policy_stress_set(kagan[9:], seed=1, max_items=200)
    # Every usable moment (a candidate turn of 8+ words) of the fixture's 10th-12th Kagan sessions.
    assert len(items) == 24 and {i.kind for i in items} == set(PERTURBATION_KINDS)
    assert all(i.history is not None and i.perturbed != i.original for i in items)
    report = policy_stress_report(items, stats)
    kinds = report["kinds"]
    # Disfluency must not move the decision; a stuck candidate must make a hint more likely.
    assert kinds["filler"]["expectationMet"] >= 0.8
    assert kinds["stuck"]["expectationMet"] >= 0.8
    assert kinds["off_topic"]["expectationMet"] is None  # recorded, not asserted
    assert 0 <= report["expectationMet"] <= 1
