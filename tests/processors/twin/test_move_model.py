"""The learned move model on the in-repo SCOTUS slice, the policy steered by it, and rubric adjustments.

Elena Kagan has the most sessions in the slice (24): the model is fitted on the chronologically first
17 and judged on the 7 after them, which it has never seen.
"""

from __future__ import annotations

import pytest

from processors.twin.corpus import Turn, chronological_split
from processors.twin.move_model import (
    DEFAULT_CANDIDATES,
    Moment,
    MoveModel,
    fit_move_model,
    labelled_moments,
    rubric_check_on_val,
)
from processors.twin.policy import (
    DECIDABLE_MOVES,
    Controls,
    Move,
    PolicyDecision,
    PolicyStats,
    adjust_for_rubric,
    decide_next_move,
)
from processors.twin.tools.rubric import rubric_check

JUSTICE = "elena_kagan"


@pytest.fixture(scope="module")
def kagan_split(scotus):
    sessions = [t for t in scotus if t.interviewer_id == JUSTICE]
    by_justice = {iid: sum(t.interviewer_id == iid for t in scotus) for iid in {t.interviewer_id for t in scotus}}
    assert max(by_justice, key=by_justice.get) == JUSTICE  # the justice with the most sessions
    return chronological_split(sessions, val=0.1, test=0.2)


@pytest.fixture(scope="module")
def kagan_model(kagan_split, embedder) -> MoveModel:
    return MoveModel().fit(kagan_split.train, embedder, seed=0)


def _moment(split):
    """A real decision point from the held-out sessions: the history and the advocate's turn."""
    moments = labelled_moments(split.test)
    return next(m for m in moments if len(m.history) >= 6 and len(m.candidate_text.split()) >= 15)


def test_probabilities_cover_every_move_and_sum_to_one(kagan_model, kagan_split):
    m = _moment(kagan_split)
    probs = kagan_model.predict_proba(list(m.history), m.candidate_text)
    assert set(probs) == set(DECIDABLE_MOVES)
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-9)
    # Smoothed: a move the justice never made in training (wrap_up) is unlikely, not impossible.
    assert all(p > 0 for p in probs.values())
    assert probs[Move.WRAP_UP] < 0.05
    assert kagan_model.predict(list(m.history), m.candidate_text) == max(probs, key=probs.get)
    # The same turn as a Turn, and the history as dicts (as the API sends it), give the same answer.
    as_dicts = [t.model_dump() for t in m.history]
    again = kagan_model.predict_proba(as_dicts, Turn(role="candidate", text=m.candidate_text))
    assert again == pytest.approx(probs)


def test_the_prediction_reads_the_candidates_turn(kagan_model, kagan_split):
    m = _moment(kagan_split)
    long = kagan_model.predict_proba(list(m.history), m.candidate_text)
    short = kagan_model.predict_proba(list(m.history), "Yes.")
    assert long != pytest.approx(short, abs=1e-3)


def test_save_and_load_round_trip(kagan_model, kagan_split, embedder, tmp_path):
    path = kagan_model.save(tmp_path / "v1" / "move_model.joblib")
    loaded = MoveModel.load(path, embedder=embedder)
    assert loaded.config == kagan_model.config and loaded.majority == kagan_model.majority
    for m in labelled_moments(kagan_split.val)[:5]:
        assert loaded.predict_proba(list(m.history), m.candidate_text) == \
            pytest.approx(kagan_model.predict_proba(list(m.history), m.candidate_text))


def test_an_unfitted_model_refuses_to_predict():
    with pytest.raises(RuntimeError, match="not fitted"):
        MoveModel().predict_proba([], "Yes.")


def test_beats_the_majority_move_on_held_out_sessions(kagan_model, kagan_split):
    held_out = kagan_split.val + kagan_split.test
    scores = kagan_model.evaluate(held_out)
    assert scores["n"] == len(labelled_moments(held_out)) >= 80
    # Measured: 0.43 against 0.37 for always the training's commonest move (92 turns).
    assert scores["accuracy"] > scores["majorityAccuracy"] + 0.02, scores
    assert scores["accuracy"] > scores["bestConstantAccuracy"], scores
    assert 0 < scores["macroF1"] <= 1
    assert len(scores["predicted"]) >= 2  # it does not just repeat one move


