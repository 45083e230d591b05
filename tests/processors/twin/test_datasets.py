"""Importing transcripts into PostgreSQL (redacted, per-line transactions), live sessions, fixed splits."""

import json

import pytest

from infra.crypto import DATASET_TURNS
from processors.twin import datasets as ds
from processors.twin.corpus import Transcript, chronological_split


@pytest.fixture(scope="module")
def redact():
    """The telemetry pipeline's own redaction (processors.pii), bound to a tenant per call."""
    return ds.default_redactor


def _line(sid: str, turns, interviewer: str = "dana", started: str | None = "2025-01-01T10:00:00Z", **extra) -> str:
    return json.dumps({"interviewer_id": interviewer, "session_id": sid, "started_at": started, "turns": turns,
                       **extra})


GOOD = [{"role": "interviewer", "text": "Tell me about your last project."},
        {"role": "candidate", "text": "I built billing at Acme. Mail me at jane.doe@example.com."},
        {"role": "interviewer", "text": "Why did billing need a rewrite?"}]


def test_import_reports_bad_lines_and_stores_the_rest_redacted(pg, tenant, tmp_path, redact):
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join([
        _line("s1", GOOD),
        '{"interviewer_id": "dana", "session_id": "s2", "turns": [',                       # malformed JSON
        _line("s3", [{"role": "moderator", "text": "Welcome."}, *GOOD]),                   # unknown role
        _line("s4", []),                                                                   # empty session
        _line("s5", [{"role": "candidate", "text": "Hello?"}]),                           # no interviewer turn
        '["not", "an", "object"]',
        _line("s1", GOOD),                                                                 # duplicate id
        _line("s6", GOOD, meta={"ignored": True}),                                         # unknown field: fine
    ]) + "\n")
    report = ds.import_file(pg, path, tenant, "ds_mixed", redact=redact(tenant))
    assert (report.sessions_read, report.imported, report.failed) == (8, 2, 6)
    errors = dict(report.errors)
    assert "invalid JSON" in errors[2]
    assert "unknown role 'moderator'" in errors[3] and "turn 1" in errors[3]
    assert "no turns" in errors[4]
    assert "no interviewer turns" in errors[5]
    assert "expected a JSON object" in errors[6]
    assert "duplicate session_id 's1'" in errors[7]
    rows = pg.execute("SELECT session_id, turns, redactions, n_interviewer_turns FROM dataset_sessions"
                      " WHERE tenant=%s ORDER BY session_id", (tenant,)).fetchall()
    assert [r[0] for r in rows] == ["s1", "s6"]  # nothing of the bad lines
    assert "jane.doe@example.com" not in json.dumps(rows[0][1]) and "Acme" not in json.dumps(rows[0][1]), "encrypted"
    stored = json.dumps(DATASET_TURNS.open(rows[0][1], tenant, ("ds_mixed", "s1")))
    assert "jane.doe@example.com" not in stored and "<EMAIL_ADDRESS>" in stored
    assert rows[0][2].get("EMAIL_ADDRESS") == 1 and rows[0][3] == 2
    assert report.redactions["EMAIL_ADDRESS"] == 2


def test_reimport_is_idempotent_and_updates_changed_sessions(pg, tenant, tmp_path, redact):
    path = tmp_path / "a.jsonl"
    path.write_text(_line("s1", GOOD) + "\n" + _line("s2", GOOD) + "\n")
    first = ds.import_file(pg, path, tenant, redact=redact(tenant))
    assert first.dataset_ref == "ds_a" and first.imported == 2
    again = ds.import_file(pg, path, tenant, redact=redact(tenant))
    assert (again.imported, again.updated, again.unchanged) == (0, 0, 2)
    path.write_text(_line("s1", GOOD[:1]) + "\n" + _line("s2", GOOD, interviewer="someone_else") + "\n")
    changed = ds.import_file(pg, path, tenant, redact=redact(tenant))
    assert changed.updated == 1 and changed.failed == 1 and "already stored for interviewer 'dana'" in changed.errors[0][1]
    assert ds.dataset_interviewers(pg, tenant, "ds_a") == {"dana": 2}


def test_plain_speaker_labelled_text(pg, tenant, tmp_path, redact):
    path = tmp_path / "dana-notes.txt"
    path.write_text("# session_id: p1\nInterviewer: Walk me through the design.\nCandidate: We used a queue.\n"
                    "It was fast.\nInterviewer: Why a queue?\n---\n# session_id: p2\nModerator: hi\n")
    report = ds.import_file(pg, path, tenant, "notes", interviewer_id="dana", redact=redact(tenant))
    assert report.dataset_ref == "ds_notes" and report.imported == 1 and report.failed == 1
    assert "unknown speaker label 'Moderator'" in report.errors[0][1]
    (sess,) = ds.load_sessions(pg, tenant, "ds_notes", "dana")
    assert [t.role for t in sess.turns] == ["interviewer", "candidate", "interviewer"]
    assert sess.turns[1].text == "We used a queue. It was fast."


