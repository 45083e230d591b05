"""Consent to training: live sessions without consentTraining are never trained on (at copy time and
again at read time), and an imported dataset trains only with a recorded attestation."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from infra.settings import Settings
from processors.twin import datasets as ds
from processors.twin.corpus import parse_jsonl_line, read_transcripts
from processors.twin.embeddings import get_embedder
from processors.twin.jobs import JobRunner
from processors.twin.memory import PersonaMemory
from schemas.models import TrainingJob
from tests.conftest import SAMPLE_CORPUS

MARKER = "zebracorn"  # said only in sessions without consent to training


def _insert_live(pg, tenant: str, interviewer: str, session: str, consent: bool, turns, start: datetime) -> None:
    pg.execute("INSERT INTO sessions (session_id, tenant, interviewer_id, consent_recording, consent_training,"
               " created_at) VALUES (%s, %s, %s, true, %s, %s)", (session, tenant, interviewer, consent, start))
    for i, turn in enumerate(turns):
        pg.execute("INSERT INTO turns (tenant, session_id, event_id, role, text, ts) VALUES (%s, %s, %s, %s, %s, %s)",
                   (tenant, session, f"e{i:03d}", turn.role, turn.text, start + timedelta(seconds=i)))


@pytest.fixture
def live_tenant(pg, tenant):
    """dana: the six sample sessions live, four with consent to training and two without (those carry
    MARKER in every interviewer turn); lee: one session, without consent."""
    sample = [p.transcript for p in read_transcripts(SAMPLE_CORPUS) if p.ok]
    start = datetime(2025, 3, 1, tzinfo=timezone.utc)
    for i, t in enumerate(sample):
        consent = i < 4
        turns = t.turns if consent else [
            turn.model_copy(update={"text": f"{turn.text} {MARKER}?"}) if turn.role == "interviewer" else turn
            for turn in t.turns]
        _insert_live(pg, tenant, "dana", f"{tenant}-{t.session_id}", consent, turns, start + timedelta(days=i))
    _insert_live(pg, tenant, "lee", f"{tenant}-lee-1", False, sample[0].turns, start)
    return tenant


def test_withdrawn_consent_is_honoured_at_read_time_before_any_resync(pg, live_tenant):
    tenant = live_tenant
    assert ds.sync_live_sessions(pg, tenant).imported == 4
    ref = ds.live_ref(tenant)
    assert len(ds.load_sessions(pg, tenant, ref, "dana")) == 4
    pg.execute("UPDATE sessions SET consent_training=false WHERE session_id=%s", (f"{tenant}-dana-001",))
    # The stale copy is still in dataset_sessions, but it is never read for training.
    assert pg.execute("SELECT count(*) FROM dataset_sessions WHERE tenant=%s AND dataset_ref=%s",
                      (tenant, ref)).fetchone() == (4,)
    assert {s.session_id for s in ds.load_sessions(pg, tenant, ref)} == {
        f"{tenant}-dana-00{i}" for i in (2, 3, 4)}
    with pytest.raises(ds.ConsentMissing, match="none of the 1 live session"):
        ds.require_training_consent(pg, tenant, ref, "lee")
    ds.require_training_consent(pg, tenant, ref, "dana")


def test_imported_datasets_need_an_attestation_that_a_later_import_does_not_clear(pg, tenant):
    line = json.dumps({"interviewer_id": "dana", "session_id": "x1", "turns": [
        {"role": "interviewer", "text": "Why?"}, {"role": "candidate", "text": "Because."}]})
    ds.import_transcripts(pg, tenant, "ds_notes", [parse_jsonl_line(line)], redact=None)
    with pytest.raises(ds.ConsentMissing, match="no consent attestation"):
        ds.require_training_consent(pg, tenant, "ds_notes", "dana")
    ds.import_transcripts(pg, tenant, "ds_notes", [parse_jsonl_line(line)], redact=None,
                          consent_attested_by="cli:alice", consent_note="signed release forms")
    ds.import_transcripts(pg, tenant, "ds_notes", [parse_jsonl_line(line)], redact=None)  # no attestation: kept
    row = pg.execute("SELECT consent_attested_by, consent_note, consent_attested_at IS NOT NULL FROM datasets"
                     " WHERE tenant=%s AND dataset_ref='ds_notes'", (tenant,)).fetchone()
    assert row == ("cli:alice", "signed release forms", True)
    ds.require_training_consent(pg, tenant, "ds_notes", "dana")


@pytest.fixture
def runner(weaviate_client, tmp_path):
    prefix = f"T{uuid.uuid4().hex[:8]}"
    cfg = Settings(WEAVIATE_COLLECTION_PREFIX=prefix, TWIN_VAR_DIR=tmp_path)
    memory = PersonaMemory.connect(weaviate_client, get_embedder(), prefix=prefix)  # the session's client
    yield JobRunner(cfg, memory=memory, worker_id="consent-test")
    weaviate_client.collections.delete(f"{prefix}PersonaMemory")


def _job(tenant: str, iid: str, ref: str) -> TrainingJob:
    return TrainingJob(jobId=str(uuid.uuid4()), tenant=tenant, interviewerId=iid, datasetRef=ref,
                       options={"classifier": False})


def test_training_on_live_sessions_uses_only_the_consented_ones(pg, live_tenant, runner, tmp_path):
    tenant = live_tenant
    done = runner.run(_job(tenant, "dana", ds.live_ref(tenant)))
    assert done.status == "succeeded", done.message
    profile = runner.profiles.load(tenant, "dana", done.version)
    used = {sid for part in profile.artefacts["split"].values() for sid in part}
    assert used == {f"{tenant}-dana-00{i}" for i in (1, 2, 3, 4)}
    assert pg.execute("SELECT count(*) FROM interviewer_splits WHERE tenant=%s AND session_id LIKE %s",
                      (tenant, "%dana-005")).fetchone() == (0,)
    # Nothing the unconsented sessions said reached any artefact (fine-tune file, augmentations, profile).
    folder = tmp_path / "models" / tenant / "dana"
    texts = [p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file() and p.suffix != ".joblib"]
    assert texts and not any(MARKER in t for t in texts)
    assert MARKER not in json.dumps(profile.style.to_dict()) + json.dumps(profile.artefacts)
    assert runner.memory.sink.count(tenant, {"interviewerId": "dana", "version": done.version}) > 0
    # lee never consented: the job fails and says why; no version is made.
    refused = runner.run(_job(tenant, "lee", ds.live_ref(tenant)))
    assert refused.status == "failed" and "consent to training" in refused.message
    assert runner.profiles.active(tenant, "lee") is None


def test_an_unattested_import_is_refused_by_the_trainer(pg, tenant, runner):
    parsed = [p for p in read_transcripts(SAMPLE_CORPUS)]
    ds.import_transcripts(pg, tenant, "ds_sample", parsed, redact=None)
    refused = runner.run(_job(tenant, "dana", "ds_sample"))
    assert refused.status == "failed" and "no consent attestation" in refused.message
