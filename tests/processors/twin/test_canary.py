"""The canary's pure parts: the decision rule, the session split, the thresholds, the online scores."""

from __future__ import annotations

import pytest

from processors.twin.canary import (ArmStats, CanaryError, Thresholds, decide, expected_arms, routes_to_candidate,
                                   safety_p_value)

TH = Thresholds(min_samples=20, score_margin=0.05, safety_margin=0.0)


def arm(version: int, scored: int, mean: float | None, interventions: int = 0, samples: int | None = None) -> ArmStats:
    return ArmStats(version, samples if samples is not None else scored, scored, mean, interventions)


@pytest.mark.parametrize(("candidate", "baseline", "th", "action", "why"), [
    (arm(2, 19, 0.1), arm(1, 50, 0.6), TH, "wait", "19/20 candidate"),              # too few candidate samples
    (arm(2, 50, 0.1), arm(1, 19, 0.6), TH, "wait", "19/20 baseline"),               # too few baseline samples
    (arm(2, 20, 0.40), arm(1, 20, 0.50), TH, "rollback", "score"),                  # 0.10 worse > margin
    (arm(2, 20, 0.46), arm(1, 20, 0.50), TH, "promote", "as good"),                 # 0.04 worse: within margin
    (arm(2, 20, 0.45), arm(1, 20, 0.50), TH, "promote", "as good"),                 # exactly the margin is not worse
    (arm(2, 20, 0.70), arm(1, 20, 0.50), TH, "promote", "as good"),                 # better
    (arm(2, 20, 0.70, 4), arm(1, 20, 0.50, 0), TH, "rollback", "safety"),           # better scores do not buy safety
    (arm(2, 20, 0.40, 4), arm(1, 20, 0.50, 0), TH, "rollback", "safety"),           # safety is reported first
    (arm(2, 20, 0.50, 1), arm(1, 20, 0.50, 0), TH, "promote", "as good"),           # 1/20 vs 0/20 is noise (p=.16)
    (arm(2, 20, 0.50, 1), arm(1, 20, 0.50, 1), TH, "promote", "as good"),           # the same rate is not higher
    (arm(2, 20, 0.50, 4), arm(1, 20, 0.50, 0), Thresholds(20, 0.05, 0.2), "promote", "as good"),  # within its margin
    (arm(2, 20, 0.50, 4), arm(1, 20, 0.50, 0), Thresholds(20, safety_alpha=0.01), "promote", "as good"),  # p=.035
    (arm(2, 20, 0.50, 8, samples=80), arm(1, 20, 0.5, 2, samples=20), TH, "promote", "as good"),  # rate, not count
    (arm(2, 20, 0.50), arm(1, 20, 0.50), Thresholds(20, promote_samples=40), "wait", "20/40 samples before"),
    (arm(2, 20, 0.30), arm(1, 20, 0.50), Thresholds(20, promote_samples=40), "rollback", "score"),  # no waiting to roll back
    (arm(2, 40, 0.50), arm(1, 40, 0.50), Thresholds(20, auto_promote=False), "wait", "promote by hand"),
    (arm(2, 40, 0.30), arm(1, 40, 0.50), Thresholds(20, auto_promote=False), "rollback", "score"),
], ids=["few-candidate", "few-baseline", "worse", "slightly-worse", "at-margin", "better", "less-safe-but-better",
        "less-safe-and-worse", "one-intervention-is-noise", "equally-unsafe", "safety-margin", "stricter-alpha",
        "rate-not-count", "promote-needs-more",
        "rollback-needs-min-only", "manual-promotion", "manual-still-rolls-back"])
def test_decision_table(candidate, baseline, th, action, why):
    decision = decide(candidate, baseline, th)
    assert decision.action == action
    assert why in decision.reason


def test_safety_p_value_is_a_one_sided_two_proportion_test():
    # 4/20 against 0/20: pooled rate 0.1, standard error 0.0949, z 2.108, upper tail 0.0175
    assert safety_p_value(arm(2, 20, 0.5, 4), arm(1, 20, 0.5, 0)) == pytest.approx(0.0175, abs=5e-4)
    assert safety_p_value(arm(2, 20, 0.5, 0), arm(1, 20, 0.5, 4)) > 0.95   # a safer candidate is not "higher"
    assert safety_p_value(arm(2, 20, 0.5, 0), arm(1, 20, 0.5, 0)) == 1.0   # no interventions anywhere
    assert safety_p_value(arm(2, 0, None), arm(1, 20, 0.5, 1)) == 1.0       # an arm without samples
    # the margin shifts the null: 4/20 vs 0/20 is not 0.2 higher
    assert safety_p_value(arm(2, 20, 0.5, 4), arm(1, 20, 0.5, 0), margin=0.2) == pytest.approx(0.5)