def test_dataset_refs():
    assert ds.dataset_ref_for("SCOTUS dev") == "ds_scotus_dev"
    assert ds.dataset_ref_for("ds_x") == "ds_x" and ds.dataset_ref_for("live:acme") == "live:acme"
    with pytest.raises(ds.DatasetError):
        ds.dataset_ref_for("!!!")


def _sessions(n: int, start: int = 0) -> list[Transcript]:
    return [Transcript.model_validate({"interviewer_id": "dana", "session_id": f"s{i:02d}",
                                       "started_at": f"2025-01-{i + 1:02d}T00:00:00Z", "turns": GOOD})
            for i in range(start, start + n)]


def test_split_is_chronological_stored_and_stable(pg, tenant):
    first, reused = ds.ensure_split(pg, tenant, "dana", "ds_x", _sessions(10), val=0.1, test=0.2)
    assert not reused
    assert [t.session_id for t in first.test] == ["s08", "s09"] and [t.session_id for t in first.val] == ["s07"]
    # Different fractions later change nothing: the stored split wins.
    again, reused = ds.ensure_split(pg, tenant, "dana", "ds_x", list(reversed(_sessions(10))), val=0.4, test=0.4)
    assert reused and [t.session_id for t in again.train] == [t.session_id for t in first.train]
    # New sessions fill what each part lacks, earlier ones train, the newest held out; old ones keep their split.
    grown, _ = ds.ensure_split(pg, tenant, "dana", "ds_x", _sessions(15), val=0.1, test=0.2)
    proposal = chronological_split(_sessions(15), val=0.1, test=0.2)
    assert [len(grown.train), len(grown.val), len(grown.test)] == [len(proposal.train), len(proposal.val),
                                                                    len(proposal.test)]
    assert {t.session_id for t in grown.test} >= {"s08", "s09", "s14"}
    assert {t.session_id for t in first.train} | {"s10", "s11"} <= {t.session_id for t in grown.train}
    assert "s09" not in {t.session_id for t in grown.train}
    # As sessions keep coming, training keeps growing (not every new session lands in test).
    more, _ = ds.ensure_split(pg, tenant, "dana", "ds_x", _sessions(30), val=0.1, test=0.2)
    assert len(more.train) >= 20 and {t.session_id for t in grown.test} <= {t.session_id for t in more.test}
    fresh, reused = ds.ensure_split(pg, tenant, "dana", "ds_x", _sessions(15), resplit=True)
    assert not reused and len(fresh.test) == 3


def test_live_sessions_become_a_dataset(pg, tenant):
    rows = [  # (session, consent, [(role, text)])
        ("live-1", True, [("interviewer", "Hi, tell me about you."), ("candidate", "I am Bob."), ("twin", "draft"),
                          ("candidate", "I build APIs."), ("interviewer", "Which ones?")]),
        ("live-2", False, [("interviewer", "Not consented."), ("candidate", "ok")]),
        ("live-3", True, [("candidate", "Only me"), ("twin", "twin-led interview")]),
    ]
    for sid, consent, turns in rows:
        pg.execute("INSERT INTO sessions (session_id, tenant, interviewer_id, consent_training) VALUES (%s, %s, 'dana', %s)",
                   (f"{tenant}-{sid}", tenant, consent))
        for i, (role, text) in enumerate(turns):
            pg.execute("INSERT INTO turns (tenant, session_id, event_id, role, text, ts) VALUES (%s, %s, %s, %s, %s,"
                       " now() + make_interval(secs => %s))", (tenant, f"{tenant}-{sid}", f"e{i}", role, text, i))
    report = ds.sync_live_sessions(pg, tenant)
    assert report.dataset_ref == f"live:{tenant}" and report.imported == 1 and report.skipped == 1
    (sess,) = ds.load_sessions(pg, tenant, f"live:{tenant}", "dana")
    # twin turns dropped, consecutive candidate turns merged
    assert [(t.role, t.text) for t in sess.turns] == [
        ("interviewer", "Hi, tell me about you."), ("candidate", "I am Bob. I build APIs."),
        ("interviewer", "Which ones?")]
    assert ds.dataset_exists(pg, tenant, f"live:{tenant}") and not ds.dataset_exists(pg, tenant, "live:other")
    assert ds.sync_live_sessions(pg, tenant).unchanged == 1
    # Consent withdrawn: the copy leaves the dataset on the next sync.
    pg.execute("UPDATE sessions SET consent_training=false WHERE session_id=%s", (f"{tenant}-live-1",))
    assert ds.sync_live_sessions(pg, tenant).removed == 1
    assert ds.load_sessions(pg, tenant, f"live:{tenant}") == []


