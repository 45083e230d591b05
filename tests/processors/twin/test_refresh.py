"""Periodic refresh (processors/twin/refresh.py): the rules of when it is due, as pure logic, and one
refresh through its rows on the real PostgreSQL, from the sessions that make it due to the canary's
decision. The trainer and the canary controller are not run here: a job's success is written as the
trainer writes it, and the canary is promoted or rolled back by the canary module's own functions
(tests/e2e/test_refresh_flow.py runs the whole loop through Kafka and the workers)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from processors.twin import canary as canaries
from processors.twin import refresh as refreshes
from processors.twin.canary import Thresholds
from processors.twin.config import ConfigStore, EffectiveRefresh, TwinConfig
from processors.twin.profiles import InterviewerProfile, ProfileStore

IID = "dana"
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc)


def _status(**kw) -> refreshes.RefreshStatus:
    base = dict(tenant="acme", interviewer_id=IID, policy=EffectiveRefresh(enabled=True, minNewSessions=3, maxDays=7),
                newest_version=2, newest_version_at=NOW - timedelta(days=1), trained_on="live:acme", active_version=2,
                new_sessions=0, busy=None, last_run=None)
    return refreshes.RefreshStatus(**{**base, **kw})


def test_a_refresh_is_due_at_the_session_threshold_or_when_the_version_is_old():
    assert refreshes.due(_status(new_sessions=2), NOW) is None
    assert "3 new consented sessions" in refreshes.due(_status(new_sessions=3), NOW)
    # Old enough, but nothing new: retraining on the same data would change nothing.
    old = NOW - timedelta(days=8)
    assert refreshes.due(_status(newest_version_at=old), NOW) is None
    assert "over 7 days old" in refreshes.due(_status(newest_version_at=old, new_sessions=1), NOW)


def test_no_refresh_when_off_paused_busy_or_not_trained_on_live_sessions():
    due = {"new_sessions": 10}
    assert refreshes.due(_status(**due), NOW) is not None
    assert refreshes.due(_status(policy=EffectiveRefresh(minNewSessions=3), **due), NOW) is None  # off by default
    paused = EffectiveRefresh(enabled=True, paused=True, minNewSessions=3)
    assert refreshes.due(_status(policy=paused, **due), NOW) is None
    assert refreshes.due(_status(busy="a canary is running", **due), NOW) is None
    assert refreshes.due(_status(trained_on="ds_scotus", **due), NOW) is None
    assert refreshes.due(_status(trained_on="live:other", **due), NOW) is None
    assert refreshes.due(_status(active_version=None, **due), NOW) is None


# --------------------------------------------------------------------------- on PostgreSQL
@pytest.fixture
def profiles(postgres_dsn, tenant, dana_fitted) -> ProfileStore:
    """v1 of dana, active, trained on the tenant's live sessions."""
    store = ProfileStore(postgres_dsn, ttl_s=0)
    style, policy = dana_fitted
    store.save(InterviewerProfile(tenant, IID, 1, style, policy,
                                  {"config": {}, "provenance": {"datasetRef": f"live:{tenant}"}}))
    store.activate(tenant, IID, 1)
    yield store
    store.close()


@pytest.fixture
def configs(postgres_dsn, tenant) -> ConfigStore:
    store = ConfigStore(postgres_dsn, ttl_s=0)
    store.write(tenant, None, TwinConfig.model_validate({"refresh": {"enabled": True, "minNewSessions": 3,
                                                                     "canaryShare": 0.25}}), actor="pytest")
    yield store
    store.close()


def _sessions(pg, tenant: str, n: int, *, consent: bool = True, status: str = "ended") -> list[str]:
    ids = [f"s-{uuid.uuid4().hex[:10]}" for _ in range(n)]
    for sid in ids:
        pg.execute("INSERT INTO sessions (session_id, tenant, interviewer_id, consent_training, status)"
                   " VALUES (%s, %s, %s, %s, %s)", (sid, tenant, IID, consent, status))
    return ids


