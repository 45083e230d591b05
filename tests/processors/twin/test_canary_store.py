"""Canary operations on the real PostgreSQL: start, roll back, promote, evaluate, route.

Profile versions are written with ``ProfileStore.save`` (no training needed here); live samples are
inserted as the eval sampler writes them and scored by the real MiniLM.
"""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from processors.twin import canary as canaries
from processors.twin.canary import CanaryError, CanaryRouter, Thresholds
from processors.twin.online_scores import LiveScorer
from processors.twin.profiles import InterviewerProfile, ProfileStore

IID = "dana"
TURN = "I sharded Postgres by tenant id and put pgbouncer in front of it."
GOOD = "Okay, sharded by tenant. What happens when one tenant outgrows its shard?"
BAD = "Zor grozor dexvekgro blamontra plublabla zortra vekdex fim."


@pytest.fixture
def profiles(postgres_dsn, tenant, dana_fitted) -> ProfileStore:
    """v1 (active), v2 and v3 of dana in a fresh tenant."""
    store = ProfileStore(postgres_dsn, ttl_s=0)
    style, policy = dana_fitted
    for v in (1, 2, 3):
        store.save(InterviewerProfile(tenant, IID, v, style, policy, {"config": {}}))
    store.activate(tenant, IID, 1)
    return store


@pytest.fixture
def db(postgres_dsn):
    """A transactional connection, as the API and CLI use (the test commits)."""
    with psycopg.connect(postgres_dsn) as conn:
        yield conn


@pytest.fixture(scope="module")
def scorer(embedder) -> LiveScorer:
    return LiveScorer(embedder)


def _start(db, tenant, **kwargs):
    kwargs.setdefault("share", 0.5)
    kwargs.setdefault("thresholds", Thresholds(min_samples=3))
    c = canaries.start(db, tenant, IID, actor="pytest", **kwargs)
    db.commit()
    return c


def _samples(pg, tenant, version, texts, *, action="none", age_s=0):
    for text in texts:
        ctx = {"history": [], "candidateTurn": TURN, "profileVersion": version,
               "safety": {"passed": action == "none", "action": action, "flags": []}}
        pg.execute("INSERT INTO eval_samples (sample_id, tenant, interviewer_id, session_id, correlation_id, context,"
                   " twin_text, source, profile_version, created_at)"
                   " VALUES (%s, %s, %s, %s, %s, %s, %s, 'live', %s, now() - make_interval(secs => %s))",
                   (f"live-{uuid.uuid4().hex}", tenant, IID, "s", uuid.uuid4().hex, json.dumps(ctx), text, version,
                    age_s))


def _audit(pg, tenant, action):
    return pg.execute("SELECT actor, resource_id, outcome, detail FROM audit_log WHERE tenant=%s AND action=%s",
                      (tenant, action)).fetchall()


def test_start_takes_the_newest_inactive_version_and_is_audited(profiles, db, pg, tenant):
    c = _start(db, tenant, share=0.25)
    assert (c.candidate_version, c.baseline_version, c.share, c.status) == (3, 1, 0.25, "running")
    [(actor, rid, _, detail)] = _audit(pg, tenant, "canary.start")
    assert actor == "pytest" and rid == c.canary_id and detail["candidateVersion"] == 3
    assert canaries.current(db, tenant, IID) == c


@pytest.mark.parametrize(("kwargs", "code"), [
    ({"candidate_version": 1}, "version_active"),
    ({"candidate_version": 9}, "unknown_version"),
    ({"share": 0.0}, "invalid_share"),
    ({"share": 1.5}, "invalid_share"),
])
def test_start_refuses_what_cannot_be_a_canary(profiles, db, tenant, kwargs, code):
    with pytest.raises(CanaryError) as exc:
        _start(db, tenant, **kwargs)
    assert exc.value.code == code


def test_one_running_canary_per_interviewer(profiles, db, tenant):
    _start(db, tenant, candidate_version=2)
    with pytest.raises(CanaryError) as exc:
        _start(db, tenant, candidate_version=3)
    assert exc.value.code == "canary_running" and exc.value.status == 409


def test_no_candidate_when_the_newest_version_is_active(profiles, db, tenant):
    profiles.activate(tenant, IID, 3)
    with pytest.raises(CanaryError) as exc:
        _start(db, tenant)
    assert exc.value.code == "no_candidate"
    with pytest.raises(CanaryError) as exc:
        canaries.start(db, f"{tenant}-nobody", IID, share=0.5, thresholds=Thresholds(), actor="pytest")
    assert exc.value.code == "unknown_interviewer" and exc.value.status == 404