def test_a_version_compared_with_itself_is_rarely_rolled_back_for_safety():
    import random

    rng = random.Random(7)
    rollbacks = 0
    for _ in range(400):  # both arms draw from the same 5% intervention rate
        c = sum(rng.random() < 0.05 for _ in range(60))
        b = sum(rng.random() < 0.05 for _ in range(60))
        rollbacks += decide(arm(2, 60, 0.5, c), arm(1, 60, 0.5, b), TH).action == "rollback"
    assert rollbacks / 400 <= 0.06  # about alpha (0.055 with this seed), not the 38% a raw "higher than" rule gives


def test_rollback_reason_names_both_versions_and_the_numbers():
    reason = decide(arm(7, 30, 0.31), arm(6, 30, 0.52), TH).reason
    assert "v7" in reason and "v6" in reason and "0.310" in reason and "0.520" in reason


def test_routing_is_stable_per_session_and_close_to_the_share():
    sessions = [f"s-{i}" for i in range(4000)]
    first = [routes_to_candidate("c1", s, 0.3) for s in sessions]
    assert first == [routes_to_candidate("c1", s, 0.3) for s in sessions]  # a session keeps its version
    assert 0.27 < sum(first) / len(first) < 0.33
    other = [routes_to_candidate("c2", s, 0.3) for s in sessions]
    assert other != first  # another canary draws its own sessions
    assert all(routes_to_candidate("c1", s, 1.0) for s in sessions[:50])
    assert not any(routes_to_candidate("c1", s, 0.0) for s in sessions[:50])  # a rolled-back canary


def test_growing_the_share_keeps_the_sessions_already_on_the_candidate():
    sessions = [f"s-{i}" for i in range(500)]
    small = {s for s in sessions if routes_to_candidate("c1", s, 0.1)}
    large = {s for s in sessions if routes_to_candidate("c1", s, 0.5)}
    assert small < large


def test_expected_arms_partitions_the_sessions():
    arms = expected_arms("c1", [f"s-{i}" for i in range(100)], 0.5)
    assert sorted(arms["candidate"] + arms["baseline"]) == sorted(f"s-{i}" for i in range(100))
    assert all(routes_to_candidate("c1", s, 0.5) for s in arms["candidate"])


@pytest.mark.parametrize("kwargs", [{"min_samples": 0}, {"score_margin": -0.1}, {"safety_margin": 1.5},
                                    {"promote_samples": 0}, {"safety_alpha": 0.0}, {"safety_alpha": 1.0}])
def test_bad_thresholds_are_refused(kwargs):
    with pytest.raises(CanaryError) as exc:
        Thresholds(**kwargs)
    assert exc.value.status == 422


def test_thresholds_round_trip_through_their_columns(cfg):
    th = Thresholds.from_settings(cfg, min_samples=12, score_margin=None, promote_samples=30, auto_promote=False)
    assert th.min_samples == 12 and th.score_margin == cfg.CANARY_SCORE_MARGIN and th.promote_at == 30
    assert Thresholds.from_row(th.min_samples, th.to_json()) == th
    assert Thresholds(min_samples=40, promote_samples=10).promote_at == 40  # never before min_samples


# --------------------------------------------------------------------------- online scores (real MiniLM)
def test_online_scores_rank_a_relevant_reply_above_gibberish(embedder):
    from processors.twin.online_scores import score_replies
    from processors.twin.style import StyleProfile
    from processors.twin.corpus import interviewer_turns, read_transcripts
    from tests.conftest import SAMPLE_CORPUS

    judge = StyleProfile.fit(interviewer_turns([p.transcript for p in read_transcripts(SAMPLE_CORPUS) if p.ok]))
    turn = "I sharded Postgres by tenant id and put pgbouncer in front of it."
    good, bad, empty = score_replies(
        ["Okay, sharded by tenant. What happens when one tenant outgrows its shard?",
         "Zor grozor dexvekgro blamontra plublabla zortra vekdex fim.", ""],
        [turn, turn, turn], judge, embedder)
    assert good["online"] > bad["online"] + 0.1
    assert good["relevance"] > bad["relevance"]
    assert empty == {"style": 0.0, "relevance": 0.0, "online": 0.0}
    opening, = score_replies(["Welcome! Tell me about yourself."], [None], judge, embedder)
    assert "relevance" not in opening and opening["online"] == opening["style"]  # nothing to be relevant to


def test_eval_samples_carry_the_version_and_the_turn():
    from processors.eval_sampling import build_sample
    from schemas.samples import sample

    reply = sample("TwinReply").model_copy(update={"profileVersion": 3, "candidateTurn": "I used a queue."})
    s = build_sample(reply)
    assert s.context["profileVersion"] == 3 and s.context["candidateTurn"] == "I used a queue."
