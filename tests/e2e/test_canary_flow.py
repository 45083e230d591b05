"""A canary through the real stack: gateway → Kafka → twin agent (canary router) → safety agent → eval
sampler → canary controller, which rolls a worse candidate back and promotes an equal one on its own.

Each test has its own tenant, sampled at rate 1.0 (EVAL_SAMPLE_RATES) on its own worker and gateway.
Requests are sent one session at a time, s-0, s-1, ... up to the first at which both arms have
``minSamples``, the smaller arm last: the controller can decide only once the last request has been
answered, so every reply's version is known in advance from the routing hash.
"""

from __future__ import annotations

import json
import random
import time
import uuid

import httpx
import pytest

from processors.twin.canary import expected_arms
from processors.twin.corpus import Transcript, Turn, read_transcripts
from tests.conftest import SAMPLE_CORPUS
from tests.credentials import auth_headers

pytestmark = pytest.mark.e2e

TENANTS = {"rollback": f"t-canary-rb-{uuid.uuid4().hex[:6]}", "promote": f"t-canary-pr-{uuid.uuid4().hex[:6]}"}
MIN_SAMPLES = 6
ROUTE_TTL_S = 0.5
OPENING = "Tell me about a system you built."
ANSWERS = [
    "I built a billing pipeline that charges customers monthly from a cron job.",
    "I used Redis with a token bucket per user and a Lua script to make it atomic.",
    "We sharded Postgres by tenant id and put pgbouncer in front of it.",
    "I'd add retries with exponential backoff and idempotency keys on every write.",
    "The webhook consumer wrote events to Kafka and a worker normalised them into orders.",
]


@pytest.fixture(scope="module")
def canary_app(twin_app_factory):
    app = twin_app_factory("canary", extra_env={
        "EVAL_SAMPLE_RATES": json.dumps({t: 1.0 for t in TENANTS.values()}),
        "CANARY_EVAL_INTERVAL_S": "1", "CANARY_ROUTE_TTL_S": str(ROUTE_TTL_S)})
    yield app
    # Its controller judges every running canary of the database each second: left running, it
    # would decide the canaries that later tests start and evaluate by hand.
    app.gateway.stop()
    app.worker.stop()


def _sample_sessions() -> list[Transcript]:
    return [p.transcript for p in read_transcripts(SAMPLE_CORPUS) if p.ok]


def _garbled(transcripts: list[Transcript]) -> list[Transcript]:
    """The same sessions with every interviewer line replaced by pseudo-words: a measurably worse twin."""
    rng = random.Random(8)
    syllables = ["bla", "zor", "vek", "qui", "mon", "tra", "plu", "dex", "fim", "gro"]

    def garble(text: str) -> str:
        return " ".join("".join(rng.choice(syllables) for _ in range(rng.randint(1, 3))) for _ in text.split())

    return [Transcript(interviewer_id=t.interviewer_id, session_id=t.session_id, started_at=t.started_at,
                       turns=[Turn(role=x.role, text=garble(x.text) if x.role == "interviewer" else x.text)
                              for x in t.turns]) for t in transcripts]


def _train(cfg, tenant: str, transcripts: list[Transcript], activate: bool) -> int:
    from infra.clients import weaviate_client
    from processors.twin.embeddings import get_embedder
    from processors.twin.memory import PersonaMemory
    from processors.twin.profiles import ProfileStore
    from processors.twin.training import train_interviewer

    client, profiles = weaviate_client(cfg), ProfileStore(cfg.POSTGRES_DSN)
    try:
        memory = PersonaMemory.connect(client, get_embedder(), prefix=cfg.WEAVIATE_COLLECTION_PREFIX)
        result = train_interviewer(tenant, "dana", transcripts, profiles, memory, activate=activate, classifier=False)
    finally:
        profiles.close()
        client.close()
    assert result.activated is activate
    return result.version


def _respond(app, tenant: str, session: str, i: int) -> dict:
    resp = httpx.post(f"{app.url}/api/digital-twin/respond", headers=auth_headers(tenant), timeout=30, json={
        "interviewerId": "dana", "sessionId": session, "history": [{"role": "interviewer", "text": OPENING}],
        "candidateTurn": ANSWERS[i % len(ANSWERS)]})
    assert resp.status_code == 200, resp.text
    return resp.json()


def _plan(canary_id: str, share: float) -> tuple[list[str], dict[str, list[str]]]:
    """The first sessions s-0, s-1, ... at which both arms have MIN_SAMPLES, and the order to send them in."""
    n = MIN_SAMPLES
    while True:
        sessions = [f"s-{i}" for i in range(n)]
        arms = expected_arms(canary_id, sessions, share)
        if min(len(arms["candidate"]), len(arms["baseline"])) >= MIN_SAMPLES:
            return sessions, arms
        n += 1


