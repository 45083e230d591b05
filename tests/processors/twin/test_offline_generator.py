import pytest

from processors.twin.corpus import InterviewerTurn, chronological_split, exchanges, interviewer_turns
from processors.twin.offline_generator import Exemplar, OfflineGenerator, generate_reply
from processors.twin.policy import Controls, Move, PolicyDecision, PolicyStats, decide_next_move
from processors.twin.style import StyleProfile
from processors.twin.text import words

CANDIDATE = "We rebuilt the onboarding flow for new teams because activation was dropping."

# One exemplar per move; the ids name the move each reply makes.
EXEMPLARS = [
    Exemplar(exemplar_id="give_hint", candidate_turn="I'm not sure how to scale the cache.",
             reply="Maybe consider what happens when the cache is cold. Have you thought about warming it?"),
    Exemplar(exemplar_id="probe_deeper", candidate_turn="We chose Postgres for the ledger.",
             reply="But doesn't that break under heavy writes? How do you square that with your latency goal?"),
    Exemplar(exemplar_id="ask_followup", candidate_turn="We redesigned the pricing page last quarter.",
             reply="What did you change on the pricing page?"),
    Exemplar(exemplar_id="shift_topic", candidate_turn="That is how the deploy works.",
             reply="Switching gears, let's talk about how you hire engineers."),
    Exemplar(exemplar_id="move_on", candidate_turn="So that was the migration.", reply="Okay, next question."),
    Exemplar(exemplar_id="wrap_up", candidate_turn="Happy to be here.", reply="Thank you so much for joining us today."),
    Exemplar(exemplar_id="open", candidate_turn="", reply="Tell me about a system you built recently."),
]


def _decision(move):
    return PolicyDecision(move=move, confidence=1.0)


def test_hand_made_exemplars_are_labelled_with_their_moves():
    assert {ex.exemplar_id: ex.labelled_move().value for ex in EXEMPLARS} == {ex.exemplar_id: ex.exemplar_id for ex in EXEMPLARS}


@pytest.mark.parametrize("move", list(Move))
def test_picks_the_exemplar_that_makes_the_decided_move(move):
    reply = OfflineGenerator().generate(CANDIDATE, [], EXEMPLARS, _decision(move))
    assert reply.source_exemplar_ids == [move.value]
    assert reply.move == move


def test_move_outweighs_a_closer_candidate_turn():
    # The follow-up exemplar answered almost the same words, yet the policy asked for a hint.
    near = Exemplar(exemplar_id="near", candidate_turn=CANDIDATE, reply="What did you change in the onboarding flow?")
    reply = OfflineGenerator().generate(CANDIDATE, [], [near, EXEMPLARS[0]], _decision(Move.GIVE_HINT))
    assert reply.source_exemplar_ids == ["give_hint"]


def test_follow_up_swaps_in_the_candidates_phrase():
    reply = OfflineGenerator().generate(CANDIDATE, [], EXEMPLARS, _decision(Move.ASK_FOLLOWUP))
    assert "onboarding flow" in reply.text
    assert "pricing page" not in reply.text
    assert reply.text.endswith("?")
    assert any(n.startswith("substituted 'pricing page'") for n in reply.notes)


def test_probe_without_a_reference_appends_the_interviewers_own_template():
    turns = [InterviewerTurn("Well, what about the deadline?", "x") for _ in range(5)]
    profile = StyleProfile.fit(turns)
    reply = OfflineGenerator(profile).generate(CANDIDATE, [], EXEMPLARS, _decision(Move.PROBE_DEEPER))
    assert reply.source_exemplar_ids == ["probe_deeper"]
    assert reply.text.endswith("What about the onboarding flow?")


def _profile_with_lead_ins():
    turns = [InterviewerTurn(f"Well, what about the cache number {i}? Is that right?", "We cache it.") for i in range(10)]
    turns += [InterviewerTurn("Short one.", None)] * 10
    return StyleProfile.fit(turns)


LONG = Exemplar(
    exemplar_id="long", candidate_turn="We shard the ledger by customer.",
    reply="I have read the design doc. It is long and it covers a lot of ground. Sharding by customer is common. "
          "What happens when one customer outgrows a shard? We can come back to costs later.",
)


def test_terse_keeps_only_the_question():
    reply = OfflineGenerator(_profile_with_lead_ins()).generate(
        "We shard the ledger by customer id.", [], [LONG], _decision(Move.PROBE_DEEPER), Controls(verbosity="terse"))
    assert reply.text == "What happens when one customer outgrows a shard?"


def test_verbose_keeps_the_line_and_adds_a_habitual_lead_in():
    reply = OfflineGenerator(_profile_with_lead_ins()).generate(
        "We shard the ledger by customer id.", [], [LONG], _decision(Move.PROBE_DEEPER), Controls(verbosity="verbose"))
    assert reply.text.startswith("Well, I have read")
    assert "outgrows a shard?" in reply.text and "costs later." in reply.text


