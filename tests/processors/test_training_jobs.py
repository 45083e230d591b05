"""The trainer: JobRunner in-process (versions, splits, failures, recovery) and the agent in a real worker."""

import asyncio
import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from infra.settings import Settings
from processors.twin import datasets as ds
from processors.twin.corpus import parse_jsonl_line
from processors.twin.jobs import JobRunner
from schemas.models import TrainingJob

JUSTICES = ("elena_kagan", "ruth_bader_ginsburg")
SESSIONS_PER_JUSTICE = 6


@pytest.fixture(scope="module")
def setup(cfg, scotus_slice, postgres_dsn, weaviate_client, tmp_path_factory):
    """A tenant with 6 sessions each of two justices in ds_scotus (from the in-repo SCOTUS fixture), and
    settings isolating Weaviate and files."""
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    prefix = f"T{uuid.uuid4().hex[:8]}"
    mcfg = Settings(WEAVIATE_COLLECTION_PREFIX=prefix, TWIN_VAR_DIR=tmp_path_factory.mktemp("var"),
                    TRAINING_HEARTBEAT_S=0.5, TRAINING_STALE_AFTER_S=3)
    parsed, seen = [], {j: 0 for j in JUSTICES}
    with open(scotus_slice) as fh:
        for n, line in enumerate(fh, start=1):
            p = parse_jsonl_line(line, n)
            iid = p.transcript.interviewer_id
            if iid in seen and seen[iid] < SESSIONS_PER_JUSTICE:
                seen[iid] += 1
                parsed.append(p)
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        # Redaction itself is tested with the import (test_datasets, test_cli_data); these are already public.
        report = ds.import_transcripts(conn, tenant, "ds_scotus", parsed, redact=None, consent_attested_by="pytest")
    assert report.imported == 2 * SESSIONS_PER_JUSTICE
    yield tenant, mcfg
    weaviate_client.collections.delete(f"{prefix}PersonaMemory")


@pytest.fixture(scope="module")
def runner(setup):
    _, mcfg = setup
    return JobRunner(mcfg, worker_id="test-runner")


def _job(tenant, iid="elena_kagan", ref="ds_scotus", **options) -> TrainingJob:
    return TrainingJob(jobId=str(uuid.uuid4()), tenant=tenant, interviewerId=iid, datasetRef=ref, options=options)


def _row(pg, job_id):
    cur = pg.execute("SELECT * FROM training_jobs WHERE job_id=%s", (job_id,))
    row = cur.fetchone()
    return dict(zip([d.name for d in cur.description], row)) if row else {"status": "not claimed yet"}


def _count(runner, tenant, version, iid="elena_kagan", **where):
    return runner.memory.sink.count(tenant, {"interviewerId": iid, "version": version, **where})


def test_training_twice_keeps_the_split_and_adds_a_version(setup, runner, pg):
    from processors.twin.style_classifier import load_style_classifier

    tenant, mcfg = setup
    statuses = []
    runner.publish = statuses.append
    first = runner.run(_job(tenant, docs=[{"kind": "rubric", "key": "standing", "text": "Asks about standing."}]))
    assert first.status == "succeeded" and first.version == 1, first.message
    second = runner.run(_job(tenant, classifier=False, val=0.4, test=0.4))  # fractions ignored: split is stored
    assert second.status == "succeeded" and second.version == 2, second.message
    assert [s.status for s in statuses].count("succeeded") == 2 and statuses[0].status == "running"
    assert any(0 < s.progress < 1 for s in statuses)

    v1, v2 = runner.profiles.load(tenant, "elena_kagan", 1), runner.profiles.load(tenant, "elena_kagan", 2)
    assert v1.artefacts["split"] == v2.artefacts["split"]
    assert [len(v1.artefacts["split"][k]) for k in ("train", "val", "test")] == [4, 1, 1]
    assert v2.artefacts["splitReused"] is True and v1.artefacts["splitReused"] is False
    assert runner.profiles.active(tenant, "elena_kagan").version == 2
    # Both versions' memory exists; retrieval filters on the active one.
    assert _count(runner, tenant, 1, kind="exemplar") == _count(runner, tenant, 2, kind="exemplar") > 30
    assert _count(runner, tenant, 1, kind="rubric") == 1 and _count(runner, tenant, 2, kind="rubric") == 0
    # The rubric document is what v1's rubric check grades answers against; v2 was trained without one.
    from processors.twin.engine import rubric_of
    from processors.twin.tools.rubric import DEFAULT_RUBRIC

    assert rubric_of(v1) == ("Asks about standing.",) and "rubric" not in v2.artefacts
    assert rubric_of(v2) == (DEFAULT_RUBRIC if v2.artefacts["rubricCheck"]["applies"] else None)
    assert _count(runner, tenant, 2, kind="preference") >= 3  # derived from the fitted profile
    # Artefacts of v1: classifier (with negatives from the other justice), fine-tune file, augmentations.
    folder = mcfg.TWIN_VAR_DIR / "models" / tenant / "elena_kagan" / "v1"
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert {"style_classifier.joblib", "finetune/train.jsonl", "finetune/axolotl.yaml", "manifest.json",
            "augment/paraphrase_negatives.jsonl", "augment/policy_stress.jsonl"} <= names
    clf_info = v1.artefacts["styleClassifier"]
    assert clf_info["trainCounts"]["other_interviewers"] > 0 and clf_info["metrics"]["val"]["n"] > 0
    assert v1.artefacts["fineTune"]["valid"] and v1.artefacts["fineTune"]["examples"] > 30
    assert "styleClassifier" not in v2.artefacts
    clf = load_style_classifier(tenant=tenant, interviewer_id="elena_kagan", version=1, dsn=mcfg.POSTGRES_DSN,
                                embedder=runner.memory.embedder)
    assert clf.predict_interviewer(["Mr. Smith, could I ask you about the standing question?"]).shape == (1,)
    row = _row(pg, statuses[-1].jobId)
    assert row["status"] == "succeeded" and row["attempts"] == 1 and row["result"]["version"] == 2
    assert row["finished_at"] is not None and row["worker"] == "test-runner"


