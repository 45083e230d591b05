"""The twin keeps learning, through the real stack: interviews captured through the gateway with
consent train a first version (on ``live:<tenant>``); with refresh enabled, the next consented
sessions reach the threshold, the refresh controller queues a training job on its own, the trainer
makes a new version without activating it, a canary of it starts and serves its hashed share, and the
canary controller promotes it, each step with its audit record. Withdrawing one session's consent
then takes it out of the live dataset the next version trains on.

Its worker runs every agent (telemetry capture, dataset growth, trainer, refresh and canary
controllers, the twin, the eval sampler) on its own topic prefix, with the controllers every second.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from processors.twin.canary import expected_arms
from processors.twin.config import ConfigStore, TwinConfig
from processors.twin.corpus import read_transcripts
from tests.conftest import SAMPLE_CORPUS
from tests.credentials import auth_headers

pytestmark = pytest.mark.e2e

TENANT = f"t-refresh-{uuid.uuid4().hex[:6]}"
IID = "dana"
MIN_SAMPLES = 4
FIRST, LATER = 4, 2  # sample sessions that train v1; sessions after it that make the refresh due


@pytest.fixture(scope="module")
def refresh_app(twin_app_factory):
    app = twin_app_factory("refresh", extra_env={
        "EVAL_SAMPLE_RATES": json.dumps({TENANT: 1.0}), "REFRESH_INTERVAL_S": "1", "CANARY_EVAL_INTERVAL_S": "1",
        "CANARY_ROUTE_TTL_S": "0.5", "CANARY_MIN_SAMPLES": str(MIN_SAMPLES),
        # A version retrained on a superset of the same interviews is as good; a wide margin absorbs
        # the noise of a few samples.
        "CANARY_SCORE_MARGIN": "0.3"})
    yield app
    app.gateway.stop()
    app.worker.stop()


def _wait(check, timeout: float, what: str, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def _capture(http: httpx.Client, pg, transcript, session_id: str) -> None:
    """One interview through the capture API: the session with consent, its turns as telemetry, and,
    once the turns are stored, its end."""
    created = http.post("/api/interviews/session", json={"sessionId": session_id, "interviewerId": IID,
                                                         "consentRecording": True, "consentTraining": True})
    assert created.status_code == 201, created.text
    t0 = datetime(2026, 11, 2, 10, tzinfo=timezone.utc)
    events = [{"type": "turn", "ts": (t0 + timedelta(seconds=20 * i)).isoformat(), "sessionId": session_id,
               "role": turn.role, "text": turn.text, "tokens": len(turn.text.split())}
              for i, turn in enumerate(transcript.turns)]
    for i in range(0, len(events), 25):
        resp = http.post("/api/interviews/session/telemetry", json={"interviewSessionId": session_id,
                                                                    "events": events[i:i + 25]})
        assert resp.status_code == 202, resp.text
    _wait(lambda: pg.execute("SELECT count(*) FROM turns WHERE tenant=%s AND session_id=%s",
                             (TENANT, session_id)).fetchone()[0] == len(events), 60, f"the turns of {session_id}")
    ended = http.patch(f"/api/interviews/session/{session_id}", json={"status": "ended"})
    assert ended.status_code == 200, ended.text


def _respond(http: httpx.Client, session: str, i: int) -> int:
    resp = http.post("/api/digital-twin/respond", json={
        "interviewerId": IID, "sessionId": session, "history": [{"role": "interviewer", "text": "Tell me about a "
                                                                 "system you built."}],
        "candidateTurn": f"I built a billing pipeline, version {i}, that charges customers from a cron job."})
    assert resp.status_code == 200, resp.text
    return resp.json()["profileVersion"]


def _actions(pg) -> list[str]:
    return [r[0] for r in pg.execute("SELECT action FROM audit_log WHERE tenant=%s ORDER BY ts", (TENANT,)).fetchall()]


def test_new_consented_sessions_refresh_the_twin_through_a_canary(refresh_app, pg, postgres_dsn):
    transcripts = [p.transcript for p in read_transcripts(SAMPLE_CORPUS) if p.ok]
    assert len(transcripts) >= FIRST + LATER
    with httpx.Client(base_url=refresh_app.url, headers=auth_headers(TENANT),
                      timeout=60) as http:
        for k in range(FIRST):
            _capture(http, pg, transcripts[k], f"live-{k}")
        job = http.post("/api/digital-twin/train", json={"interviewerId": IID, "datasetRef": f"live:{TENANT}"})
        assert job.status_code == 202, job.text
        first = _wait(lambda: (lambda b: b if b["status"] in ("succeeded", "failed") else None)(
            http.get(f"/api/digital-twin/train/{job.json()['jobId']}").json()), 180, "the first version")
        assert (first["status"], first["version"]) == ("succeeded", 1), first

        configs = ConfigStore(postgres_dsn)
        try:
            configs.write(TENANT, None, TwinConfig.model_validate(
                {"refresh": {"enabled": True, "minNewSessions": LATER, "canaryShare": 0.5}}), actor="pytest")
        finally:
            configs.close()
        for k in range(FIRST, FIRST + LATER):
            _capture(http, pg, transcripts[k], f"live-{k}")
        threshold_at = time.monotonic()

        run = _wait(lambda: pg.execute("SELECT run_id, job_id, status, canary_id, candidate_version, new_sessions"
                                       " FROM refresh_runs WHERE tenant=%s AND status='canary'",
                                       (TENANT,)).fetchone(), 240, "the refresh's canary")
        print(f"threshold session -> running canary: {time.monotonic() - threshold_at:.1f}s")
        run_id, job_id, _, canary_id, candidate, new_sessions = run
        assert (candidate, new_sessions) == (2, LATER)
        trained = pg.execute("SELECT status, dataset_ref, options, result->'split' FROM training_jobs"
                             " WHERE job_id=%s", (job_id,)).fetchone()
        assert trained[:3] == ("succeeded", f"live:{TENANT}", {"activate": False})
        assert sum(trained[3].values()) == FIRST + LATER  # the new sessions joined the old ones
        assert trained[3]["train"] > first["result"]["split"]["train"]  # and the training part grew
        assert pg.execute("SELECT active FROM interviewer_profiles WHERE tenant=%s AND interviewer_id=%s"
                          " AND version=2", (TENANT, IID)).fetchone() == (False,)

        # The canary serves its hashed share: each session's version is the routing hash's.
        n = MIN_SAMPLES
        while min(map(len, expected_arms(canary_id, [f"s-{i}" for i in range(n)], 0.5).values())) < MIN_SAMPLES:
            n += 1
        arms = expected_arms(canary_id, [f"s-{i}" for i in range(n)], 0.5)
        small, large = sorted(("candidate", "baseline"), key=lambda a: len(arms[a]))
        versions = {s: _respond(http, s, i) for i, s in enumerate(arms[large] + arms[small])}
        assert {s for s, v in versions.items() if v == 2} == set(arms["candidate"])
        assert {s for s, v in versions.items() if v == 1} == set(arms["baseline"])

        status = _wait(lambda: pg.execute("SELECT status, message FROM refresh_runs WHERE run_id=%s AND status NOT IN"
                                          " ('training', 'canary')", (run_id,)).fetchone(), 120, "the decision")
        assert status[0] == "promoted", status
        assert pg.execute("SELECT version FROM interviewer_profiles WHERE tenant=%s AND interviewer_id=%s AND active",
                          (TENANT, IID)).fetchone() == (2,)
        actions = _actions(pg)
        for step in ("refresh.train", "train_interviewer", "canary.start", "canary.promote", "refresh.promoted"):
            assert step in actions, (step, actions)
        assert actions.index("refresh.train") < actions.index("canary.start") < actions.index("refresh.promoted")
        [shown] = http.get(f"/api/digital-twin/eval/{IID}").json()["details"]["refreshes"]
        assert (shown["runId"], shown["status"], shown["candidateVersion"], shown["baselineVersion"]) == (
            run_id, "promoted", 2, 1)
        assert shown["candidate"]["scored"] >= MIN_SAMPLES and shown["baseline"]["scored"] >= MIN_SAMPLES
        assert shown["candidate"]["meanScore"] is not None and shown["baseline"]["meanScore"] is not None
        # Beside the canary, the honest evaluation scored both versions on the stored test sessions.
        compared = _wait(lambda: pg.execute("SELECT outcome, detail FROM audit_log WHERE tenant=%s AND action="
                                            "'refresh.compare' AND resource_id=%s", (TENANT, run_id)).fetchone(),
                         120, "the offline comparison")
        assert compared[0] == "ok", compared
        trend = http.get(f"/api/digital-twin/eval/{IID}").json()
        offline = trend["details"]["refreshes"][0]["offline"]
        assert set(offline) == {"v1", "v2"} and all(0 <= s["matchRate"] <= 1 for s in offline.values()), offline
        assert {p["profileVersion"] for p in trend["trend"]} >= {1, 2}
        from processors.twin import refresh as refreshes
        from processors.twin.evaluation.report import render_refresh_report

        page = render_refresh_report(TENANT, IID, refreshes.history(
            pg.execute(refreshes.HISTORY_SQL, (TENANT, IID, 50)).fetchall(),
            pg.execute(refreshes.OFFLINE_SQL, (TENANT, IID)).fetchall()),
            [{"version": v, "scores": sc.get("twin") or {}} for v, sc in pg.execute(
                "SELECT profile_version, scores FROM eval_runs WHERE tenant=%s", (TENANT,)).fetchall()])
        assert "v2 vs v1" in page and "promoted" in page and "data:image/png;base64," in page
        actors = dict(pg.execute("SELECT action, actor FROM audit_log WHERE tenant=%s AND action IN"
                                 " ('refresh.train', 'canary.start', 'canary.promote')", (TENANT,)).fetchall())
        assert actors == {"refresh.train": "refresh_controller", "canary.start": "refresh_controller",
                          "canary.promote": "canary_controller"}

        # Consent withdrawn: the dataset growth agent takes the session out of the live dataset.
        def in_dataset() -> set[str]:
            return {r[0] for r in pg.execute("SELECT session_id FROM dataset_sessions WHERE tenant=%s"
                                             " AND dataset_ref=%s", (TENANT, f"live:{TENANT}")).fetchall()}

        assert in_dataset() == {f"live-{k}" for k in range(FIRST + LATER)}
        withdrawn = http.patch("/api/interviews/session/live-1", json={"consentTraining": False})
        assert withdrawn.status_code == 200, withdrawn.text
        _wait(lambda: "live-1" not in in_dataset(), 60, "live-1 to leave the live dataset")
        from processors.twin import datasets as ds

        remaining = {t.session_id for t in ds.load_sessions(pg, TENANT, f"live:{TENANT}", IID)}
        assert remaining == {f"live-{k}" for k in range(FIRST + LATER)} - {"live-1"}