def _tick(postgres_dsn, configs, **kw):
    return refreshes.tick(lambda: psycopg.connect(postgres_dsn), configs, Thresholds(min_samples=3), **kw)


def _run(pg, tenant):
    return refreshes.runs(pg, tenant, IID, limit=1)[0]


def _trained(pg, profiles, dana_fitted, tenant, job) -> None:
    """The trainer's work for a refresh's job: every session's split stored, then version 2, not
    activated, and the job's success."""
    pg.execute("INSERT INTO interviewer_splits (tenant, interviewer_id, session_id, split, position, dataset_ref)"
               " SELECT tenant, interviewer_id, session_id, 'train', 0, %s FROM sessions WHERE tenant=%s"
               " AND consent_training ON CONFLICT DO NOTHING", (f"live:{tenant}", tenant))
    style, policy = dana_fitted
    profiles.save(InterviewerProfile(tenant, IID, 2, style, policy,
                                     {"config": {}, "provenance": {"datasetRef": f"live:{tenant}"}}))
    pg.execute("UPDATE training_jobs SET status='succeeded', version=2 WHERE job_id=%s", (job["jobId"],))


def _actions(pg, tenant):
    return [r[0] for r in pg.execute("SELECT action FROM audit_log WHERE tenant=%s AND action LIKE 'refresh.%%'"
                                     " ORDER BY ts", (tenant,)).fetchall()]


def test_consented_ended_sessions_make_it_due_and_queue_one_training_job(postgres_dsn, pg, tenant, profiles, configs):
    _sessions(pg, tenant, 2)
    _sessions(pg, tenant, 3, consent=False)  # not consented: never counted
    _sessions(pg, tenant, 3, status="active")  # not ended yet
    assert _tick(postgres_dsn, configs, only=(tenant, IID)) == []
    _sessions(pg, tenant, 1)

    [job] = _tick(postgres_dsn, configs, only=(tenant, IID))
    assert (job["datasetRef"], job["options"]) == (f"live:{tenant}", {"activate": False})
    row = pg.execute("SELECT status, dataset_ref FROM training_jobs WHERE job_id=%s", (job["jobId"],)).fetchone()
    assert row == ("queued", f"live:{tenant}")
    run = _run(pg, tenant)
    assert (run.status, run.new_sessions, run.baseline_version, run.job_id) == ("training", 3, 1, job["jobId"])
    assert _actions(pg, tenant) == ["refresh.train"]
    # While it runs nothing else starts, and `twin refresh run` is refused too.
    assert _tick(postgres_dsn, configs, only=(tenant, IID), force=True) == []
    st = refreshes.status(pg, tenant, IID, configs.load(tenant, IID).refresh)
    assert st.busy == f"refresh {run.run_id} is training"
    with pytest.raises(refreshes.RefreshError):
        with pg.transaction():
            refreshes.start_refresh(pg, st, "by hand")


def test_a_trained_refresh_goes_to_a_canary_and_ends_with_its_decision(postgres_dsn, pg, tenant, profiles, configs,
                                                                        dana_fitted):
    _sessions(pg, tenant, 3)
    [job] = _tick(postgres_dsn, configs, only=(tenant, IID))
    _trained(pg, profiles, dana_fitted, tenant, job)

    assert _tick(postgres_dsn, configs, only=(tenant, IID)) == []
    run = _run(pg, tenant)
    assert (run.status, run.candidate_version) == ("canary", 2)
    c = canaries.running(pg, tenant, IID)
    assert (c.canary_id, c.candidate_version, c.baseline_version, c.share) == (run.canary_id, 2, 1, 0.25)

    with pg.transaction():
        canaries.promote(pg, tenant, IID, actor="canary_controller", reason="score: as good")
    _tick(postgres_dsn, configs, only=(tenant, IID))
    run = _run(pg, tenant)
    assert run.status == "promoted" and run.message == "score: as good"
    assert _actions(pg, tenant) == ["refresh.train", "refresh.promoted"]
    # The sessions the new version was trained with are not new any more, even when touched later.
    assert refreshes.status(pg, tenant, IID, configs.load(tenant, IID).refresh).new_sessions == 0
    pg.execute("UPDATE sessions SET updated_at=now(), video_url='s3://late' WHERE tenant=%s", (tenant,))
    assert refreshes.status(pg, tenant, IID, configs.load(tenant, IID).refresh).new_sessions == 0


