"""`twin import`, `twin train`, `twin profile ...`, `twin datasets list` through typer's CliRunner, on real services.

The data is the first 12 sessions of one justice in the in-repo SCOTUS fixture
(infra/samples/scotus_oyez_slice.jsonl), written to a temporary file.
"""

import json
import uuid

import psycopg
import pytest
from typer.testing import CliRunner

from infra import cli
from infra.settings import settings
from processors.twin import datasets as ds
from processors.twin.corpus import parse_jsonl_line

JUSTICE = "elena_kagan"


@pytest.fixture(scope="module")
def slice_file(scotus_slice, tmp_path_factory):
    lines = []
    with open(scotus_slice) as fh:
        for line in fh:
            if json.loads(line)["interviewer_id"] == JUSTICE:
                lines.append(line)
            if len(lines) == 12:
                break
    assert len(lines) == 12
    path = tmp_path_factory.mktemp("corpus") / "kagan12.jsonl"
    path.write_text("".join(lines))
    return path


@pytest.fixture(scope="module")
def env(postgres_dsn, weaviate_client, tmp_path_factory):
    """A tenant, and settings pointing artefacts and Weaviate collections at names of this module."""
    mp = pytest.MonkeyPatch()
    prefix = f"T{uuid.uuid4().hex[:8]}"
    mp.setattr(settings, "TWIN_VAR_DIR", tmp_path_factory.mktemp("var"))
    mp.setattr(settings, "WEAVIATE_COLLECTION_PREFIX", prefix)
    mp.setattr(cli.console, "width", 220)  # tables keep whole paths and names
    mp.setattr(cli.err, "width", 220)
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:  # a tiny dataset of someone else
        ds.import_transcripts(conn, tenant, "ds_small", [parse_jsonl_line(json.dumps(
            {"interviewer_id": "dana", "session_id": "x1", "turns": [{"role": "interviewer", "text": "Hi?"}]}))],
            redact=None, consent_attested_by="pytest")
    yield tenant
    mp.undo()
    weaviate_client.collections.delete(f"{prefix}PersonaMemory")


def twin(*args: str):
    return CliRunner().invoke(cli.app, [str(a) for a in args], catch_exceptions=False)


def test_import_train_profile_and_retrain(env, slice_file, pg):
    tenant = env
    imported = twin("import", slice_file, "--tenant", tenant, "--dataset", "scotus", "--consent-attested")
    assert imported.exit_code == 0, imported.output
    assert f"imported into ds_scotus (tenant {tenant})" in imported.output
    assert JUSTICE in imported.output and "outcome" in imported.output
    n = pg.execute("SELECT count(*) FROM dataset_sessions WHERE tenant=%s AND dataset_ref='ds_scotus'",
                   (tenant,)).fetchone()[0]
    assert n == 12
    # Importing the same file again changes nothing.
    again = twin("import", slice_file, "--tenant", tenant, "--dataset", "scotus", "--json", "--consent-attested")
    assert again.exit_code == 0 and json.loads(again.output)["unchanged"] == 12

    first = twin("train", JUSTICE, "--tenant", tenant, "--dataset", "ds_scotus")
    assert first.exit_code == 0, first.output
    assert "succeeded" in first.output and "9/1/2" in first.output and "style_classifier.joblib" in first.output

    shown = twin("profile", "show", JUSTICE, "--tenant", tenant)
    assert shown.exit_code == 0, shown.output
    for part in (f"{JUSTICE} (tenant {tenant}) v1", "style features", "directness", "questionForm",
                 "typical openings", "lead-ins", "policy: next-move rates", "finetune/train.jsonl",
                 "classifier (val)", "ds_scotus"):
        assert part in shown.output, (part, shown.output)

    second = twin("train", JUSTICE, "--tenant", tenant, "--dataset", "scotus", "--no-classifier", "--test", "0.4")
    assert second.exit_code == 0, second.output
    assert "9/1/2 (stored split reused)" in second.output
    listed = twin("profile", "list", "--tenant", tenant)
    assert "v2" in listed.output and JUSTICE in listed.output
    as_json = json.loads(twin("profile", "show", JUSTICE, "--tenant", tenant, "--version", "1", "--json").output)
    v2 = json.loads(twin("profile", "show", JUSTICE, "--tenant", tenant, "--json").output)
    assert as_json["artefacts"]["split"] == v2["artefacts"]["split"] and v2["version"] == 2
    rolled = twin("profile", "activate", JUSTICE, "1", "--tenant", tenant)
    assert rolled.exit_code == 0 and json.loads(twin("profile", "show", JUSTICE, "--tenant", tenant,
                                                     "--json").output)["version"] == 1
    datasets = twin("datasets", "list", "--tenant", tenant)
    assert "ds_scotus" in datasets.output and f"{JUSTICE} (12)" in datasets.output