class _FailingMemory:
    """Persona memory that writes part of the exemplars, then fails (a Weaviate outage mid-job)."""

    def __init__(self, memory):
        self._memory = memory
        self.embedder = memory.embedder

    def index_exchanges(self, tenant, iid, version, items, **kw):
        items = list(items)
        self._memory.index_exchanges(tenant, iid, version, items[:20], **kw)
        raise ConnectionError("injected: Weaviate went away")

    def __getattr__(self, name):
        return getattr(self._memory, name)


def test_failure_mid_job_leaves_the_previous_version_serving(setup, runner, pg):
    tenant, mcfg = setup
    before = runner.profiles.active(tenant, "elena_kagan").version
    broken = JobRunner(mcfg, memory=_FailingMemory(runner.memory), worker_id="broken")
    status = broken.run(_job(tenant, classifier=False))
    assert status.status == "failed" and "injected: Weaviate went away" in status.message
    failed_version = before + 1
    assert runner.profiles.active(tenant, "elena_kagan").version == before
    assert runner.profiles.load(tenant, "elena_kagan", failed_version) is None
    assert _count(runner, tenant, failed_version) == 0  # the 20 written objects were removed
    assert not (mcfg.TWIN_VAR_DIR / "models" / tenant / "elena_kagan" / f"v{failed_version}").exists()
    assert _row(pg, status.jobId)["finished_at"] is not None


def test_bad_jobs_fail_with_a_reason(setup, runner, pg):
    tenant, _ = setup
    missing = runner.run(_job(tenant, ref="ds_nope"))
    assert missing.status == "failed" and "dataset 'ds_nope' does not exist" in missing.message
    stranger = runner.run(_job(tenant, iid="john_roberts"))
    assert stranger.status == "failed" and "no sessions of interviewer 'john_roberts'" in stranger.message
    # Another tenant's message for an existing job id is not this job: nothing happens.
    job = _job(tenant)
    pg.execute("INSERT INTO training_jobs (job_id, tenant, interviewer_id, dataset_ref, status) VALUES"
               " (%s, 'someone-else', 'elena_kagan', 'ds_scotus', 'queued')", (job.jobId,))
    assert runner.run(job) is None and _row(pg, job.jobId)["status"] == "queued"
    # A job already finished is not run again (a redelivered message).
    done = runner.run(_job(tenant, ref="ds_nope"))
    assert runner.run(TrainingJob(**{**done.model_dump(include={"jobId", "tenant", "interviewerId"}),
                                     "datasetRef": "ds_nope"})) is None


def _stale_row(pg, tenant, iid, attempts, version=None, age_s=600, ref="ds_scotus", worker=None) -> str:
    job_id = str(uuid.uuid4())
    beat = datetime.now(timezone.utc) - timedelta(seconds=age_s)
    pg.execute("INSERT INTO training_jobs (job_id, tenant, interviewer_id, dataset_ref, options, status, attempts,"
               " version, worker, heartbeat_at, started_at) VALUES (%s, %s, %s, %s, %s, 'running', %s, %s,"
               " %s, %s, %s)", (job_id, tenant, iid, ref, json.dumps({"classifier": False}), attempts, version,
                                worker or f"{Settings().TOPIC_PREFIX}dead-worker", beat, beat))
    return job_id