def test_syncing_some_sessions_leaves_the_others_and_keeps_the_order(pg, tenant):
    for k in range(3):
        sid = f"{tenant}-s{k}"
        pg.execute("INSERT INTO sessions (session_id, tenant, interviewer_id, consent_training, created_at)"
                   " VALUES (%s, %s, 'dana', true, now() + make_interval(secs => %s))", (sid, tenant, k))
        for i, role in enumerate(("interviewer", "candidate")):
            pg.execute("INSERT INTO turns (tenant, session_id, event_id, role, text, ts) VALUES (%s, %s, %s, %s, %s,"
                       " now())", (tenant, sid, f"e{i}", role, f"{role} line of session {k}"))
    # The newest first, then the oldest, one at a time (the growth agent's batches): order is by creation.
    assert ds.sync_live_sessions(pg, tenant, session_ids=[f"{tenant}-s2"]).imported == 1
    assert ds.sync_live_sessions(pg, tenant, session_ids=[f"{tenant}-s0"]).imported == 1
    assert [t.session_id for t in ds.load_sessions(pg, tenant, f"live:{tenant}")] == [f"{tenant}-s0", f"{tenant}-s2"]
    assert ds.sync_live_sessions(pg, tenant).imported == 1  # the whole tenant: s1 joins between them
    assert [t.session_id for t in ds.load_sessions(pg, tenant, f"live:{tenant}")] == [
        f"{tenant}-s0", f"{tenant}-s1", f"{tenant}-s2"]
    # Withdrawn consent of one session: a sync of another session does not touch it; its own removes it.
    pg.execute("UPDATE sessions SET consent_training=false WHERE session_id=%s", (f"{tenant}-s1",))
    assert ds.sync_live_sessions(pg, tenant, session_ids=[f"{tenant}-s0"]).removed == 0
    assert ds.sync_live_sessions(pg, tenant, session_ids=[f"{tenant}-s1"]).removed == 1
    assert [t.session_id for t in ds.load_sessions(pg, tenant, f"live:{tenant}")] == [f"{tenant}-s0", f"{tenant}-s2"]


def test_sessions_are_stored_encrypted_and_train_from_there(pg, tenant, weaviate_client, tmp_path):
    import uuid

    from infra.settings import Settings
    from processors.twin.corpus import read_transcripts
    from processors.twin.embeddings import get_embedder
    from processors.twin.jobs import JobRunner
    from processors.twin.memory import PersonaMemory
    from schemas.models import TrainingJob
    from tests.conftest import SAMPLE_CORPUS

    phrase = "I lead the platform team"  # dana's first line in the sample corpus
    report = ds.import_transcripts(pg, tenant, "ds_sample", read_transcripts(SAMPLE_CORPUS), redact=None,
                                   consent_attested_by="cli:test")
    assert report.imported == 6
    raw = [r[0] for r in pg.execute("SELECT turns::text FROM dataset_sessions WHERE tenant=%s", (tenant,))]
    assert len(raw) == 6 and all(r.startswith('{"sealed": "twenc1:') and "platform" not in r for r in raw)
    assert phrase in ds.load_sessions(pg, tenant, "ds_sample", "dana")[0].turns[0].text
    prefix = f"T{uuid.uuid4().hex[:8]}"
    memory = PersonaMemory.connect(weaviate_client, get_embedder(), prefix=prefix)
    try:
        runner = JobRunner(Settings(WEAVIATE_COLLECTION_PREFIX=prefix, TWIN_VAR_DIR=tmp_path), memory=memory,
                           worker_id="datasets-test")
        done = runner.run(TrainingJob(jobId=str(uuid.uuid4()), tenant=tenant, interviewerId="dana",
                                      datasetRef="ds_sample", options={"classifier": False}))
        assert done.status == "succeeded", done.message
        profile = runner.profiles.load(tenant, "dana", done.version)
        assert sum(len(p) for p in profile.artefacts["split"].values()) == 6
        texts = " ".join(p.read_text(errors="replace") for p in (tmp_path / "models" / tenant / "dana").rglob("*")
                         if p.is_file() and p.suffix != ".joblib")
        assert "marketplaces" in texts and "twenc1" not in texts, "trained on the decrypted text"
    finally:
        weaviate_client.collections.delete(f"{prefix}PersonaMemory")
