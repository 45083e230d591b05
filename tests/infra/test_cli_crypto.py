"""Transcripts and recordings encrypted at rest, on the real PostgreSQL and a local object store:
nothing readable in the stored bytes, values that do not open elsewhere, and `twin crypto rotate`
from key a to key b (readable before, rewrapped after, resumable, audited; key a can go)."""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from infra import crypto
from infra.cli import app
from infra.cli_crypto import encrypt_existing, pg_status, rotate_postgres
from infra.clients import pg_pool
from infra.settings import Settings, settings
from processors.eval_sampling import recent_turns, sample_reply
from processors.twin import datasets as ds
from processors.twin.corpus import parse_jsonl_line
from schemas.models import TelemetryRedacted, TurnEvent
from schemas.samples import sample
from sinks.object_store import object_store_from_settings
from sinks.postgres import PostgresSink

PHRASE = "zanzibar ledger"  # said in every transcript below; must never be readable in the stores
runner = CliRunner()


@pytest.fixture
def use_keys(monkeypatch, pg, tenant):
    """``use_keys(active, *ids)``: this process (and the CLI it invokes) runs with keys ``ids`` of
    {a, b}, ``active`` wrapping new data, as after a restart with new settings. Returns the env.
    The tenant's sealed rows go afterwards: nobody else holds these keys (a later `twin crypto rotate`
    of the whole database would report them as unreadable)."""
    material = {"a": crypto.generate_key(), "b": crypto.generate_key()}

    def use(active: str, *ids: str) -> dict[str, str]:
        env = {"DATA_ENCRYPTION_KEYS": json.dumps({k: material[k] for k in ids}),
               "DATA_ENCRYPTION_ACTIVE_KEY": active, "OBJECT_STORE_ENCRYPTION_KEY": ""}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
            monkeypatch.setattr(settings, name, SecretStr(value) if name != "DATA_ENCRYPTION_ACTIVE_KEY" else value)
        return env

    yield use
    for table in dict.fromkeys(c.table for c in crypto.SEALED_COLUMNS):
        pg.execute(f"DELETE FROM {table} WHERE tenant=%s", (tenant,))


def _turns(sid: str) -> list[TurnEvent]:
    return [TurnEvent(eventId="e0", ts="2025-03-04T10:00:00Z", sessionId=sid, role="interviewer",
                      text=f"How does the {PHRASE} reconcile?"),
            TurnEvent(eventId="e1", ts="2025-03-04T10:00:05Z", sessionId=sid, role="candidate",
                      text="Nightly, with a checksum per account."),
            TurnEvent(eventId="e2", ts="2025-03-04T10:00:09Z", sessionId=sid, role="interviewer",
                      text="What breaks first at ten times the load?")]


async def _write_live_turns(tenant: str, sid: str, consent: bool = True) -> None:
    """Through the telemetry storage sink, as the telemetry_storage agent does."""
    sink = PostgresSink(pg_pool(settings, max_size=2))
    await sink.setup()
    try:
        async with sink.pool.connection() as conn:
            await conn.execute("INSERT INTO sessions (session_id, tenant, interviewer_id, consent_training)"
                               " VALUES (%s, %s, 'dana', %s)", (sid, tenant, consent))
        await sink.write([TelemetryRedacted(eventId=f"{sid}-b1", tenant=tenant, interviewSessionId=sid,
                                            events=_turns(sid))])
    finally:
        await sink.close()


async def _write_everything(pg, tenant: str, objects_uri: str) -> str:
    """Live turns, an imported dataset, the live dataset copy, a live eval sample and a recording."""
    sid = f"{tenant}-live"
    await _write_live_turns(tenant, sid)
    line = json.dumps({"interviewer_id": "dana", "session_id": "imp-1", "turns": [
        {"role": "interviewer", "text": f"Walk me through the {PHRASE}."},
        {"role": "candidate", "text": "It is double-entry."}]})
    report = ds.import_transcripts(pg, tenant, "ds_enc", [parse_jsonl_line(line)], redact=None,
                                   consent_attested_by="cli:test")
    assert report.imported == 1
    assert ds.sync_live_sessions(pg, tenant).imported == 1
    reply = sample("TwinReply").model_copy(update={"tenant": tenant, "sessionId": sid, "correlationId": f"{tenant}-c1",
                                                   "text": f"And if the {PHRASE} is late?"})
    published = []

    async def publish(s):
        published.append(s)

    pool = pg_pool(settings, max_size=2)
    await pool.open(wait=True, timeout=30)
    try:
        stored = await sample_reply(reply, pool, publish, cfg=Settings(EVAL_SAMPLE_RATE=1.0))
    finally:
        await pool.close()
    assert stored is not None and published and PHRASE in published[0].twinText
    store = object_store_from_settings(Settings(OBJECT_STORE_URL=objects_uri))
    writer = await store.begin(f"{tenant}/{sid}/rec.mp4", "video/mp4")
    await writer.write(b"\x00\x00\x00\x18ftypisom" + PHRASE.encode() * 1000)
    await writer.commit()
    return sid


