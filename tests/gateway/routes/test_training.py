"""POST /api/digital-twin/train and GET /api/digital-twin/train/{jobId}: validation, tenancy, Kafka, and a
real trainer worker taking a job from the API to a new active version."""

import asyncio
import time
import uuid

import psycopg
import pytest

from processors.twin import datasets as ds
from processors.twin.corpus import parse_jsonl_line
from schemas.topics import TRAINING_JOBS, TRAINING_STATUS
from tests.credentials import auth_headers

URL = "/api/digital-twin/train"


@pytest.fixture(scope="module")
def owner(scotus_slice, postgres_dsn) -> str:
    """A tenant owning ds_scotus with 6 sessions of elena_kagan (from the in-repo SCOTUS fixture)."""
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    parsed = []
    with open(scotus_slice) as fh:
        for n, line in enumerate(fh, start=1):
            if '"interviewer_id": "elena_kagan"' in line[:200] and len(parsed) < 6:
                parsed.append(parse_jsonl_line(line, n))
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        assert ds.import_transcripts(conn, tenant, "ds_scotus", parsed, redact=None,
                                      consent_attested_by="pytest").imported == 6
    return tenant


def _h(tenant: str) -> dict[str, str]:
    return auth_headers(tenant)


BODY = {"interviewerId": "elena_kagan", "datasetRef": "ds_scotus", "options": {"classifier": False}}


async def test_post_queues_a_job_on_kafka_and_get_reports_it(api, owner, pg, read_topic):
    resp = await api.post(URL, json=BODY, headers=_h(owner))
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["status"] == "queued" and resp.headers["location"] == f"{URL}/{body['jobId']}"
    job_id = body["jobId"]
    (job,) = await read_topic(TRAINING_JOBS, lambda m: m.jobId == job_id, count=1, timeout=15)
    assert (job.tenant, job.interviewerId, job.datasetRef) == (owner, "elena_kagan", "ds_scotus")
    assert job.options["classifier"] is False and job.options["val"] == 0.1  # defaults filled in
    (status,) = await read_topic(TRAINING_STATUS, lambda m: m.jobId == job_id, count=1, timeout=15)
    assert status.status == "queued"
    got = await api.get(f"{URL}/{job_id}", headers=_h(owner))
    assert got.status_code == 200
    assert {k: got.json()[k] for k in ("jobId", "status", "progress", "version", "datasetRef")} == {
        "jobId": job_id, "status": "queued", "progress": 0.0, "version": None, "datasetRef": "ds_scotus"}
    # One job per interviewer at a time.
    again = await api.post(URL, json=BODY, headers=_h(owner))
    assert again.status_code == 409 and again.json()["error"]["code"] == "training_in_progress"
    assert again.json()["error"]["details"][0]["jobId"] == job_id
    # Nobody runs this one in this test: end it so the module's other tests can queue.
    pg.execute("UPDATE training_jobs SET status='failed', message='test' WHERE job_id=%s", (job_id,))


@pytest.mark.parametrize("body, status, code", [
    ({**BODY, "datasetRef": "ds_missing"}, 404, "unknown_dataset"),
    ({**BODY, "interviewerId": "antonin_scalia"}, 404, "unknown_interviewer"),   # not in this dataset
    ({**BODY, "datasetRef": "live:someone-else"}, 404, "unknown_dataset"),       # another tenant's live data
    ({**BODY, "options": {"val": 0.6}}, 422, "validation_failed"),
    ({**BODY, "options": {"epochs": 3}}, 422, "validation_failed"),               # unknown option
    ({**BODY, "options": {"docs": [{"kind": "gossip", "key": "k", "text": "t"}]}}, 422, "validation_failed"),
    # A prohibited document lists topics, not a sentence the checks could never match.
    ({**BODY, "options": {"docs": [{"kind": "prohibited", "key": "pay",
                                    "text": "Never ask the candidate what they earn now or earned before."}]}},
     422, "validation_failed"),
    ({"interviewerId": "elena_kagan"}, 422, "validation_failed"),                  # no datasetRef
])
async def test_bad_requests(api, owner, body, status, code):
    resp = await api.post(URL, json=body, headers=_h(owner))
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code


async def test_other_tenants_see_nothing(api, owner, pg):
    stranger = f"t-{uuid.uuid4().hex[:8]}"
    # Their dataset answers as if it did not exist, and so does their job.
    resp = await api.post(URL, json=BODY, headers=_h(stranger))
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "unknown_dataset"
    job_id = str(uuid.uuid4())
    pg.execute("INSERT INTO training_jobs (job_id, tenant, interviewer_id, dataset_ref, status) VALUES"
               " (%s, %s, 'elena_kagan', 'ds_scotus', 'failed')", (job_id, owner))
    assert (await api.get(f"{URL}/{job_id}", headers=_h(owner))).status_code == 200
    resp = await api.get(f"{URL}/{job_id}", headers=_h(stranger))
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "unknown_job"
    assert (await api.get(f"{URL}/no-such-job", headers=_h(owner))).json()["error"]["code"] == "unknown_job"