def test_fit_move_model_chooses_on_val_and_reports(kagan_split, embedder):
    model, metrics = fit_move_model(kagan_split, embedder, seed=0)
    names = [c.name for c in DEFAULT_CANDIDATES]
    assert metrics["chosen"] == model.config.name and set(metrics["candidates"]) == set(names)
    best = max(v["accuracy"] for v in metrics["candidates"].values())
    assert metrics["val"]["accuracy"] == best
    assert metrics["val"]["n"] == len(labelled_moments(kagan_split.val)) > 0
    assert 0 <= metrics["policyAgreement"] <= 1
    assert metrics["interviewerId"] == JUSTICE and metrics["trainTurns"] == model.n_train
    check = metrics["rubricCheck"]  # the generic rubric's verdicts against her own moves, on the same turns
    assert 0 < check["gradedTurns"] <= metrics["val"]["n"] and check["revised"] <= check["gradedTurns"]
    assert abs(check["agreeAfter"] - check["agreeBefore"]) <= check["revised"]
    assert check["applies"] is False or check["agreeAfter"] > check["agreeBefore"]


# -- the policy with a move model's distribution ------------------------------------------------------

HISTORY = [
    Turn(role="interviewer", text="Tell me about a system you built."),
    Turn(role="candidate", text="We moved billing to Kafka because the batch jobs failed at month end."),
    Turn(role="interviewer", text="What did the batch jobs do?"),
]
STUCK = "I don't know, I'm not sure where to start."
PROBS = {Move.ASK_FOLLOWUP: 0.15, Move.PROBE_DEEPER: 0.4, Move.GIVE_HINT: 0.15, Move.SHIFT_TOPIC: 0.1,
         Move.MOVE_ON: 0.15, Move.WRAP_UP: 0.05}


def test_the_model_distribution_replaces_the_rules():
    rules = decide_next_move(HISTORY, STUCK, PolicyStats())
    learned = decide_next_move(HISTORY, STUCK, PolicyStats(), move_probs=PROBS)
    assert rules.move == Move.GIVE_HINT and "candidate seems stuck" in rules.reasons
    assert learned.move == Move.PROBE_DEEPER and learned.reasons == ["move model p=0.40 for probe_deeper"]
    assert learned.scores == pytest.approx({m.value: p for m, p in PROBS.items()}, abs=1e-3)
    # String keys (a JSON round trip) mean the same; "open" is never scored.
    as_json = decide_next_move(HISTORY, STUCK, None, move_probs={**{m.value: p for m, p in PROBS.items()}, "open": 0.9})
    assert as_json.scores == learned.scores
    assert decide_next_move([], None, None, move_probs=PROBS).move == Move.OPEN  # nothing said yet


@pytest.mark.parametrize(("control", "move"), [("challenge_level", Move.PROBE_DEEPER), ("coaching_ratio", Move.GIVE_HINT)])
def test_controls_still_steer_the_model_distribution(control, move):
    probs = [decide_next_move(HISTORY, STUCK, None, Controls(**{control: v}), move_probs=PROBS).scores[move.value]
             for v in (0.0, 0.5, 1.0)]
    assert probs[0] < probs[1] < probs[2]
    coached = decide_next_move(HISTORY, STUCK, None, Controls(coaching_ratio=1.0), move_probs=PROBS)
    assert coached.move == Move.GIVE_HINT and "coachingRatio 1.00" in coached.reasons
    assert coached.reasons[0].startswith("move model p=")


def test_tone_still_steers_the_model_distribution():
    firm = decide_next_move(HISTORY, STUCK, None, Controls(tone="firm"), move_probs=PROBS)
    warm = decide_next_move(HISTORY, STUCK, None, Controls(tone="warm"), move_probs=PROBS)
    assert firm.scores["probe_deeper"] > warm.scores["probe_deeper"]
    assert warm.scores["give_hint"] > firm.scores["give_hint"]


def test_a_real_model_prediction_drives_the_policy(kagan_model, kagan_split):
    m = _moment(kagan_split)
    probs = kagan_model.predict_proba(list(m.history), m.candidate_text)
    decision = decide_next_move(list(m.history), m.candidate_text, None, Controls(), move_probs=probs)
    assert decision.move == max(probs, key=probs.get)
    assert decision.reasons[0] == f"move model p={probs[decision.move]:.2f} for {decision.move.value}"


# -- rubric adjustments --------------------------------------------------------------------------------

WEAK = rubric_check("I don't know.")
STRONG = rubric_check("I explain the approach step by step, state the time and space complexity, consider edge "
                      "cases and failure modes, discuss trade-offs and alternatives, and give a concrete example test.")