def _send_all(app, tenant: str, arms: dict[str, list[str]]) -> dict[str, int]:
    """The larger arm's sessions first, then the smaller arm's: its last request brings it to MIN_SAMPLES,
    so no decision can come before every request was answered. Returns each session's version."""
    small, large = sorted(("candidate", "baseline"), key=lambda a: len(arms[a]))
    versions = {}
    for i, session in enumerate(arms[large] + arms[small]):
        versions[session] = _respond(app, tenant, session, i)["profileVersion"]
    return versions


def _wait_for_status(app, tenant: str, status: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = httpx.get(f"{app.url}/api/digital-twin/canary/dana", headers=auth_headers(tenant, scopes=["admin"]),
                         timeout=10).json()
        if body["canary"]["status"] == status or time.monotonic() > deadline:
            return body
        time.sleep(0.5)


def _start(app, tenant: str, **body) -> dict:
    resp = httpx.post(f"{app.url}/api/digital-twin/canary/dana", headers=auth_headers(tenant, scopes=["admin"]),
                      json={"minSamples": MIN_SAMPLES, **body}, timeout=10)
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_a_worse_candidate_gets_its_share_then_is_rolled_back(canary_app, cfg, pg):
    tenant = TENANTS["rollback"]
    baseline = _train(cfg, tenant, _sample_sessions(), activate=True)
    candidate = _train(cfg, tenant, _garbled(_sample_sessions()), activate=False)
    canary = _start(canary_app, tenant, share=0.5)
    assert (canary["candidateVersion"], canary["baselineVersion"]) == (candidate, baseline)

    sessions, arms = _plan(canary["canaryId"], 0.5)
    versions = _send_all(canary_app, tenant, arms)
    # Exactly the sessions the hash picked went to the candidate (about half of them).
    assert {s for s, v in versions.items() if v == candidate} == set(arms["candidate"])
    assert {s for s, v in versions.items() if v == baseline} == set(arms["baseline"])
    assert 0.25 <= len(arms["candidate"]) / len(sessions) <= 0.75

    status = _wait_for_status(canary_app, tenant, "rolled_back")
    decided = status["canary"]
    assert decided["status"] == "rolled_back", status
    assert decided["share"] == 0.0 and decided["decidedBy"] == "canary_controller"
    assert decided["reason"].startswith("score:"), decided["reason"]
    assert status["candidate"]["meanScore"] < status["baseline"]["meanScore"] - 0.05
    assert status["candidate"]["scored"] >= MIN_SAMPLES and status["baseline"]["scored"] >= MIN_SAMPLES

    [(actor, detail)] = pg.execute("SELECT actor, detail FROM audit_log WHERE tenant=%s AND action='canary.rollback'"
                                   " AND resource_id=%s", (tenant, decided["canaryId"])).fetchall()
    assert actor == "canary_controller" and detail["candidateVersion"] == candidate
    tagged = dict(pg.execute("SELECT profile_version, count(*) FROM eval_samples WHERE tenant=%s GROUP BY 1",
                             (tenant,)).fetchall())
    assert tagged == {candidate: len(arms["candidate"]), baseline: len(arms["baseline"])}

    # Every session, those that had the candidate included, is answered by the baseline again.
    time.sleep(ROUTE_TTL_S + 0.5)
    after = [_respond(canary_app, tenant, s, i)["profileVersion"] for i, s in enumerate(arms["candidate"])]
    assert after == [baseline] * len(arms["candidate"])


def test_an_equal_candidate_is_promoted_on_its_own(canary_app, cfg, pg):
    tenant = TENANTS["promote"]
    baseline = _train(cfg, tenant, _sample_sessions(), activate=True)
    candidate = _train(cfg, tenant, _sample_sessions(), activate=False)  # retrained on the same data
    # The same data makes an equally good twin; a wide margin absorbs the noise of a few samples.
    canary = _start(canary_app, tenant, share=0.3, scoreMargin=0.2)

    _, arms = _plan(canary["canaryId"], 0.3)
    versions = _send_all(canary_app, tenant, arms)
    assert {s for s, v in versions.items() if v == candidate} == set(arms["candidate"])

    status = _wait_for_status(canary_app, tenant, "promoted")
    assert status["canary"]["status"] == "promoted", status
    assert status["canary"]["decidedBy"] == "canary_controller"
    active = pg.execute("SELECT version FROM interviewer_profiles WHERE tenant=%s AND interviewer_id='dana' AND active",
                        (tenant,)).fetchall()
    assert active == [(candidate,)]
    assert pg.execute("SELECT count(*) FROM audit_log WHERE tenant=%s AND action='canary.promote'",
                      (tenant,)).fetchone()[0] == 1

    # Within the profile cache's few seconds every session is answered by the new version.
    deadline = time.monotonic() + 20
    while True:
        now = {_respond(canary_app, tenant, s, i)["profileVersion"] for i, s in enumerate(arms["baseline"][:4])}
        if now == {candidate} or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert now == {candidate}
    assert baseline != candidate