def test_same_seed_same_reply_and_temperature_draws_among_top_k():
    similar = [
        Exemplar(exemplar_id=f"f{i}", candidate_turn=f"We redesigned the pricing page {i}.",
                 reply=f"What did you change on the pricing page, part {i}?")
        for i in range(5)
    ]
    gen = OfflineGenerator(top_k=5)
    picks = [gen.generate(CANDIDATE, [], similar, _decision(Move.ASK_FOLLOWUP), seed=s, temperature=1.0)
             for s in range(12)]
    again = [gen.generate(CANDIDATE, [], similar, _decision(Move.ASK_FOLLOWUP), seed=s, temperature=1.0)
             for s in range(12)]
    assert [p.text for p in picks] == [p.text for p in again]
    assert len({p.source_exemplar_ids[0] for p in picks}) > 1
    greedy = {gen.generate(CANDIDATE, [], similar, _decision(Move.ASK_FOLLOWUP), seed=s).text for s in range(5)}
    assert len(greedy) == 1


def test_without_exemplars_uses_a_template_or_refuses():
    with pytest.raises(ValueError, match="no exemplars"):
        generate_reply(CANDIDATE, [], [], StyleProfile(), _decision(Move.ASK_FOLLOWUP))
    profile = StyleProfile.fit([InterviewerTurn("So what about the deadline?", "x")] * 4)
    reply = generate_reply(CANDIDATE, [], [], profile, _decision(Move.ASK_FOLLOWUP))
    assert reply.text == "What about the onboarding flow?" and reply.source_exemplar_ids == []


def _allowed_words(reply, exemplars, candidate, profile):
    ids = set(reply.source_exemplar_ids)
    allowed = set()
    for ex in exemplars:
        if ex.key in ids:
            allowed |= {w.lower() for w in words(ex.reply)}
    allowed |= {w.lower() for w in words(candidate)}
    for p in profile.lead_ins + profile.question_templates:
        allowed |= {w.lower() for w in words(p.text)}
    return allowed


def _real_setup(transcripts, iid, pool_size=150):
    sessions = [t for t in transcripts if t.interviewer_id == iid]
    split = chronological_split(sessions)
    profile = StyleProfile.fit(interviewer_turns(split.train), iid)
    stats = PolicyStats.fit(split.train, iid)
    pool = [Exemplar.from_exchange(e) for t in split.train[-8:] for e in exchanges(t)][-pool_size:]
    pool = [e.model_copy(update={"move": e.labelled_move()}) for e in pool]  # label once, not per request
    return split, profile, stats, pool


@pytest.mark.parametrize("iid", ["elena_kagan", "antonin_scalia"])
def test_replies_on_real_data_stay_in_the_interviewers_words(scotus, iid):
    split, profile, stats, pool = _real_setup(scotus, iid)
    gen = OfflineGenerator(profile)
    test_session = split.test[0]
    checked = 0
    for ex in exchanges(test_session)[:8]:
        if ex.candidate_turn is None:
            continue
        history = test_session.turns[: ex.index - 1]
        decision = decide_next_move(history, ex.candidate_turn.text, stats, seed=1)
        reply = gen.generate(ex.candidate_turn.text, history, pool, decision, seed=1)
        assert reply.text and reply.source_exemplar_ids
        extra = {w.lower() for w in words(reply.text)} - _allowed_words(reply, pool, ex.candidate_turn.text, profile)
        assert not extra, (reply.text, extra)
        checked += 1
    assert checked >= 5


def test_semantic_ranking_with_minilm_prefers_the_paraphrased_situation(embedder):
    # Same move, different situations: MiniLM must find the one that matches the candidate's turn.
    pool = [
        Exemplar(exemplar_id="db", candidate_turn="Our database kept timing out under load.",
                 reply="What did you change in the database?"),
        Exemplar(exemplar_id="hire", candidate_turn="I hired three engineers for my team last year.",
                 reply="What did you look for in the engineers?"),
    ]
    candidate = "We recruited a couple of developers to grow the group."
    ranked = OfflineGenerator(embedder=embedder).rank(candidate, [], pool, _decision(Move.ASK_FOLLOWUP))
    assert [r.exemplar.exemplar_id for r in ranked] == ["hire", "db"]
    assert ranked[0].parts["candidate"] > ranked[1].parts["candidate"]


def test_exemplar_from_exchange_keeps_ids_and_previous_question(scotus):
    tr = scotus[0]
    ex = exchanges(tr)[3]
    assert ex.previous_interviewer_turn is not None  # the fixture's first session: 24 interviewer turns
    exemplar = Exemplar.from_exchange(ex, score=0.5)
    assert exemplar.exemplar_id == f"{tr.session_id}#{ex.index}" and exemplar.key == exemplar.exemplar_id
    assert exemplar.reply == ex.interviewer_reply.text
    if ex.previous_interviewer_turn is not None:
        assert exemplar.previous_interviewer_turn == ex.previous_interviewer_turn.text


