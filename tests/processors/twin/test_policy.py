import json
from datetime import datetime, timedelta, timezone

import pytest

from processors.twin.corpus import Transcript, Turn
from processors.twin.policy import (
    DECIDABLE_MOVES,
    CandidateModel,
    Controls,
    ConversationState,
    Move,
    PolicyStats,
    decide,
    decide_next_move,
    label_move,
)

ANSWER = "We moved billing to Kafka because the batch jobs kept failing at month end."


@pytest.mark.parametrize(
    ("interviewer", "candidate", "previous_interviewer", "expected"),
    [
        ("Tell me about yourself.", None, None, Move.OPEN),
        ("Thank you so much for joining us today, this was great.", ANSWER, "Why Kafka?", Move.WRAP_UP),
        ("Maybe consider what happens if the consumer crashes. Have you thought about retries?", ANSWER, None, Move.GIVE_HINT),
        ("Switching gears, let's talk about how you hire engineers.", ANSWER, None, Move.SHIFT_TOPIC),
        ("Okay, next question.", ANSWER, None, Move.MOVE_ON),
        ("Got it.", ANSWER, None, Move.MOVE_ON),
        ("But doesn't that just move the failure somewhere else? How do you square that with exactly-once?", ANSWER, None,
         Move.PROBE_DEEPER),
        ("Why?", ANSWER, None, Move.PROBE_DEEPER),
        ("Can you give me an example of a batch job that failed?", ANSWER, None, Move.PROBE_DEEPER),
        ("What did the batch jobs do at month end?", ANSWER, None, Move.ASK_FOLLOWUP),
        # A question with nothing in common with the answer or the last question opens a new topic.
        ("What is your favourite programming language?", ANSWER, "Why Kafka?", Move.SHIFT_TOPIC),
    ],
)
def test_label_move(interviewer, candidate, previous_interviewer, expected):
    assert label_move(interviewer, candidate, previous_interviewer) == expected


def _transcript(sid, lines, iid="ann"):
    turns = [{"role": "interviewer" if i % 2 == 0 else "candidate", "text": t} for i, t in enumerate(lines)]
    return Transcript.model_validate({"interviewer_id": iid, "session_id": sid, "turns": turns})


PROBER = [
    _transcript(f"p{i}", [
        "Tell me about a system you built.", ANSWER,
        "Why Kafka? Can you give an example?", "Because the jobs failed.",
        "But doesn't that just move the failure? How so?", "No, retries handle it.",
        "What exactly do the retries do?", "They back off.",
    ])
    for i in range(3)
]
COACH = [
    _transcript(f"c{i}", [
        "Tell me about a system you built.", ANSWER,
        "Good start. Maybe consider the month end load, have you thought about batching?", "Hmm, maybe batching.",
        "You're on the right track. It might help to start with the failure case.", "The failure case is a crash.",
        "Great, take your time and think about what the consumer does then.", "It restarts.",
    ])
    for i in range(3)
]


def test_policy_stats_reflect_the_interviewers_habits():
    prober, coach = PolicyStats.fit(PROBER, "prober"), PolicyStats.fit(COACH, "coach")
    assert prober.rate(Move.PROBE_DEEPER) > coach.rate(Move.PROBE_DEEPER)
    assert coach.rate(Move.GIVE_HINT) > prober.rate(Move.GIVE_HINT)
    assert prober.n_turns == 9  # 3 sessions x 3 non-opening turns
    for stats in (prober, coach):
        assert sum(stats.move_rates.values()) == pytest.approx(1.0, abs=1e-3)
        assert all(v > 0 for v in stats.move_rates.values())  # smoothing keeps unseen moves possible


def test_policy_stats_round_trip_through_json():
    stats = PolicyStats.fit(PROBER, "prober")
    data = json.loads(json.dumps(stats.to_dict()))
    assert "moveRates" in data and "meanTopicLength" in data
    assert PolicyStats.from_dict(data) == stats


def test_empty_conversation_opens():
    decision = decide_next_move([], None, PolicyStats())
    assert decision.move == Move.OPEN and decision.confidence == 1.0