async def test_training_without_recorded_consent_is_refused(api, pg):
    """Live sessions without consentTraining, and an imported dataset nobody attested: 403, nothing queued."""
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    pg.execute("INSERT INTO sessions (session_id, tenant, interviewer_id, consent_recording, consent_training)"
               " VALUES (%s, %s, 'dana', true, false)", (f"{tenant}-s1", tenant))
    live = await api.post(URL, json={"interviewerId": "dana", "datasetRef": f"live:{tenant}"}, headers=_h(tenant))
    assert live.status_code == 403, live.text
    assert live.json()["error"]["code"] == "consent_required"
    assert live.json()["error"]["details"] == [{"sessions": 1, "consentTraining": 0}]
    line = '{"interviewer_id": "dana", "session_id": "x", "turns": [{"role": "interviewer", "text": "Why?"}]}'
    ds.import_transcripts(pg, tenant, "ds_unattested", [parse_jsonl_line(line)], redact=None)
    imported = await api.post(URL, json={"interviewerId": "dana", "datasetRef": "ds_unattested"}, headers=_h(tenant))
    assert imported.status_code == 403 and imported.json()["error"]["code"] == "consent_required"
    assert pg.execute("SELECT count(*) FROM training_jobs WHERE tenant=%s", (tenant,)).fetchone() == (0,)
    # One consented session is enough to train (only the consented ones are ever read).
    pg.execute("INSERT INTO sessions (session_id, tenant, interviewer_id, consent_recording, consent_training)"
               " VALUES (%s, %s, 'dana', true, true)", (f"{tenant}-s2", tenant))
    ok = await api.post(URL, json={"interviewerId": "dana", "datasetRef": f"live:{tenant}"}, headers=_h(tenant))
    assert ok.status_code == 202, ok.text
    pg.execute("UPDATE training_jobs SET status='failed', message='test' WHERE job_id=%s", (ok.json()["jobId"],))


async def test_train_through_the_api_with_a_real_worker(api, owner, pg, postgres_dsn, worker_factory, weaviate_client,
                                                        tmp_path_factory):
    """POST → Kafka → trainer agent → PostgreSQL row, Weaviate objects, active version; GET follows it."""
    from processors.twin.embeddings import get_embedder
    from processors.twin.memory import PersonaMemory
    from processors.twin.profiles import ProfileStore
    from processors.twin.selection import tail
    from sinks.weaviate import PERSONA_MEMORY, WeaviateSink

    prefix = f"T{uuid.uuid4().hex[:8]}"
    worker = worker_factory("api-trainer", agents="training_jobs", extra_env={
        "WEAVIATE_COLLECTION_PREFIX": prefix, "TWIN_VAR_DIR": str(tmp_path_factory.mktemp("var"))})
    try:
        resp = await api.post(URL, json={**BODY, "options": {"classifier": False, "docs": [
            {"kind": "preference", "key": "pace", "text": "Moves quickly to the hard question."}]}},
                              headers=_h(owner))
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["jobId"]
        seen, deadline = [], time.monotonic() + 180
        while time.monotonic() < deadline:
            job = (await api.get(f"{URL}/{job_id}", headers=_h(owner))).json()
            seen.append((job["status"], job["progress"]))
            if job["status"] in ("succeeded", "failed"):
                break
            await asyncio.sleep(0.5)
        assert job["status"] == "succeeded", (job["message"], job, worker.log_tail())
        assert ("running" in {s for s, _ in seen}) and job["progress"] == 1.0 and job["version"] == 1
        assert job["result"]["split"] == {"train": 4, "val": 1, "test": 1} and job["finishedAt"]
        profile = ProfileStore(postgres_dsn).active(owner, "elena_kagan")
        assert profile.version == 1 and profile.artefacts["provenance"]["jobId"] == job_id
        sink = WeaviateSink(weaviate_client, PERSONA_MEMORY, prefix=prefix)
        assert sink.count(owner, {"interviewerId": "elena_kagan", "version": 1, "kind": "exemplar"}) \
            == profile.artefacts["counts"]["exchanges"]
        # Each moment is indexed a second time by its line, for the line search (PersonaMemory.similar_lines).
        assert sink.count(owner, {"interviewerId": "elena_kagan", "version": 1, "kind": "line"}) \
            == profile.artefacts["counts"]["exchanges"]
        embedder = get_embedder()
        memory = PersonaMemory(sink, embedder)
        some = sink.near_vector(owner, [1.0] + [0.0] * 383, limit=1,
                                where={"interviewerId": "elena_kagan", "version": 1, "kind": "line"})[0].properties
        found = memory.similar_lines(owner, "elena_kagan", 1, embedder.embed_cached([tail(some["reply"])])[0], 3)
        assert found[0].reply == some["reply"] and found[0].score == pytest.approx(1.0, abs=1e-3)
        assert found[0].exemplar_id == some["key"] and found[0].session_id == some["sessionId"]
        assert sink.count(owner, {"interviewerId": "elena_kagan", "version": 1, "kind": "preference"}) >= 2
        row = pg.execute("SELECT attempts, worker, heartbeat_at IS NOT NULL FROM training_jobs WHERE job_id=%s",
                         (job_id,)).fetchone()
        assert row[0] == 1 and row[1] and row[2]
    finally:
        worker.stop()
        weaviate_client.collections.delete(f"{prefix}PersonaMemory")
