from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from infra.clients import pg_pool
from infra.crypto import TURNS_TEXT, is_sealed
from schemas.models import (
    AuditRecord,
    DroppedField,
    Redaction,
    RunEvent,
    SessionEvent,
    TelemetryRedacted,
    TurnEvent,
)
from sinks.postgres import PostgresSink, PostgresSinkError


@pytest.fixture
async def sink(cfg, postgres_dsn):
    sink = PostgresSink(pg_pool(cfg, max_size=2))
    await sink.setup()
    yield sink
    await sink.close()


def _batch(tenant: str, sid: str, batch_id: str, n: int = 3) -> TelemetryRedacted:
    events = []
    for i in range(n):
        if i % 2:
            events.append(RunEvent(eventId=f"e{i}", ts=f"2025-03-04T10:00:{i:02d}Z", sessionId=sid, status="error",
                                   outputHash=f"h{i}", stderrPreview="Traceback for <PERSON>"))
        else:
            events.append(TurnEvent(eventId=f"e{i}", ts=f"2025-03-04T10:00:{i:02d}+01:00", sessionId=sid,
                                    role="interviewer", text=f"Question {i} for <PERSON>?", tokens=5))
    return TelemetryRedacted(
        eventId=batch_id, tenant=tenant, interviewSessionId=sid, events=events,
        droppedFields=[DroppedField(eventIndex=1, field="stdoutPreview", sha256="a" * 64, size=9000)],
        redactions=[Redaction(eventIndex=0, field="text", entityType="PERSON", count=1)],
    )


async def test_writes_events_turns_and_telemetry_session_once(sink, pg, tenant):
    sid = f"{tenant}-s"
    batch = _batch(tenant, sid, "b1", n=4)
    assert await sink.write([batch]) == 4
    assert await sink.write([batch, batch]) == 0, "a replayed batch inserts nothing"
    rows = pg.execute("SELECT event_id, type, ts, payload FROM telemetry_events WHERE session_id=%s ORDER BY event_id",
                      (sid,)).fetchall()
    assert [(r[0], r[1]) for r in rows] == [("e0", "turn"), ("e1", "run"), ("e2", "turn"), ("e3", "run")]
    assert rows[0][2] == datetime(2025, 3, 4, 9, 0, 0, tzinfo=timezone.utc), "ts normalised to UTC"
    assert rows[0][3]["redactions"] == [{"field": "text", "entityType": "PERSON", "count": 1}]
    assert rows[1][3]["droppedFields"] == [{"field": "stdoutPreview", "sha256": "a" * 64, "size": 9000}]
    assert rows[1][3]["outputHash"] == "h1" and rows[1][3]["eventId"] == "e1"
    assert "text" not in rows[0][3], "a turn's text is stored once, encrypted, in turns"
    turns = pg.execute("SELECT event_id, role, text, tokens FROM turns WHERE session_id=%s ORDER BY event_id",
                       (sid,)).fetchall()
    assert all(is_sealed(t[2]) and "Question" not in t[2] for t in turns)
    turns = [(e, r, TURNS_TEXT.open(text, tenant, (sid, e)), n) for e, r, text, n in turns]
    assert turns == [("e0", "interviewer", "Question 0 for <PERSON>?", 5), ("e2", "interviewer",
                                                                          "Question 2 for <PERSON>?", 5)]
    assert pg.execute("SELECT tenant FROM telemetry_sessions WHERE session_id=%s", (sid,)).fetchone() == (tenant,)
    # A later batch overlapping an earlier one (a client retry with one more event) adds only the new one.
    assert await sink.write([_batch(tenant, sid, "b2", n=5)]) == 1


async def test_telemetry_is_append_only_except_retention(sink, pg, tenant):
    sid = f"{tenant}-s"
    await sink.write([_batch(tenant, sid, "b1")])
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        pg.execute("UPDATE telemetry_events SET type='x' WHERE session_id=%s", (sid,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        pg.execute("DELETE FROM telemetry_events WHERE session_id=%s", (sid,))
    assert await sink.purge(datetime.now(timezone.utc) - timedelta(days=1), tenant=tenant) == 0
    assert await sink.purge(datetime.now(timezone.utc) + timedelta(seconds=1), tenant=tenant) == 3
    assert pg.execute("SELECT count(*) FROM turns WHERE session_id=%s", (sid,)).fetchone()[0] == 0


def _session_event(tenant, sid, kind, ts, **extra):
    return SessionEvent(eventId=f"{sid}:{kind}:{ts.timestamp()}", kind=kind, tenant=tenant, sessionId=sid,
                        interviewerId="dana", consentRecording=True, consentTraining=False, ts=ts, **extra)


async def test_session_upserts_keep_the_newest_state(sink, pg, tenant):
    sid = f"{tenant}-s"
    t0 = datetime(2025, 3, 4, 10, tzinfo=timezone.utc)
    created = _session_event(tenant, sid, "created", t0)
    updated = _session_event(tenant, sid, "updated", t0 + timedelta(minutes=5), videoUrl="s3://b/k.mp4")
    ended = _session_event(tenant, sid, "ended", t0 + timedelta(minutes=9), videoUrl="s3://b/k.mp4")
    await sink.write_sessions([created, updated, ended])
    state = "SELECT video_url, status, updated_at FROM sessions WHERE session_id=%s"
    assert pg.execute(state, (sid,)).fetchone() == ("s3://b/k.mp4", "ended", t0 + timedelta(minutes=9))
    # Replaying from the start, or an old event arriving late, changes nothing.
    await sink.write_sessions([created, updated, ended])
    await sink.write_sessions([updated])
    assert pg.execute(state, (sid,)).fetchone() == ("s3://b/k.mp4", "ended", t0 + timedelta(minutes=9))
    # Another tenant's event with the same session id cannot take the row over.
    await sink.write_sessions([_session_event(f"{tenant}-x", sid, "updated", t0 + timedelta(hours=1))])
    assert pg.execute("SELECT tenant FROM sessions WHERE session_id=%s", (sid,)).fetchone() == (tenant,)
    assert await sink.interviewers([sid, "missing"]) == {sid: "dana"}


async def test_audit_records_are_idempotent(sink, pg, tenant):
    records = [AuditRecord(auditId=f"{tenant}-a{i}", tenant=tenant, actor="gateway", action="telemetry.field_dropped",
                           resourceType="telemetry_event", resourceId=f"s/e{i}", outcome="dropped",
                           detail={"field": "text", "size": 9000}) for i in range(3)]
    assert await sink.write_audit(records) == 3
    assert await sink.write_audit(records) == 0
    assert pg.execute("SELECT count(*), min(detail->>'field') FROM audit_log WHERE tenant=%s",
                      (tenant,)).fetchone() == (3, "text")


async def test_unreachable_database_is_a_retriable_error(cfg):
    import socket

    from psycopg_pool import AsyncConnectionPool

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dsn = cfg.model_copy(update={"POSTGRES_PORT": port}).POSTGRES_DSN
    pool = AsyncConnectionPool(dsn, min_size=1, timeout=1.0, open=False)
    await pool.open(wait=False)
    try:
        with pytest.raises(PostgresSinkError) as info:
            await PostgresSink(pool).write([_batch("t", "s", "b")])
        assert info.value.retriable is True, "a store that is down is retried, not dead-lettered"
    finally:
        await pool.close()