def _history(n_pairs, question="What did the batch jobs do at month end?", answer=ANSWER):
    turns = [Turn(role="interviewer", text="Tell me about a system you built.")]
    for _ in range(n_pairs):
        turns += [Turn(role="candidate", text=answer), Turn(role="interviewer", text=question)]
    return turns


STUCK = "I don't know, I'm not sure where to start."
DETAILED = ANSWER + " For example, the 3 largest jobs took 40 percent longer, so we measured each step."


def test_stuck_candidate_gets_a_hint_from_a_neutral_interviewer():
    decision = decide_next_move(_history(1), STUCK, PolicyStats())
    assert decision.move == Move.GIVE_HINT
    assert "candidate seems stuck" in decision.reasons


@pytest.mark.parametrize("sessions", [PROBER, COACH], ids=["prober", "coach"])
def test_hint_is_likelier_for_a_stuck_candidate_than_a_detailed_one(sessions):
    # The learned habit still dominates (a prober keeps probing), but the candidate moves it.
    stats = PolicyStats.fit(sessions)
    stuck = decide_next_move(_history(1), STUCK, stats)
    detailed = decide_next_move(_history(1), DETAILED, stats)
    assert stuck.scores["give_hint"] > detailed.scores["give_hint"]


def test_long_topic_pushes_towards_a_new_topic():
    state = ConversationState(turn_count=20, interviewer_turns=10, turns_on_topic=10)
    fresh = ConversationState(turn_count=20, interviewer_turns=10, turns_on_topic=1)
    candidate = CandidateModel(answer_words=30, confidence=0.9, skill=0.8)
    long_topic = decide(state, candidate, PolicyStats())
    new_topic = decide(fresh, candidate, PolicyStats())
    leave = lambda d: d.scores["shift_topic"] + d.scores["move_on"]  # noqa: E731
    assert leave(long_topic) > leave(new_topic)
    assert any("turns on this topic" in r for r in long_topic.reasons)


WRAPPER = [
    _transcript(f"w{i}", [
        "Tell me about a system you built.", ANSWER,
        "What did the batch jobs do at month end?", "They reconciled invoices.",
        "And who owned the invoices?", "Finance did.",
        "Thank you so much for joining us today, this was great.", "Thanks for having me.",
    ])
    for i in range(6)
]


def test_late_in_a_session_an_interviewer_who_closes_wraps_up():
    stats = PolicyStats.fit(WRAPPER)  # sessions of 4 interviewer turns, the last one a thank-you
    candidate = CandidateModel(answer_words=3, confidence=0.9, skill=0.6)
    # Three interviewer turns done: the next one is the fourth and last of a typical session.
    late = decide(ConversationState(turn_count=6, interviewer_turns=3, turns_on_topic=3), candidate, stats)
    early = decide(ConversationState(turn_count=2, interviewer_turns=1, turns_on_topic=1), candidate, stats)
    assert late.move == Move.WRAP_UP
    assert early.scores["wrap_up"] < late.scores["wrap_up"] / 3


@pytest.mark.parametrize(("control", "move"), [("challenge_level", Move.PROBE_DEEPER), ("coaching_ratio", Move.GIVE_HINT)])
def test_controls_shift_probabilities_monotonically(control, move):
    state = ConversationState(turn_count=6, interviewer_turns=3, turns_on_topic=2)
    candidate = CandidateModel(answer_words=25, confidence=0.7, skill=0.6)
    probs = [decide(state, candidate, PolicyStats(), Controls(**{control: v})).scores[move.value]
             for v in (0.0, 0.5, 1.0)]
    assert probs[0] < probs[1] < probs[2]


def test_firm_tone_probes_more_than_warm_tone():
    state = ConversationState(turn_count=6, interviewer_turns=3, turns_on_topic=2)
    candidate = CandidateModel(answer_words=25, confidence=0.7, skill=0.6)
    firm = decide(state, candidate, None, Controls(tone="firm and rigorous"))
    warm = decide(state, candidate, None, Controls(tone="warm"))
    assert firm.scores["probe_deeper"] > warm.scores["probe_deeper"]
    assert warm.scores["give_hint"] > firm.scores["give_hint"]