def test_a_failed_job_ends_the_refresh_and_the_next_round_can_start_another(postgres_dsn, pg, tenant, profiles,
                                                                             configs):
    _sessions(pg, tenant, 3)
    [job] = _tick(postgres_dsn, configs, only=(tenant, IID))
    # The job had split the sessions before it failed: no version was trained with them, still new.
    pg.execute("INSERT INTO interviewer_splits (tenant, interviewer_id, session_id, split, position, dataset_ref)"
               " SELECT tenant, interviewer_id, session_id, 'train', 0, %s FROM sessions WHERE tenant=%s",
               (f"live:{tenant}", tenant))
    pg.execute("UPDATE training_jobs SET status='failed', message='out of memory' WHERE job_id=%s", (job["jobId"],))
    [again] = _tick(postgres_dsn, configs, only=(tenant, IID))
    assert again["jobId"] != job["jobId"]
    first = refreshes.runs(pg, tenant, IID)[1]
    assert first.status == "failed" and "out of memory" in first.message
    assert _actions(pg, tenant) == ["refresh.train", "refresh.fail", "refresh.train"]


def test_pause_holds_the_refresh_and_resume_releases_it(postgres_dsn, pg, tenant, profiles, configs):
    _sessions(pg, tenant, 3)
    refreshes.set_paused(configs, tenant, IID, True, actor="pytest")
    assert configs.load(tenant, IID).refresh.paused is True
    assert _tick(postgres_dsn, configs, only=(tenant, IID)) == []
    refreshes.set_paused(configs, tenant, IID, False, actor="pytest")
    assert len(_tick(postgres_dsn, configs, only=(tenant, IID))) == 1
    audited = [r[0] for r in pg.execute("SELECT action FROM audit_log WHERE tenant=%s AND resource_type='twin_config'"
                                        " ORDER BY ts", (tenant,)).fetchall()]
    assert audited[-2:] == ["refresh.pause", "refresh.resume"]


def test_each_refreshed_version_is_compared_once(postgres_dsn, pg, tenant, profiles, configs, dana_fitted, cfg):
    _sessions(pg, tenant, 3)
    [job] = _tick(postgres_dsn, configs, only=(tenant, IID))
    _trained(pg, profiles, dana_fitted, tenant, job)
    assert not [r for r in refreshes.pending_comparisons(pg, limit=1000) if r.tenant == tenant]
    _tick(postgres_dsn, configs, only=(tenant, IID))  # the canary starts: now it is due for a comparison
    [run] = [r for r in refreshes.pending_comparisons(pg, limit=1000) if r.tenant == tenant]
    # These sessions have no turns in the live dataset: nothing held out to compare on, said as such.
    out = refreshes.compare_run(lambda: psycopg.connect(postgres_dsn), cfg, run, engine=None)
    assert out["outcome"] == "skipped" and "held-out interviewer turns" in out["message"]
    assert not [r for r in refreshes.pending_comparisons(pg, limit=1000) if r.tenant == tenant]
    [(outcome, detail)] = pg.execute("SELECT outcome, detail FROM audit_log WHERE tenant=%s AND"
                                     " action='refresh.compare'", (tenant,)).fetchall()
    assert outcome == "skipped" and detail["versions"] == [2, 1]


def test_the_controller_looks_only_where_refresh_is_configured(postgres_dsn, pg, tenant, profiles, dana_fitted):
    assert (tenant, IID) not in refreshes._candidates(pg)  # nothing configured: off, not even looked at
    store = ConfigStore(postgres_dsn, ttl_s=0)
    try:
        store.write(tenant, IID, TwinConfig.model_validate({"refresh": {"enabled": True}}), actor="pytest")
        assert (tenant, IID) in refreshes._candidates(pg)
    finally:
        store.close()