def test_rollback_zeroes_the_share_and_is_audited(profiles, db, pg, tenant):
    c = _start(db, tenant)
    closed = canaries.rollback(db, tenant, IID, actor="pytest", reason="looks off")
    db.commit()
    assert (closed.status, closed.share, closed.reason, closed.decided_by) == ("rolled_back", 0.0, "looks off", "pytest")
    assert profiles.load(tenant, IID).version == 1
    [(_, rid, outcome, detail)] = _audit(pg, tenant, "canary.rollback")
    assert rid == c.canary_id and outcome == "rolled_back" and detail["reason"] == "looks off"
    with pytest.raises(CanaryError) as exc:
        canaries.rollback(db, tenant, IID, actor="pytest")
    assert exc.value.code == "no_running_canary"
    assert _start(db, tenant).status == "running"  # a new canary can start after a decision


def test_promote_activates_the_candidate_atomically(profiles, db, pg, tenant):
    _start(db, tenant, candidate_version=2)
    closed = canaries.promote(db, tenant, IID, actor="pytest")
    # Not committed yet: other connections still see v1 active and the canary running.
    assert ProfileStore(profiles.dsn, ttl_s=0).load(tenant, IID).version == 1
    assert canaries.running(pg, tenant, IID) is not None
    db.commit()
    assert closed.status == "promoted" and closed.share == 1.0
    assert [(v, a) for v, a, _ in profiles.versions(tenant, IID)] == [(1, False), (2, True), (3, False)]
    assert len(_audit(pg, tenant, "canary.promote")) == 1


def test_evaluation_waits_for_samples_then_rolls_back_a_worse_candidate(profiles, db, pg, tenant, scorer):
    c = _start(db, tenant, candidate_version=2, thresholds=Thresholds(min_samples=3))
    _samples(pg, tenant, 1, [GOOD] * 3)
    _samples(pg, tenant, 2, [BAD] * 2)
    _samples(pg, tenant, 2, [GOOD] * 5, age_s=3600)  # before the canary started: not counted
    ev = canaries.evaluate(db, c.canary_id, scorer)
    db.commit()
    assert ev.decision.action == "wait" and not ev.applied and ev.newly_scored == 5
    assert (ev.candidate.scored, ev.baseline.scored) == (2, 3)
    assert canaries.current(pg, tenant, IID).result["decision"] == "wait"

    _samples(pg, tenant, 2, [BAD])
    ev = canaries.evaluate(db, c.canary_id, scorer)
    db.commit()
    assert ev.decision.action == "rollback" and ev.applied and ev.decision.reason.startswith("score:")
    assert ev.canary.status == "rolled_back" and ev.canary.share == 0.0
    assert ev.candidate.mean_score < ev.baseline.mean_score - 0.05
    [(actor, _, _, detail)] = _audit(pg, tenant, "canary.rollback")
    assert actor == canaries.CONTROLLER and detail["result"]["candidate"]["scored"] == 3
    scores = pg.execute("SELECT scores FROM eval_samples WHERE tenant=%s AND profile_version=2 AND scores IS NOT NULL",
                        (tenant,)).fetchall()
    assert len(scores) == 3 and all(s["judgeVersion"] == 1 and 0 <= s["online"] <= 1 for (s,) in scores)
    assert canaries.evaluate(db, c.canary_id, scorer) is None  # decided: nothing more to do


def test_more_safety_interventions_roll_back_even_with_good_scores(profiles, db, pg, tenant, scorer):
    c = _start(db, tenant, candidate_version=2)
    _samples(pg, tenant, 1, [GOOD] * 3)
    _samples(pg, tenant, 2, [GOOD] * 3, action="replaced")  # 3/3 against 0/3: p = 0.007
    ev = canaries.evaluate(db, c.canary_id, scorer)
    db.commit()
    assert ev.canary.status == "rolled_back" and ev.decision.reason.startswith("safety:")
    assert ev.candidate.interventions == 3 and ev.baseline.interventions == 0


def test_one_intervention_in_three_is_not_enough_to_roll_back(profiles, db, pg, tenant, scorer):
    c = _start(db, tenant, candidate_version=2)
    _samples(pg, tenant, 1, [GOOD] * 3)
    _samples(pg, tenant, 2, [GOOD] * 2)
    _samples(pg, tenant, 2, [GOOD], action="replaced")  # 1/3 against 0/3: p = 0.16
    ev = canaries.evaluate(db, c.canary_id, scorer)
    db.commit()
    assert ev.canary.status == "promoted", ev.decision.reason


def test_an_equally_good_candidate_is_promoted(profiles, db, pg, tenant, scorer):
    c = _start(db, tenant, candidate_version=2)
    _samples(pg, tenant, 1, [GOOD] * 3)
    _samples(pg, tenant, 2, [GOOD] * 3)
    ev = canaries.evaluate(db, c.canary_id, scorer)
    db.commit()
    assert ev.canary.status == "promoted" and profiles.load(tenant, IID).version == 2
    assert _audit(pg, tenant, "canary.promote")[0][0] == canaries.CONTROLLER