def _raw(pg, tenant: str, every_table: bool = False) -> str:
    """Everything stored for the tenant's transcripts, as the database holds it."""
    rows = [pg.execute("SELECT text FROM turns WHERE tenant=%s", (tenant,)).fetchall(),
            pg.execute("SELECT payload::text FROM telemetry_events WHERE tenant=%s", (tenant,)).fetchall(),
            pg.execute("SELECT turns::text FROM dataset_sessions WHERE tenant=%s", (tenant,)).fetchall(),
            pg.execute("SELECT twin_text, real_text, context::text FROM eval_samples WHERE tenant=%s",
                       (tenant,)).fetchall()]
    assert all(rows) or not every_table, "every table has rows"
    return json.dumps(rows)


async def _read_everything(pg, tenant: str, sid: str, objects_uri: str) -> None:
    """Every read path of the stored transcripts returns the plaintext."""
    (imported,) = ds.load_sessions(pg, tenant, "ds_enc", "dana")
    assert imported.turns[0].text == f"Walk me through the {PHRASE}."
    (live,) = ds.load_sessions(pg, tenant, ds.live_ref(tenant), "dana")
    assert [t.text for t in live.turns] == [t.text for t in _turns(sid)]
    pool = pg_pool(settings, max_size=1)
    await pool.open(wait=True, timeout=30)
    try:
        async with pool.connection() as conn:
            assert [t["text"] for t in await recent_turns(conn, tenant, sid)] == [t.text for t in _turns(sid)]
    finally:
        await pool.close()
    sample_id, twin, ctx = pg.execute("SELECT sample_id, twin_text, context FROM eval_samples WHERE tenant=%s",
                                      (tenant,)).fetchone()
    assert crypto.EVAL_TWIN_TEXT.open(twin, tenant, (sample_id,)) == f"And if the {PHRASE} is late?"
    assert crypto.EVAL_CONTEXT.open(ctx, tenant, (sample_id,))["history"][0]["text"].endswith(f"{PHRASE} reconcile?")
    store = object_store_from_settings(Settings(OBJECT_STORE_URL=objects_uri))
    assert PHRASE.encode() in await store.read(f"{tenant}/{sid}/rec.mp4")