def test_own_thread_offers_earlier_lines_but_not_the_latest_or_loops():
    from processors.twin.corpus import Turn
    from processors.twin.offline_generator import own_thread_exemplars

    turns = [Turn(role="interviewer", text="Tell me about the ledger."), Turn(role="candidate", text="It is append-only."),
             Turn(role="interviewer", text="Why append-only?"), Turn(role="candidate", text="Audits."),
             Turn(role="interviewer", text="Why append-only?"), Turn(role="candidate", text="Audits, again."),
             Turn(role="interviewer", text="Who reads the audit log?"), Turn(role="candidate", text="Finance."),
             Turn(role="interviewer", text="And how long do you keep it?")]
    own = own_thread_exemplars(turns, "s1", 0.4)
    # The latest two lines are left out; "Why append-only?" was said twice already.
    assert [e.reply for e in own] == ["Tell me about the ledger."]
    assert own[0].exemplar_id == "thread:s1#0" and own[0].score == 0.4 and own[0].session_id == "s1"
    assert own_thread_exemplars(turns[:3], "s1", 0.4) == []


def test_the_standing_ask_is_what_the_latest_line_asked_and_only_that():
    from processors.twin.corpus import Turn
    from processors.twin.offline_generator import standing_ask_exemplar

    turns = [Turn(role="interviewer", text="Thanks. Tell me about the ledger you built."),
             Turn(role="candidate", text="It is append-only.")]
    again = standing_ask_exemplar(turns, "s1", 0.3)
    assert again.reply == "Tell me about the ledger you built." and again.exemplar_id == "thread:s1#0"
    assert again.score == 0.3 and again.session_id == "s1"
    # The latest line asked nothing: an earlier question was answered then, so there is none to ask again.
    said = [*turns, Turn(role="interviewer", text="That makes sense to me."), Turn(role="candidate", text="Ok.")]
    assert standing_ask_exemplar(said, "s1", 0.3) is None
    assert standing_ask_exemplar([Turn(role="candidate", text="Hi.")], "s1", 0.3) is None


def test_a_line_the_safety_checks_refuse_gives_way_to_the_next_candidate():
    from processors.twin.grounding import SessionState

    session = SessionState.from_history([], CANDIDATE)
    first = OfflineGenerator().generate(CANDIDATE, [], EXEMPLARS, _decision(Move.ASK_FOLLOWUP), session=session)
    refused = first.text
    second = OfflineGenerator().generate(CANDIDATE, [], EXEMPLARS, _decision(Move.ASK_FOLLOWUP), session=session,
                                         acceptable=lambda text: text != refused)
    assert second.text and second.text != refused
    assert second.source_exemplar_ids != first.source_exemplar_ids
    assert any("failed the safety checks" in n for n in second.notes) and second.refused == 1
    nothing = OfflineGenerator().generate(CANDIDATE, [], EXEMPLARS, _decision(Move.ASK_FOLLOWUP), session=session,
                                          acceptable=lambda text: False)
    assert nothing.text == ""  # the engine falls back on the interviewer's own safe lines


def test_a_line_naming_another_sessions_people_gives_way_to_one_that_fits_here():
    from processors.twin.grounding import SessionState

    session = SessionState.from_history([], CANDIDATE)
    elsewhere = Exemplar(exemplar_id="elsewhere", candidate_turn="We moved the Larkspur billing to a new provider.",
                         context="Candidate: At Larkspur we rebuilt billing on a new provider.",
                         reply="What did you change in the onboarding flow at Larkspur?")
    here = Exemplar(exemplar_id="here", candidate_turn="We redesigned the pricing page last quarter.",
                    reply="What did you change on the pricing page?")

    def reply(common):
        return OfflineGenerator(common_names=common).generate(
            CANDIDATE, [], [elsewhere, here], _decision(Move.ASK_FOLLOWUP), session=session, learned_scores=[2.0, 1.0])

    assert reply([]).source_exemplar_ids == ["here"]
    assert reply([]).other_session == 1 and any("named another session's" in n for n in reply([]).notes)
    assert reply(["Larkspur"]).source_exemplar_ids == ["elsewhere"]  # a name every session hears stays
    # Versions trained before the table, and a line no other can replace, say it as before.
    assert reply(None).source_exemplar_ids == ["elsewhere"]
    alone = OfflineGenerator(common_names=[]).generate(CANDIDATE, [], [elsewhere], _decision(Move.ASK_FOLLOWUP),
                                                       session=session)
    assert alone.source_exemplar_ids == ["elsewhere"] and "Larkspur" in alone.text