def test_import_reports_malformed_lines_and_keeps_the_good_ones(env, tmp_path, pg):
    tenant = env
    good = {"interviewer_id": "dana", "session_id": "ok-1", "started_at": None, "turns": [
        {"role": "interviewer", "text": "Why Redis?"}, {"role": "candidate", "text": "Call me on 212-555-0199."}]}
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join([
        json.dumps(good),
        "{not json",
        json.dumps({**good, "session_id": "bad-role", "turns": [{"role": "judge", "text": "Order!"}]}),
        json.dumps({**good, "session_id": "empty", "turns": []}),
        json.dumps({**good, "session_id": "no-interviewer", "turns": [{"role": "candidate", "text": "hi"}]}),
    ]) + "\n")
    result = twin("import", path, "--tenant", tenant, "--dataset", "bad", "--consent-attested")
    assert result.exit_code == 2, result.output
    for message in ("line 2: invalid JSON", "line 3 (session bad-role): turn 1 role: unknown role 'judge'",
                    "line 4 (session empty)", "line 5 (session no-interviewer)", "no interviewer turns"):
        assert message in result.output, message
    rows = pg.execute("SELECT session_id, turns FROM dataset_sessions WHERE tenant=%s AND dataset_ref='ds_bad'",
                      (tenant,)).fetchall()
    assert [r[0] for r in rows] == ["ok-1"] and "212-555-0199" not in json.dumps(rows[0][1])
    all_bad = tmp_path / "all-bad.jsonl"
    all_bad.write_text("{nope\n")
    assert twin("import", all_bad, "--tenant", tenant, "--consent-attested").exit_code == 1


@pytest.mark.parametrize("args, message", [
    (("train", JUSTICE, "--dataset", "ds_nowhere"), "dataset 'ds_nowhere' does not exist"),
    (("train", "john_roberts", "--dataset", "ds_small"), "no sessions of interviewer 'john_roberts' in ds_small"),
    (("train", JUSTICE, "--dataset", "ds_small", "--val", "0.7"), "bad options"),
    (("profile", "show", "nobody"), "no active profile for 'nobody'"),
    (("import", "/no/such/file.jsonl"), "no such file"),
    (("import",), "give a FILE to import, or --live"),
])
def test_clear_errors(env, args, message):
    result = twin(*args, "--tenant", env)
    assert result.exit_code == 1 and message in result.output, result.output


def test_a_prohibited_document_written_as_a_sentence_is_refused_with_the_reason(env, tmp_path):
    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"kind": "prohibited", "key": "pay",
                                "text": "Never ask the candidate what they earn now or earned before."}) + "\n")
    result = twin("train", JUSTICE, "--dataset", "ds_small", "--docs", docs, "--tenant", env)
    assert result.exit_code == 1 and "bad options" in result.output, result.output
    assert "a prohibited document lists topics" in " ".join(result.output.split())


def test_import_needs_a_consent_attestation_and_train_refuses_data_without_one(env, slice_file, pg):
    tenant = env
    refused = twin("import", slice_file, "--tenant", tenant, "--dataset", "unattested")
    assert refused.exit_code == 1 and "--consent-attested" in refused.output, refused.output
    assert pg.execute("SELECT count(*) FROM datasets WHERE tenant=%s AND dataset_ref='ds_unattested'",
                      (tenant,)).fetchone() == (0,)
    # A dataset written without one (by code, or before migration 0008) cannot be trained on.
    ds.import_transcripts(pg, tenant, "ds_legacy", [parse_jsonl_line(json.dumps(
        {"interviewer_id": "dana", "session_id": "l1", "turns": [{"role": "interviewer", "text": "Hi?"}]}))],
        redact=None)
    result = twin("train", "dana", "--tenant", tenant, "--dataset", "ds_legacy")
    assert result.exit_code == 1 and "no consent attestation" in result.output, result.output
    attested = twin("import", slice_file, "--tenant", tenant, "--dataset", "noted", "--consent-attested",
                    "--consent-note", "public record (Oyez)", "--json")
    assert attested.exit_code == 0, attested.output
    row = pg.execute("SELECT consent_attested_by, consent_note FROM datasets WHERE tenant=%s AND dataset_ref='ds_noted'",
                     (tenant,)).fetchone()
    assert row[0].startswith("cli:") and row[1] == "public record (Oyez)"
    audit = pg.execute("SELECT actor, resource_id, detail FROM audit_log WHERE tenant=%s AND action="
                       "'dataset.consent_attested' AND resource_id='ds_noted'", (tenant,)).fetchall()
    assert [(a[0], a[1]) for a in audit] == [(row[0], "ds_noted")] and audit[0][2]["sessions"] == 12


def test_import_audio_without_the_extra_says_what_to_install(tmp_path):
    audio = tmp_path / "interview.wav"
    audio.write_bytes(b"RIFF")
    result = twin("import-audio", audio, "--interviewer", "dana", "--out", tmp_path / "out.jsonl")
    assert result.exit_code == 1
    assert "pip install 'interviewer-twin[audio]'" in result.output