def test_dry_run_stores_nothing(profiles, db, pg, tenant, scorer, postgres_dsn):
    _start(db, tenant, candidate_version=2)
    _samples(pg, tenant, 1, [GOOD] * 3)
    _samples(pg, tenant, 2, [BAD] * 3)
    [ev] = canaries.evaluate_running(lambda: psycopg.connect(postgres_dsn), scorer, apply=False, tenant=tenant)
    assert ev.decision.action == "rollback" and not ev.applied
    assert canaries.running(pg, tenant, IID) is not None
    assert pg.execute("SELECT count(*) FROM eval_samples WHERE tenant=%s AND scores IS NOT NULL",
                      (tenant,)).fetchone()[0] == 0


def test_a_canary_whose_baseline_was_replaced_is_aborted(profiles, db, pg, tenant, scorer):
    c = _start(db, tenant, candidate_version=2)
    profiles.activate(tenant, IID, 3)  # someone trained and activated another version meanwhile
    ev = canaries.evaluate(db, c.canary_id, scorer)
    db.commit()
    assert ev.canary.status == "aborted" and ev.canary.share == 0.0 and "v1 is no longer active" in ev.canary.reason
    assert len(_audit(pg, tenant, "canary.abort")) == 1


def test_a_candidate_activated_by_hand_counts_as_promoted(profiles, db, pg, tenant, scorer):
    c = _start(db, tenant, candidate_version=2)
    profiles.activate(tenant, IID, 2)
    ev = canaries.evaluate(db, c.canary_id, scorer)
    db.commit()
    assert ev.canary.status == "promoted"


def test_a_canary_held_by_another_evaluator_is_skipped(profiles, db, tenant, scorer, postgres_dsn):
    c = _start(db, tenant, candidate_version=2)
    with psycopg.connect(postgres_dsn) as other:
        other.execute("SELECT 1 FROM canary_deployments WHERE canary_id=%s FOR UPDATE", (c.canary_id,))
        assert canaries.evaluate(db, c.canary_id, scorer) is None
        db.rollback()


def test_deleting_the_candidate_version_deletes_its_canary(profiles, db, pg, tenant):
    _start(db, tenant, candidate_version=2)
    assert profiles.discard(tenant, IID, 2)
    assert canaries.current(pg, tenant, IID) is None


# --------------------------------------------------------------------------- routing
def test_router_splits_sessions_and_returns_to_the_baseline_after_rollback(profiles, db, tenant, postgres_dsn):
    c = _start(db, tenant, candidate_version=2, share=0.5)
    router = CanaryRouter(postgres_dsn, ttl_s=0)
    sessions = [f"s-{i}" for i in range(40)]
    expected = canaries.expected_arms(c.canary_id, sessions, 0.5)
    routes = {s: router.route(profiles, tenant, IID, s) for s in sessions}
    assert {s for s, r in routes.items() if r.arm == "candidate"} == set(expected["candidate"])
    assert all(r.profile.version == (2 if r.arm == "candidate" else 1) for r in routes.values())
    assert 0 < len(expected["candidate"]) < 40

    canaries.rollback(db, tenant, IID, actor="pytest")
    db.commit()
    after = [router.route(profiles, tenant, IID, s) for s in sessions]
    assert all(r.profile.version == 1 and r.arm is None for r in after)


def test_router_caches_for_its_ttl(profiles, db, tenant, postgres_dsn):
    c = _start(db, tenant, candidate_version=2, share=1.0)
    router = CanaryRouter(postgres_dsn, ttl_s=60)
    assert router.route(profiles, tenant, IID, "s").profile.version == 2
    canaries.rollback(db, tenant, IID, actor="pytest")
    db.commit()
    assert router.route(profiles, tenant, IID, "s").profile.version == 2  # within the TTL
    router.invalidate(tenant, IID)
    assert router.route(profiles, tenant, IID, "s").profile.version == 1
    assert c.canary_id


def test_router_ignores_a_canary_whose_baseline_is_no_longer_active(profiles, db, tenant, postgres_dsn):
    _start(db, tenant, candidate_version=2, share=1.0)
    profiles.activate(tenant, IID, 3)
    route = CanaryRouter(postgres_dsn, ttl_s=0).route(profiles, tenant, IID, "s")
    assert route.profile.version == 3 and route.arm is None


def test_router_answers_with_the_active_version_when_the_canary_lookup_fails(profiles, tenant):
    broken = CanaryRouter("postgresql://twin:twin@127.0.0.1:1/twin?connect_timeout=1", ttl_s=0)
    route = broken.route(profiles, tenant, IID, "s")
    assert route.profile.version == 1 and route.arm is None
    assert broken.route(profiles, f"{tenant}-x", IID, "s").profile is None  # no active version: nothing to answer
