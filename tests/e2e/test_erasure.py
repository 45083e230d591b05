"""Erasing a session that went through the real capture pipeline, end to end.

gateway (HTTP) → telemetry.raw → pii_redaction → telemetry.redacted → PostgreSQL, Weaviate, Redis, plus a
recording in the object store and derived rows (eval samples and ratings, a dataset copy, a split, a
persona-memory exemplar). ``DELETE /api/interviews/session/{id}`` while a batch is still in flight; then
the topics are replayed from offset 0 through the sinks. Nothing of the session is left anywhere, the
session beside it is untouched, and every store's deletion is in the audit log.
"""

import asyncio
import hashlib
import struct
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from schemas.topics import SESSIONS_LIFECYCLE, TELEMETRY_REDACTED
from tests.credentials import auth_headers
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

BASE = "/api/interviews/session"
TABLES = ("telemetry_events", "turns", "telemetry_sessions", "recordings", "eval_samples", "eval_ratings",
          "dataset_sessions", "interviewer_splits", "sessions")


def _events(sid: str, n: int, start: int = 0) -> list[dict]:
    t0 = datetime(2026, 1, 5, 9, tzinfo=timezone.utc)
    out = []
    for i in range(start, start + n):
        role = "interviewer" if i % 2 == 0 else "candidate"
        out.append({"type": "turn", "ts": (t0 + timedelta(seconds=20 * i)).isoformat(), "sessionId": sid,
                    "role": role, "text": f"Turn {i}: how would you shard the {['queue', 'cache'][i % 2]} here?"})
        out.append({"type": "code_edit", "ts": (t0 + timedelta(seconds=20 * i + 5)).isoformat(), "sessionId": sid,
                    "file": "solution.py", "diffChars": 3 + i, "beforeHash": f"h{i}", "afterHash": f"h{i + 1}"})
    return out


def _mp4(size: int) -> bytes:
    ftyp = struct.pack(">I4s4sI8s", 24, b"ftyp", b"isom", 512, b"isomiso2")
    return ftyp + struct.pack(">I4s", size - 24, b"mdat") + hashlib.shake_256(b"v").digest(size - 32)