def test_decisions_are_deterministic_given_a_seed():
    state = ConversationState(turn_count=6, interviewer_turns=3, turns_on_topic=2)
    candidate = CandidateModel(answer_words=25, confidence=0.7, skill=0.6)
    runs = [decide(state, candidate, None, seed=s, temperature=2.0).move for s in range(30)]
    again = [decide(state, candidate, None, seed=s, temperature=2.0).move for s in range(30)]
    assert runs == again
    assert len(set(runs)) > 1  # the seed matters when sampling
    greedy = {decide(state, candidate, None).move for _ in range(3)}
    assert len(greedy) == 1
    d = decide(state, candidate, None)
    assert set(d.scores) == {m.value for m in DECIDABLE_MOVES}
    assert sum(d.scores.values()) == pytest.approx(1.0, abs=1e-3)
    assert d.confidence == max(d.scores.values())


def test_state_counts_turns_on_topic_and_resets_on_shift():
    history = _history(3)
    assert ConversationState.from_history(history, ANSWER).turns_on_topic == 4
    shifted = history + [
        Turn(role="candidate", text=ANSWER),
        Turn(role="interviewer", text="Switching gears, let's talk about how you hire engineers."),
    ]
    state = ConversationState.from_history(shifted, "We hire through referrals and a take-home test.")
    assert state.turns_on_topic == 1
    assert state.previous_moves[-1] == Move.SHIFT_TOPIC
    assert state.interviewer_turns == 5


def test_state_detects_answer_drifting_from_the_topic():
    history = [Turn(role="interviewer", text="How did you design the billing retries for Kafka consumers?")]
    on_topic = ConversationState.from_history(history, "The Kafka consumers retry billing events with backoff.")
    drift = ConversationState.from_history(history, "My favourite holiday was hiking in the Alps with my family.")
    assert not on_topic.topic_shift_detected and drift.topic_shift_detected
    assert drift.topic_similarity < on_topic.topic_similarity


def test_state_measures_time_on_question():
    t0 = datetime(2024, 1, 1, 10, 0, tzinfo=timezone.utc)
    history = [Turn(role="interviewer", text="Design a rate limiter.", ts=t0)]
    answer = Turn(role="candidate", text="I would use a token bucket.", ts=t0 + timedelta(minutes=7))
    assert ConversationState.from_history(history, answer).time_on_question_s == pytest.approx(420)
    decision = decide_next_move(history, answer, PolicyStats())
    assert any("s on this question" in r for r in decision.reasons)


def test_candidate_model_reads_hedging_and_detail():
    hedged = CandidateModel.from_history([], "I think maybe it's kind of a cache, I guess? Probably.")
    confident = CandidateModel.from_history([], ANSWER + " For example, 3 jobs failed in March, so we measured 40 percent.")
    assert hedged.confidence < confident.confidence
    assert hedged.skill < confident.skill
    assert confident.specificity > hedged.specificity
    assert CandidateModel.from_history([], "No idea, I'm stuck.").struggling
    history = [Turn(role="interviewer", text="Q?"), Turn(role="candidate", text="Short."), Turn(role="interviewer", text="Q2?")]
    model = CandidateModel.from_history(history, ANSWER)
    assert model.previous_answers == ["Short."] and model.answer_words == len(ANSWER.split())


def test_learned_stats_differ_between_interviewers(dana, scotus):
    interviewer = PolicyStats.fit(dana)
    scalia = PolicyStats.fit([t for t in scotus if t.interviewer_id == "antonin_scalia"])
    kagan = PolicyStats.fit([t for t in scotus if t.interviewer_id == "elena_kagan"])
    # The technical interviewer closes most interviews ("we're at time, thanks"); an oral argument
    # thread of one justice almost never does (0.09 against 0.003).
    assert interviewer.rate(Move.WRAP_UP) > 5 * scalia.rate(Move.WRAP_UP)
    # Two justices: Kagan presses the advocate more, Scalia moves on more (probe 0.30 against 0.17 on
    # this fixture, 0.32 against 0.19 on the full dev sets; the order holds in either half of the sessions).
    assert kagan.rate(Move.PROBE_DEEPER) > 1.4 * scalia.rate(Move.PROBE_DEEPER)
    assert scalia.rate(Move.MOVE_ON) > kagan.rate(Move.MOVE_ON)