def _decision(move: Move, **scores: float) -> PolicyDecision:
    base = {m.value: 0.1 for m in DECIDABLE_MOVES} | scores
    return PolicyDecision(move=move, confidence=base[move.value], reasons=["move model p=0.40 for " + move.value],
                          scores=base)


def test_rubric_verdicts_of_real_checks():
    assert WEAK["verdict"] == "weak" and STRONG["verdict"] == "strong"


def test_a_weak_answer_turns_a_follow_up_into_a_probe():
    before = _decision(Move.ASK_FOLLOWUP, ask_followup=0.4, probe_deeper=0.2)
    after = adjust_for_rubric(before, WEAK)
    # The two moves trade probabilities: selection, which reads the scores, sees the probe, not the follow-up.
    assert after.move == Move.PROBE_DEEPER and after.confidence == 0.4
    assert after.scores["probe_deeper"] == 0.4 and after.scores["ask_followup"] == 0.2
    assert sum(after.scores.values()) == pytest.approx(sum(before.scores.values()))
    assert max(after.scores, key=after.scores.get) == "probe_deeper"
    assert after.reasons[-1].startswith("rubric: weak answer (score 0.") and "ask_followup -> probe_deeper" in after.reasons[-1]
    assert before.move == Move.ASK_FOLLOWUP and len(before.reasons) == 1  # the input is not changed


def test_a_weak_answer_gets_a_hint_from_a_coaching_interviewer():
    before = _decision(Move.ASK_FOLLOWUP, ask_followup=0.4)
    assert adjust_for_rubric(before, WEAK, Controls(coaching_ratio=0.9)).move == Move.GIVE_HINT
    assert adjust_for_rubric(before, WEAK, Controls(coaching_ratio=0.5)).move == Move.PROBE_DEEPER


@pytest.mark.parametrize("move", [Move.ASK_FOLLOWUP, Move.PROBE_DEEPER])
def test_a_strong_answer_moves_on_or_shifts_topic(move):
    to_move_on = adjust_for_rubric(_decision(move, move_on=0.3, shift_topic=0.2), STRONG)
    to_shift = adjust_for_rubric(_decision(move, move_on=0.2, shift_topic=0.3), STRONG)
    assert to_move_on.move == Move.MOVE_ON and to_shift.move == Move.SHIFT_TOPIC
    assert f"{move.value} -> move_on" in to_move_on.reasons[-1] and "strong answer" in to_move_on.reasons[-1]


@pytest.mark.parametrize(("move", "result"), [
    (Move.SHIFT_TOPIC, WEAK),  # a weak answer only changes a follow-up
    (Move.GIVE_HINT, STRONG),  # a strong answer only changes a follow-up or probe
    (Move.ASK_FOLLOWUP, {"score": 0.45, "verdict": "partial"}),
    (Move.ASK_FOLLOWUP, {"error": "rubric unavailable"}),
    (Move.ASK_FOLLOWUP, None),
])
def test_other_rubric_results_leave_the_decision_alone(move, result):
    before = _decision(move)
    assert adjust_for_rubric(before, result) == before


# A long answer that covers none of the generic rubric's criteria (graded "weak" by word overlap alone).
VAGUE = "Well, I suppose we kind of did it the usual way back then, and it mostly worked out fine for all of us."
# The move model's distribution at each moment: a follow-up, which a weak verdict turns into a probe.
FOLLOW_UP = [0.5 if m == Move.ASK_FOLLOWUP else 0.1 for m in DECIDABLE_MOVES]


@pytest.mark.parametrize(("probes", "follow_ups", "applies"), [
    (3, 0, True),   # every revision right
    (0, 3, False),  # every revision wrong
    (6, 4, False),  # right more often than wrong, but by less than two standard errors: noise
])
def test_the_generic_rubric_applies_where_its_verdicts_agree_with_the_real_moves(probes, follow_ups, applies):
    real = [Move.PROBE_DEEPER] * probes + [Move.ASK_FOLLOWUP] * follow_ups
    moments = [Moment(tuple(HISTORY), VAGUE, m) for m in real] + [Moment(tuple(HISTORY), "Yes.", Move.MOVE_ON)]
    check = rubric_check_on_val(PolicyStats(), moments, [FOLLOW_UP] * len(moments), embedder=None)
    # "Yes." is too short to grade; each vague answer is graded weak and its follow-up revised to a probe.
    n = probes + follow_ups
    assert check == {"gradedTurns": n, "revised": n, "agreeBefore": follow_ups, "agreeAfter": probes,
                     "applies": applies}