def test_recovery_resumes_or_fails_jobs_of_dead_workers(setup, runner, pg):
    tenant, _ = setup
    active = runner.profiles.active(tenant, "elena_kagan").version
    resume = _stale_row(pg, tenant, "ruth_bader_ginsburg", attempts=1, version=7)
    give_up = _stale_row(pg, tenant, "ruth_bader_ginsburg", attempts=2)
    alive = _stale_row(pg, tenant, "ruth_bader_ginsburg", attempts=1, age_s=0)
    finished = _stale_row(pg, tenant, "elena_kagan", attempts=1, version=active)
    elsewhere = _stale_row(pg, tenant, "ruth_bader_ginsburg", attempts=1, worker="another-deployment:1:x")
    requeued = runner.recover_stale()
    assert resume in [j.jobId for j in requeued] and give_up not in [j.jobId for j in requeued]
    r = _row(pg, resume)
    assert r["status"] == "queued" and r["version"] is None and "dead-worker stopped heart-beating" in r["message"]
    assert r["message"].startswith("resumed:")
    g = _row(pg, give_up)
    assert g["status"] == "failed" and "dead-worker stopped heart-beating" in g["message"]
    assert _row(pg, alive)["status"] == "running"
    assert _row(pg, elsewhere)["status"] == "running"  # another deployment's worker: not ours to recover
    f = _row(pg, finished)
    assert f["status"] == "succeeded" and f"v{active} was activated" in f["message"]
    for job_id in (resume, alive, elsewhere):  # leave nothing running for the worker test below
        pg.execute("UPDATE training_jobs SET status='failed' WHERE job_id=%s", (job_id,))


async def test_a_killed_worker_s_job_is_resumed_by_the_next_worker(setup, worker_factory, pg, read_topic, cfg):
    """Real workers: a job from Kafka starts on worker A, A is SIGKILLed mid-job, worker B resumes it."""
    from infra.clients import kafka_producer
    from schemas.codec import encode_model
    from schemas.topics import TRAINING_JOBS, TRAINING_STATUS, key_for

    tenant, mcfg = setup
    env = {"WEAVIATE_COLLECTION_PREFIX": mcfg.WEAVIATE_COLLECTION_PREFIX, "TWIN_VAR_DIR": str(mcfg.TWIN_VAR_DIR),
           "TRAINING_HEARTBEAT_S": "0.5", "TRAINING_STALE_AFTER_S": "3"}
    job = _job(tenant, "ruth_bader_ginsburg", classifier=False)
    worker_a = worker_factory("trainer-a", agents="training_jobs", extra_env=env)
    producer = kafka_producer(cfg)
    await producer.start()
    try:
        await producer.send_and_wait(cfg.topic(TRAINING_JOBS.name), encode_model(job),
                                     key=key_for(TRAINING_JOBS, job.model_dump()))
    finally:
        await producer.stop()

    async def wait_for(check, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = _row(pg, job.jobId)
            if check(row):
                return row
            await asyncio.sleep(0.2)
        pytest.fail(f"{what}: {_row(pg, job.jobId)}\nA:\n{worker_a.log_tail()}")

    running = await wait_for(lambda r: r["status"] == "running" and r["version"] is not None, 120, "never ran on A")
    worker_a.kill()  # SIGKILL: no clean-up, the row stays "running" with A's version half-written
    half = running["version"]
    worker_b = worker_factory("trainer-b", agents="training_jobs", extra_env=env)
    try:
        done = await wait_for(lambda r: r["status"] in ("succeeded", "failed"), 180, "not finished on B")
        assert done["status"] == "succeeded" and done["attempts"] == 2, (done, worker_b.log_tail())
        assert done["worker"] != running["worker"]
        profile = JobRunner(mcfg).profiles.active(tenant, "ruth_bader_ginsburg")
        assert profile.version == done["version"] == half  # A's half-written version was discarded, then rebuilt
        runner = JobRunner(mcfg)
        assert _count(runner, tenant, half, "ruth_bader_ginsburg", kind="exemplar") \
            == profile.artefacts["counts"]["exchanges"]
        updates = await read_topic(TRAINING_STATUS, lambda s: s.jobId == job.jobId)
        states = [u.status for u in updates]
        assert states[0] == "running" and states[-1] == "succeeded" and updates[-1].version == half
        # B resumed it: either its start-up sweep re-queued it, or the redelivered message found it stale.
        assert any(u.status == "running" and (u.message or "").startswith("started (attempt 2") for u in updates)
        assert any(0 < u.progress < 1 for u in updates)
    finally:
        worker_b.stop()