def test_rotation_from_key_a_to_key_b(pg, tenant, tmp_path, use_keys):
    # Not a coroutine: the CLI runs its own event loop (asyncio.run).
    uri = (tmp_path / "objects").as_uri()
    use_keys("a", "a")
    sid = asyncio.run(_write_everything(pg, tenant, uri))
    raw = _raw(pg, tenant, every_table=True)
    assert PHRASE not in raw and "double-entry" not in raw and "checksum" not in raw, "no plaintext in PostgreSQL"
    assert PHRASE.encode() not in (tmp_path / "objects" / tenant / sid / "rec.mp4").read_bytes()
    status = pg_status(pg, tenant)
    assert status == {"turns.text": {"a": 3}, "dataset_sessions.turns": {"a": 2}, "eval_samples.twin_text": {"a": 1},
                      "eval_samples.real_text": {}, "eval_samples.context": {"a": 1}}

    env = use_keys("b", "a", "b")  # new key b active; a still in the ring
    asyncio.run(_read_everything(pg, tenant, sid, uri))
    result = runner.invoke(app, ["crypto", "rotate", "--tenant", tenant, "--batch", "2"],
                           env={**env, "OBJECT_STORE_URL": uri, "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "rewrapped: 8 value(s), now under key b" in result.output
    assert pg_status(pg, tenant) == {k: {"b": n["a"]} if n else {} for k, n in status.items()}
    status_out = runner.invoke(app, ["crypto", "status", "--tenant", tenant, "--json"],
                               env={**env, "OBJECT_STORE_URL": uri})
    assert status_out.exit_code == 0, status_out.output
    assert json.loads(status_out.output)["counts"]["objects (recordings)"] == {"b": 1}
    (audit,) = pg.execute("SELECT actor, outcome, resource_id, detail FROM audit_log WHERE tenant=%s"
                          " AND action='crypto.rotate'", (tenant,)).fetchall()
    assert audit[0].startswith("cli:") and audit[1:3] == ("ok", "b")
    assert audit[3]["total"] == 8 and audit[3]["changed"]["turns.text"] == {"a": 3}
    assert audit[3]["changed"]["objects (recordings)"] == {"a": 1}
    assert PHRASE not in _raw(pg, tenant)

    use_keys("b", "b")  # key a removed from the ring: everything still reads
    asyncio.run(_read_everything(pg, tenant, sid, uri))
    use_keys("a", "a")  # and key a alone no longer opens anything
    with pytest.raises(crypto.CryptoError, match="'b' is not in the key ring"):
        ds.load_sessions(pg, tenant, "ds_enc", "dana")
    # A second run finds nothing to do, and says so in the audit log too.
    again = runner.invoke(app, ["crypto", "rotate", "--tenant", tenant, "--no-objects"], env=use_keys("b", "b"))
    assert again.exit_code == 0 and "rewrapped: 0 value(s)" in again.output, again.output


class _Interrupted(Exception):
    pass


async def test_an_interrupted_rotation_continues_where_it_stopped(pg, tenant, use_keys):
    use_keys("a", "a")
    await _write_live_turns(tenant, f"{tenant}-s")
    use_keys("b", "a", "b")
    ring = crypto.key_ring()

    def crash(n):
        raise _Interrupted

    with pytest.raises(_Interrupted):
        rotate_postgres(pg, ring, batch=1, progress=crash, tenant=tenant)
    assert pg_status(pg, tenant)["turns.text"] == {"a": 2, "b": 1}, "the first batch was committed"
    report = rotate_postgres(pg, ring, batch=1, tenant=tenant)
    assert report.total == 2 and report.errors == []
    assert pg_status(pg, tenant)["turns.text"] == {"b": 3}


async def test_a_value_copied_to_another_row_or_tenant_does_not_decrypt(pg, tenant, unique_name):
    sid = f"{tenant}-s"
    await _write_live_turns(tenant, sid)
    pg.execute("UPDATE turns SET text = (SELECT text FROM turns WHERE session_id=%s AND event_id='e0')"
               " WHERE session_id=%s AND event_id='e2'", (sid, sid))
    with pytest.raises(crypto.CryptoError):
        ds.sync_live_sessions(pg, tenant)
    line = json.dumps({"interviewer_id": "dana", "session_id": "imp-1", "turns": [
        {"role": "interviewer", "text": f"Walk me through the {PHRASE}."}]})
    other = f"t-other-{unique_name}"
    for t in (tenant, other):
        ds.import_transcripts(pg, t, "ds_enc", [parse_jsonl_line(line)], redact=None, consent_attested_by="cli:test")
    pg.execute("UPDATE dataset_sessions SET turns = (SELECT turns FROM dataset_sessions WHERE tenant=%s"
               " AND dataset_ref='ds_enc') WHERE tenant=%s AND dataset_ref='ds_enc'", (tenant, other))
    assert ds.load_sessions(pg, tenant, "ds_enc")[0].turns[0].text.endswith(f"{PHRASE}.")
    with pytest.raises(crypto.CryptoError, match="does not unwrap"):
        ds.load_sessions(pg, other, "ds_enc")


async def test_encrypt_existing_seals_rows_stored_in_clear(pg, tenant):
    sid = f"{tenant}-old"
    pg.execute("INSERT INTO sessions (session_id, tenant, interviewer_id, consent_training) VALUES (%s, %s, 'dana',"
               " true)", (sid, tenant))
    for i, (role, text) in enumerate([("interviewer", f"Why the {PHRASE}?"), ("candidate", "Audits.")]):
        pg.execute("INSERT INTO turns (tenant, session_id, event_id, role, text, ts) VALUES (%s, %s, %s, %s, %s,"
                   " now() + make_interval(secs => %s))", (tenant, sid, f"e{i}", role, text, i))
    assert ds.sync_live_sessions(pg, tenant).imported == 1
    clear_turns = [{"role": "interviewer", "text": f"Why the {PHRASE}?", "ts": None}]
    pg.execute("UPDATE dataset_sessions SET turns=%s WHERE tenant=%s", (json.dumps(clear_turns), tenant))
    pg.execute("INSERT INTO eval_samples (sample_id, tenant, interviewer_id, session_id, correlation_id, context,"
               " twin_text, real_text) VALUES (%s, %s, 'dana', %s, 'c', %s, %s, %s)",
               (f"{tenant}-x", tenant, sid, json.dumps({"history": [], "candidateTurn": PHRASE, "move": "probe"}),
                f"twin {PHRASE}", f"real {PHRASE}"))
    assert pg_status(pg, tenant) == {"turns.text": {"clear": 2}, "dataset_sessions.turns": {"clear": 1},
                                     "eval_samples.twin_text": {"clear": 1}, "eval_samples.real_text": {"clear": 1},
                                     "eval_samples.context": {"clear": 1}}
    assert ds.load_sessions(pg, tenant, ds.live_ref(tenant))[0].turns[0].text == f"Why the {PHRASE}?"  # clear reads
    ring = crypto.key_ring()
    report = encrypt_existing(pg, ring, batch=1, tenant=tenant)
    assert report.total == 6 and PHRASE not in _raw(pg, tenant)
    assert all(set(v) == {ring.active} for v in pg_status(pg, tenant).values())
    assert ds.load_sessions(pg, tenant, ds.live_ref(tenant))[0].turns[0].text == f"Why the {PHRASE}?"
    ctx = pg.execute("SELECT context FROM eval_samples WHERE tenant=%s", (tenant,)).fetchone()[0]
    assert ctx["move"] == "probe" and crypto.EVAL_CONTEXT.open(ctx, tenant, (f"{tenant}-x",))["candidateTurn"] == PHRASE
    assert encrypt_existing(pg, ring, tenant=tenant).total == 0