async def test_erasing_a_session_leaves_nothing_of_it_in_any_store(
        telemetry_pipeline, gateway_factory, read_topic, weaviate_client, pg, tenant, tmp_path):
    from infra.clients import redis_client
    from sinks.weaviate import PERSONA_MEMORY, TURN_CHUNKS, VectorObject, WeaviateSink

    cfg = telemetry_pipeline.cfg
    objects = tmp_path / "objects"
    env = {**telemetry_pipeline.env, "OBJECT_STORE_URL": objects.as_uri()}
    _, url = gateway_factory("erasure-gateway", extra_env=env)
    capture, admin = auth_headers(tenant, scopes=["capture"]), auth_headers(tenant, scopes=["admin"])
    sid, kept = f"{tenant}-erase", f"{tenant}-kept"
    chunks = WeaviateSink(weaviate_client, TURN_CHUNKS, prefix=cfg.WEAVIATE_COLLECTION_PREFIX)
    redis = redis_client(cfg)

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for s in (sid, kept):
            created = await http.post(BASE, headers=capture, json={
                "sessionId": s, "interviewerId": "lenny", "candidateRef": "guest-1", "consentRecording": True,
                "consentTraining": True})
            assert created.status_code == 201, created.text
            init = await http.post(f"{BASE}/telemetry", headers=capture, json={"interviewSessionId": s})
            assert init.status_code == 200
            sent = await http.post(f"{BASE}/telemetry", headers=capture, json={"interviewSessionId": s,
                                                                              "events": _events(s, 8)})
            assert sent.status_code == 202, sent.text
        recording = await http.post(f"{BASE}/screen-recording?interviewSessionId={sid}", headers=capture,
                                    files={"file": ("rec.mp4", _mp4(200_000), "video/mp4")})
        assert recording.status_code == 201, recording.text
        assert (await http.patch(f"{BASE}/{sid}", headers=capture,
                                 json={"videoUrl": recording.json()["url"]})).status_code == 200

        # ---- the pipeline stored both sessions everywhere
        async def stored():
            counts = [pg.execute("SELECT count(*) FROM telemetry_events WHERE session_id=%s", (s,)).fetchone()[0]
                      for s in (sid, kept)]
            indexed = [chunks.count(tenant, where={"sessionId": s}) if weaviate_client.collections.exists(chunks.name)
                       else 0 for s in (sid, kept)]
            hot = [(await redis.hgetall(f"{cfg.REDIS_KEY_PREFIX}{tenant}:session:{s}:counters")).get("events")
                   for s in (sid, kept)]
            return counts == [16, 16] and indexed == [8, 8] and hot == ["16", "16"]

        await eventually(stored, 120, "both sessions in PostgreSQL, Weaviate and Redis")
        # Data derived from the session elsewhere: eval samples and a rating, a training copy and split,
        # a persona-memory exemplar.
        for i in range(2):
            pg.execute("INSERT INTO eval_samples (sample_id, tenant, interviewer_id, session_id, correlation_id,"
                       " context, twin_text) VALUES (%s, %s, 'lenny', %s, %s, '{}', 'twin line')",
                       (f"{sid}-smp{i}", tenant, sid, f"c{i}"))
        pg.execute("INSERT INTO eval_ratings (rating_id, tenant, interviewer_id, rater, kind, session_id, sample_ids,"
                   " real_option) VALUES (%s, %s, 'lenny', 'r1', 'turn', %s, %s, 'A')",
                   (f"{sid}-rating", tenant, sid, [f"{sid}-smp0"]))
        pg.execute("INSERT INTO datasets (tenant, dataset_ref, name, kind) VALUES (%s, %s, 'live', 'live')",
                   (tenant, f"live:{tenant}"))
        pg.execute("INSERT INTO dataset_sessions (tenant, dataset_ref, session_id, interviewer_id, seq, turns, n_turns,"
                   " n_interviewer_turns, content_sha256) VALUES (%s, %s, %s, 'lenny', 1, '[]', 0, 0, 'x')",
                   (tenant, f"live:{tenant}", sid))
        pg.execute("INSERT INTO interviewer_splits (tenant, interviewer_id, session_id, split, position, dataset_ref)"
                   " VALUES (%s, 'lenny', %s, 'train', 0, %s)", (tenant, sid, f"live:{tenant}"))
        memory = WeaviateSink(weaviate_client, PERSONA_MEMORY, prefix=cfg.WEAVIATE_COLLECTION_PREFIX)
        memory.ensure_collection()
        memory.upsert(tenant, [VectorObject(f"{tenant}/lenny/v1/{sid}", {
            "interviewerId": "lenny", "kind": "exemplar", "sessionId": sid, "key": "x", "reply": "Why?",
            "version": 1}, [0.05] * 384)])

        # ---- who may erase: an admin key of the tenant, nobody else
        assert (await http.delete(f"{BASE}/{sid}")).status_code == 401
        assert (await http.delete(f"{BASE}/{sid}", headers=capture)).status_code == 403
        foreign = await http.delete(f"{BASE}/{sid}", headers=auth_headers(f"{tenant}-x", scopes=["admin"]))
        unknown = await http.delete(f"{BASE}/{tenant}-never", headers=admin)
        assert foreign.status_code == unknown.status_code == 404
        assert foreign.json()["error"]["message"].replace(sid, "?") == unknown.json()["error"]["message"].replace(
            f"{tenant}-never", "?")

        # ---- a batch still in flight when the erasure runs
        late = await http.post(f"{BASE}/telemetry", headers=capture, json={"interviewSessionId": sid,
                                                                          "events": _events(sid, 3, start=8)})
        assert late.status_code == 202
        erased = await http.delete(f"{BASE}/{sid}", headers=admin)
        assert erased.status_code == 200, erased.text
        body = erased.json()
        assert body["alreadyErased"] is False
        pgc = body["erased"]["postgres"]
        assert pgc["telemetry_events"] >= 16 and pgc["turns"] >= 8 and pgc["sessions"] == 1
        assert (pgc["recordings"], pgc["eval_samples"], pgc["eval_ratings"], pgc["dataset_sessions"],
                pgc["interviewer_splits"]) == (1, 2, 1, 1, 1)
        assert body["erased"]["objects"] == {"recordings": 1}
        assert body["erased"]["weaviate"]["TurnChunk"] >= 8 and body["erased"]["weaviate"]["PersonaMemory"] == 1
        assert body["erased"]["redis"]["session keys"] >= 3

        # The late batch reaches telemetry.redacted after the erasure; the sinks drop it.
        mine = lambda m: m.tenant == tenant and m.interviewSessionId == sid  # noqa: E731
        redacted = await read_topic(TELEMETRY_REDACTED, mine, count=2, timeout=60, on=cfg)
        assert len(redacted) == 2
        await asyncio.sleep(5)  # the sinks batch within 0.1 s

        again = await http.delete(f"{BASE}/{sid}", headers=admin)
        assert again.status_code == 200 and again.json()["alreadyErased"] is True
        assert set(again.json()["totals"].values()) == {0}, ("the late batch re-created nothing", again.json())

    # ---- a replay of the topics from offset 0, through the sinks' own code paths, re-creates nothing
    from processors.engine import resources
    from processors.replay import replay_topic
    from processors.session_state import apply_session_state
    from processors.session_storage import store_session_events
    from processors.telemetry_storage import store_telemetry_batches
    from processors.vector_indexing import index_turn_batches

    async def sinks(batches):
        batches = [b for b in batches if b.tenant == tenant and b.interviewSessionId == sid]
        if batches:
            await store_telemetry_batches(batches)
            await apply_session_state(batches)
            await index_turn_batches(batches)

    try:
        await replay_topic(cfg, TELEMETRY_REDACTED, sinks)
        await replay_topic(cfg, SESSIONS_LIFECYCLE, lambda evs: store_session_events([e for e in evs
                                                                                     if e.tenant == tenant]))
    finally:
        await resources.close()

    # ---- nothing of the session is left, anywhere; the other session is untouched
    for table in TABLES:
        assert pg.execute(f"SELECT count(*) FROM {table} WHERE session_id=%s", (sid,)).fetchone()[0] == 0, table
    assert chunks.count(tenant, where={"sessionId": sid}) == 0
    assert memory.count(tenant, where={"sessionId": sid}) == 0
    assert [p for p in objects.rglob("*") if p.is_file() and sid in str(p)] == []
    assert [k async for k in redis.scan_iter(match=f"{cfg.REDIS_KEY_PREFIX}{tenant}:session:{sid}:*")] == []
    assert pg.execute("SELECT count(*) FROM telemetry_events WHERE session_id=%s", (kept,)).fetchone()[0] == 16
    assert chunks.count(tenant, where={"sessionId": kept}) == 8
    assert (await redis.hgetall(f"{cfg.REDIS_KEY_PREFIX}{tenant}:session:{kept}:counters"))["events"] == "16"
    await redis.aclose()

    # ---- the lifecycle topic ends with the scrubbed "erased" event; the audit log has every store
    lifecycle = await read_topic(SESSIONS_LIFECYCLE, lambda m: m.sessionId == sid, on=cfg)
    assert lifecycle[-1].kind == "erased" and (lifecycle[-1].candidateRef, lifecycle[-1].videoUrl) == (None, None)
    stores = pg.execute("SELECT detail->>'store', detail->'alreadyErased' FROM audit_log WHERE tenant=%s"
                        " AND action='session.erase' AND resource_id=%s", (tenant, sid)).fetchall()
    assert sorted(stores) == sorted([(s, False) for s in ("postgres", "objects", "weaviate", "redis")]
                                    + [(s, True) for s in ("postgres", "objects", "weaviate", "redis")])

    async def request_audited():
        return pg.execute("SELECT outcome, actor FROM audit_log WHERE tenant=%s AND action=%s AND resource_id=%s",
                          (tenant, f"DELETE {BASE}/{{session_id}}", sid)).fetchall()

    audited = await eventually(request_audited, 30, "the DELETE requests in the audit log")
    assert {o for o, _ in audited} >= {"ok", "denied"}
