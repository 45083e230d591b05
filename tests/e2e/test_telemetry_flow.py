"""A recorded interview through the real capture pipeline, end to end.

gateway (HTTP) → telemetry.raw → pii_redaction → telemetry.redacted → PostgreSQL, Weaviate, Redis,
features.style / features.code_activity. Turns come from a real session of the in-repo SCOTUS fixture
(a justice questioning an advocate) with names, e-mails and phone numbers injected; IDE events are
interleaved. The test then finds exactly the events it sent, redacted, in every store and analytics
topic, and replays the topics from offset 0 into the sinks to show that nothing is duplicated.
"""

import hashlib
import json
import struct
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from infra.crypto import TURNS_TEXT
from tests.credentials import auth_headers
from tests.waiting import eventually
from schemas.topics import (
    AUDIT_RECORDS,
    FEATURES_CODE_ACTIVITY,
    FEATURES_STYLE,
    SESSIONS_LIFECYCLE,
    TELEMETRY_RAW,
    TELEMETRY_REDACTED,
)

pytestmark = pytest.mark.e2e

NAMES = ["Priya Raman", "John Smith", "Maria Lopez", "Wei Zhang"]
BATCH = 25


def _pii(i: int) -> tuple[str, list[str]]:
    """An injected sentence and the raw values that must not appear downstream."""
    name = NAMES[i % len(NAMES)]
    email = f"{name.split()[0].lower()}.{i}@example.com"
    phone = f"415-555-{i % 10000:04d}"
    forms = [
        (f"By the way, my name is {name}; email me at {email}.", [name, email]),
        (f"You can call me on {phone} after the interview.", [phone]),
        (f"Thanks {name}, reach {email} or {phone} if anything changes.", [name.split()[0], email, phone]),
    ]
    return forms[i % len(forms)]


# A long session of the fixture (69 turns, the first 60 are sent): elena_kagan in American Legion v.
# American Humanist Association.
RECORDED_SESSION = "2018.17-1717-t01:elena_kagan"


def recorded_interview(scotus_slice, session_id: str, max_turns: int = 60):
    """Events of a real interview with PII injected; returns (events, raw PII values, interviewer id)."""
    with open(scotus_slice) as fh:
        transcript = next(t for t in map(json.loads, fh) if t["session_id"] == RECORDED_SESSION)
    t0 = datetime(2025, 3, 4, 10, tzinfo=timezone.utc)
    events, secrets, clock = [], [], 0
    turns = [t for t in transcript["turns"] if t["text"].strip()][:max_turns]
    for i, turn in enumerate(turns):
        words = turn["text"].split()[:100]  # one TurnChunk per turn
        text = " ".join(words)
        if i % 4 == 1:
            sentence, values = _pii(i)
            text = f"{text} {sentence}"
            secrets += values
        clock += 20
        events.append({"type": "turn", "ts": (t0 + timedelta(seconds=clock)).isoformat(), "sessionId": session_id,
                       "role": turn["role"], "text": text, "tokens": len(words)})
        for k in range(2):  # IDE activity between turns
            clock += 5
            events.append({"type": "code_edit", "ts": (t0 + timedelta(seconds=clock)).isoformat(),
                           "sessionId": session_id, "file": "solution.py", "diffChars": 3 + k + i,
                           "beforeHash": f"h{i}{k}", "afterHash": f"h{i}{k + 1}"})
        if i % 3 == 0:
            clock += 3
            run = {"type": "run", "ts": (t0 + timedelta(seconds=clock)).isoformat(), "sessionId": session_id,
                   "status": "success" if i % 2 else "error", "durationMs": 120.0, "outputHash": f"out{i}"}
            if i % 6 == 0:
                run["stderrPreview"] = f"AssertionError: expected {i}, contact wei.zhang{i}@example.com"
                secrets.append(f"wei.zhang{i}@example.com")
            events.append(run)
    events.append({"type": "control", "ts": (t0 + timedelta(seconds=clock + 1)).isoformat(), "sessionId": session_id,
                   "action": "end"})
    return events, secrets, transcript["interviewer_id"]


def mp4(size: int) -> bytes:
    ftyp = struct.pack(">I4s4sI8s", 24, b"ftyp", b"isom", 512, b"isomiso2")
    return ftyp + struct.pack(">I4s", size - 24, b"mdat") + hashlib.shake_256(b"v").digest(size - 32)


def _no_secret(blob: str, secrets: list[str]) -> list[str]:
    return [s for s in secrets if s in blob]


async def test_recorded_interview_reaches_every_store_redacted_once(
        scotus_slice, telemetry_pipeline, gateway_factory, read_topic, weaviate_client, pg, tenant, tmp_path):
    cfg = telemetry_pipeline.cfg  # the worker's topic prefix; the gateway gets the same
    _, url = gateway_factory("telemetry-gateway", extra_env={**telemetry_pipeline.env,
                                                             "OBJECT_STORE_URL": (tmp_path / "objects").as_uri()})
    headers = auth_headers(tenant)
    sid = f"{tenant}-interview"
    events, secrets, interviewer = recorded_interview(scotus_slice, sid)
    big = "x" * (cfg.TELEMETRY_MAX_PREVIEW_CHARS + 10)
    events.append({"type": "run", "ts": "2025-03-04T12:00:00Z", "sessionId": sid, "status": "success",
                   "outputHash": "big", "stdoutPreview": big})
    assert len(events) > 150 and len(secrets) > 15

    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
        created = await http.post("/api/interviews/session", json={
            "sessionId": sid, "interviewerId": interviewer, "candidateRef": "advocate-1", "role": "Counsel",
            "seniority": "staff", "domain": "law", "consentRecording": True, "consentTraining": True})
        assert created.status_code == 201, created.text
        init = await http.post("/api/interviews/session/telemetry", json={"interviewSessionId": sid})
        assert init.status_code == 200 and init.json()["total"] == 0

        sent_ids: list[str] = []
        batches = [events[i:i + BATCH] for i in range(0, len(events), BATCH)]
        for batch in batches:
            resp = await http.post("/api/interviews/session/telemetry", json={"interviewSessionId": sid,
                                                                              "events": batch})
            assert resp.status_code == 202, resp.text
            sent_ids += resp.json()["eventIds"]
        # A client retry of a whole batch (same content): same ids, nothing new downstream.
        retry = await http.post("/api/interviews/session/telemetry", json={"interviewSessionId": sid,
                                                                           "events": batches[1]})
        assert retry.json()["eventIds"] == sent_ids[BATCH:2 * BATCH]

        recording = await http.post(f"/api/interviews/session/screen-recording?interviewSessionId={sid}",
                                    files={"file": ("rec.mp4", mp4(300_000), "video/mp4")})
        assert recording.status_code == 201, recording.text
        patched = await http.patch(f"/api/interviews/session/{sid}", json={"videoUrl": recording.json()["url"]})
        assert patched.status_code == 200

    assert len(set(sent_ids)) == len(events), "every event has its own id"
    turn_ids = [i for i, e in zip(sent_ids, events) if e["type"] == "turn"]
    interviewer_turn_ids = [i for i, e in zip(sent_ids, events) if e["type"] == "turn" and e["role"] == "interviewer"]
    ide_batches = sum(1 for b in batches if any(e["type"] in ("code_edit", "run") for e in b))

    # ---- PostgreSQL: exactly the sent events, redacted
    async def stored():
        n = pg.execute("SELECT count(*) FROM telemetry_events WHERE session_id=%s", (sid,)).fetchone()[0]
        return n if n >= len(events) else 0

    await eventually(stored, 90, "telemetry events in PostgreSQL")

    def check_postgres():
        rows = pg.execute("SELECT event_id, type, payload FROM telemetry_events WHERE session_id=%s", (sid,)).fetchall()
        assert sorted(r[0] for r in rows) == sorted(sent_ids), "nothing lost, nothing duplicated"
        leaks = _no_secret(json.dumps([r[2] for r in rows]), secrets)
        assert leaks == [], f"raw PII in telemetry_events: {leaks}"
        turns = pg.execute("SELECT event_id, text FROM turns WHERE session_id=%s", (sid,)).fetchall()
        assert _no_secret(json.dumps(turns), secrets) == []
        turns = [(e, TURNS_TEXT.open(text, tenant, (sid, e))) for e, text in turns]  # stored encrypted
        assert sorted(t[0] for t in turns) == sorted(turn_ids)
        assert _no_secret(json.dumps(turns), secrets) == []
        assert any("<PERSON>" in t[1] for t in turns) and any("<EMAIL_ADDRESS>" in t[1] for t in turns)
        assert any("<PHONE_NUMBER>" in t[1] for t in turns)
        big_row = next(r for r in rows if r[2].get("outputHash") == "big")
        assert "stdoutPreview" not in big_row[2]
        assert big_row[2]["droppedFields"][0]["sha256"] == hashlib.sha256(big.encode()).hexdigest()
        return len(rows)

    check_postgres()

    async def audited():
        return pg.execute("SELECT count(*) FROM audit_log WHERE tenant=%s AND action='telemetry.field_dropped'",
                          (tenant,)).fetchone()[0]

    assert await eventually(audited, 30, "the audit record of the dropped preview") == 1
    session_row = pg.execute("SELECT video_url, consent_recording FROM sessions WHERE session_id=%s", (sid,)).fetchone()
    assert session_row == (recording.json()["url"], True)

    # ---- Weaviate: one TurnChunk per turn, in this tenant, under the session's interviewer
    from sinks.weaviate import TURN_CHUNKS, WeaviateSink

    chunks = WeaviateSink(weaviate_client, TURN_CHUNKS, prefix=cfg.WEAVIATE_COLLECTION_PREFIX)

    async def indexed():
        if not weaviate_client.collections.exists(chunks.name):
            return 0
        n = chunks.count(tenant, where={"sessionId": sid})
        return n if n >= len(turn_ids) else 0

    await eventually(indexed, 90, "turn chunks in Weaviate")

    def check_weaviate():
        from weaviate.classes.query import Filter

        coll = weaviate_client.collections.use(chunks.name).with_tenant(tenant)
        objs = coll.query.fetch_objects(filters=Filter.by_property("sessionId").equal(sid), limit=1000).objects
        assert sorted(o.properties["eventId"] for o in objs) == sorted(turn_ids)
        assert {o.properties["interviewerId"] for o in objs} == {interviewer} == {"elena_kagan"}
        assert _no_secret(json.dumps([o.properties["text"] for o in objs]), secrets) == []
        return len(objs)

    check_weaviate()
    assert chunks.near_vector(f"{tenant}-other", [0.1] * 384, limit=1) == [], "other tenants see nothing"

    # ---- Redis: hot session state for the respond path
    from infra.clients import redis_client
    from sinks.redis import RedisSink

    redis = RedisSink(redis_client(cfg), prefix=cfg.REDIS_KEY_PREFIX, last_turns=cfg.REDIS_LAST_TURNS)

    async def counted():
        c = await redis.counters(tenant, sid)
        return c if c.get("events") == len(events) else None

    counters = await eventually(counted, 60, "Redis counters")
    assert counters["turn"] == len(turn_ids)
    assert counters["code_edit"] + counters["run"] + counters["turn"] + counters["control"] == len(events)
    recent = await redis.recent_turns(tenant, sid)
    assert [t["eventId"] for t in recent] == turn_ids[-cfg.REDIS_LAST_TURNS:]
    assert _no_secret(json.dumps(recent), secrets) == []

    # ---- Analytics topics: redacted events, style per interviewer turn, activity per IDE batch
    mine = lambda m: m.tenant == tenant and getattr(m, "interviewSessionId", getattr(m, "sessionId", None)) == sid  # noqa: E731
    redacted = await read_topic(TELEMETRY_REDACTED, mine, count=len(batches), settle=2, on=cfg)
    assert len(redacted) == len(batches), "the retried batch was not published twice"
    assert sorted(e.eventId for b in redacted for e in b.events) == sorted(sent_ids)
    assert _no_secret(json.dumps([b.model_dump(mode="json") for b in redacted]), secrets) == []
    styles = await read_topic(FEATURES_STYLE, mine, count=len(interviewer_turn_ids), timeout=60, settle=2, on=cfg)
    assert sorted(s.eventId for s in styles) == sorted(interviewer_turn_ids)
    activity = await read_topic(FEATURES_CODE_ACTIVITY, mine, count=ide_batches, timeout=60, settle=2, on=cfg)
    assert len(activity) == ide_batches
    last = max(activity, key=lambda a: a.windowEnd)
    assert last.edits == sum(e["type"] == "code_edit" for e in events)
    assert last.runs == sum(e["type"] == "run" for e in events)
    # Only the raw topic (3-day retention, read by the redaction agent alone) ever held the PII.
    raw = await read_topic(TELEMETRY_RAW, mine, on=cfg)
    assert _no_secret(json.dumps([b.model_dump(mode="json") for b in raw]), secrets), "the test did inject PII"

    # ---- Replay every topic the sinks read, from offset 0, through the sinks' own code paths
    from processors.audit_storage import store_audit_records
    from processors.engine import resources
    from processors.replay import replay_topic
    from processors.session_state import apply_session_state
    from processors.session_storage import store_session_events
    from processors.telemetry_storage import store_telemetry_batches
    from processors.vector_indexing import index_turn_batches

    async def sinks(batches_):
        await store_telemetry_batches(batches_)
        await apply_session_state(batches_)
        await index_turn_batches([b for b in batches_ if b.tenant == tenant])  # embedding others' turns is not needed

    try:
        stats = await replay_topic(cfg, TELEMETRY_REDACTED, sinks)
        # The dead-letter tests put poison on this topic on purpose: the replay skips and counts it.
        assert stats.records >= len(batches)
        await replay_topic(cfg, SESSIONS_LIFECYCLE, store_session_events)
        await replay_topic(cfg, AUDIT_RECORDS, store_audit_records)
    finally:
        await resources.close()
    assert check_postgres() == len(events)
    assert check_weaviate() == len(turn_ids)
    assert (await redis.counters(tenant, sid))["events"] == len(events)
    assert await audited() == 1
    assert pg.execute("SELECT video_url FROM sessions WHERE session_id=%s", (sid,)).fetchone()[0] == recording.json()["url"]
    await redis.close()
