"""POST /api/interviews/session/telemetry: initialise, append, and every rule of spec 12b."""

import hashlib
import json

import pytest

from schemas.topics import AUDIT_RECORDS, TELEMETRY_RAW
from tests.credentials import auth_headers

BASE = "/api/interviews/session"
URL = f"{BASE}/telemetry"


@pytest.fixture
async def session(api, tenant):
    """A consented session of this test's tenant; returns (headers, session_id)."""
    headers = auth_headers(tenant)
    sid = f"{tenant}-s1"
    resp = await api.post(BASE, json={"sessionId": sid, "interviewerId": "dana", "consentRecording": True},
                          headers=headers)
    assert resp.status_code == 201, resp.text
    return headers, sid


def edit(sid: str, i: int = 0, **extra) -> dict:
    return {"type": "code_edit", "ts": f"2025-03-04T10:15:{i % 60:02d}Z", "sessionId": sid, "diffChars": 10 + i,
            "beforeHash": f"b{i}", "afterHash": f"a{i}", **extra}


def run(sid: str, i: int = 0, **extra) -> dict:
    return {"type": "run", "ts": f"2025-03-04T10:16:{i % 60:02d}Z", "sessionId": sid, "status": "success",
            "outputHash": f"o{i}", **extra}


def turn(sid: str, text: str, i: int = 0, role: str = "interviewer", **extra) -> dict:
    return {"type": "turn", "ts": f"2025-03-04T10:17:{i % 60:02d}Z", "sessionId": sid, "role": role, "text": text,
            **extra}


async def _raw_batches(read_topic, tenant, count=None):
    return await read_topic(TELEMETRY_RAW, lambda m: m.tenant == tenant, count=count, timeout=10)


async def test_initialise_creates_a_zeroed_record_once(api, session, pg):
    headers, sid = session
    first = await api.post(URL, json={"interviewSessionId": sid}, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json() == {"interviewSessionId": sid, "created": True, "total": 0,
                            "counts": {"code_edit": 0, "run": 0, "turn": 0, "control": 0}}
    second = await api.post(URL, json={"interviewSessionId": sid}, headers=headers)
    assert second.status_code == 200 and second.json()["created"] is False
    assert pg.execute("SELECT count(*) FROM telemetry_sessions WHERE session_id=%s", (sid,)).fetchone()[0] == 1


async def test_append_publishes_keyed_batch_after_ack_and_retries_are_idempotent(api, session, tenant, read_topic):
    headers, sid = session
    events = [edit(sid, 1), run(sid, 2), turn(sid, "Why a heap here?", 3, eventId="client-evt-1"),
              {"type": "control", "ts": "2025-03-04T10:18:00Z", "sessionId": sid, "action": "hint",
               "params": {"level": 1}}]
    resp = await api.post(URL, json={"interviewSessionId": sid, "events": events}, headers=headers)
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["accepted"] == 4 and body["droppedFields"] == []
    assert body["eventIds"][2] == "client-evt-1" and len(set(body["eventIds"])) == 4
    retry = await api.post(URL, json={"interviewSessionId": sid, "events": events}, headers=headers)
    assert retry.json()["eventIds"] == body["eventIds"] and retry.json()["batchId"] == body["batchId"]

    batches = await _raw_batches(read_topic, tenant, count=2)
    assert len(batches) == 2 and {b.eventId for b in batches} == {body["batchId"]}
    assert [e.eventId for e in batches[0].events] == body["eventIds"]
    assert batches[0].interviewSessionId == sid and batches[0].events[3].params == {"level": 1}


async def test_message_key_is_the_session(api, session, tenant, cfg):
    from aiokafka import TopicPartition

    from infra.clients import kafka_consumer

    headers, sid = session
    await api.post(URL, json={"interviewSessionId": sid, "events": [edit(sid)]}, headers=headers)
    consumer = kafka_consumer(cfg, group_id=None)
    await consumer.start()
    try:
        topic = cfg.topic(TELEMETRY_RAW.name)
        cluster = await consumer._client.fetch_all_metadata()
        tps = [TopicPartition(topic, p) for p in cluster.partitions_for_topic(topic)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        keys = set()
        while any([await consumer.position(tp) < end[tp] for tp in tps]):
            for msgs in (await consumer.getmany(timeout_ms=300)).values():
                keys |= {m.key for m in msgs if m.key.startswith(tenant.encode())}
    finally:
        await consumer.stop()
    assert keys == {f"{tenant}/{sid}".encode()}


async def test_oversized_previews_and_text_are_dropped_with_hash_and_audited(api, session, tenant, read_topic, cfg):
    headers, sid = session
    big_out = "x" * (cfg.TELEMETRY_MAX_PREVIEW_CHARS + 1)
    big_text = "word " * (cfg.TELEMETRY_MAX_TEXT_CHARS // 5 + 1)
    events = [run(sid, 1, stdoutPreview=big_out, stderrPreview="ok"), turn(sid, big_text, 2)]
    resp = await api.post(URL, json={"interviewSessionId": sid, "events": events}, headers=headers)
    assert resp.status_code == 202, resp.text
    dropped = resp.json()["droppedFields"]
    assert [(d["eventIndex"], d["field"]) for d in dropped] == [(0, "stdoutPreview"), (1, "text")]
    assert dropped[0]["sha256"] == hashlib.sha256(big_out.encode()).hexdigest() and dropped[0]["size"] == len(big_out)
    [batch] = await _raw_batches(read_topic, tenant, count=1)
    assert batch.events[0].stdoutPreview is None and batch.events[0].stderrPreview == "ok"
    assert batch.events[0].outputHash == "o1", "hashes are kept"
    assert batch.events[1].text == ""
    assert [d.field for d in batch.droppedFields] == ["stdoutPreview", "text"]
    audits = await read_topic(AUDIT_RECORDS, lambda m: m.tenant == tenant and m.action == "telemetry.field_dropped",
                              count=2)
    assert sorted(a.detail["field"] for a in audits) == ["stdoutPreview", "text"]
    assert all(a.detail["sha256"] in {d["sha256"] for d in dropped} for a in audits)


async def test_201_events_is_refused_naming_the_rule(api, session, tenant, read_topic, cfg):
    headers, sid = session
    events = [edit(sid, i) for i in range(cfg.TELEMETRY_MAX_EVENTS + 1)]
    resp = await api.post(URL, json={"interviewSessionId": sid, "events": events}, headers=headers)
    assert resp.status_code == 413
    err = resp.json()["error"]
    assert err["code"] == "batch_too_large"
    assert err["details"] == [{"rule": "max_events_per_batch", "limit": 200, "actual": 201}]
    ok = await api.post(URL, json={"interviewSessionId": sid, "events": events[:200]}, headers=headers)
    assert ok.status_code == 202 and ok.json()["accepted"] == 200
    assert len(await _raw_batches(read_topic, tenant, count=1)) == 1, "only the 200-event batch got through"


async def test_257_kb_body_is_refused_naming_the_rule(api, session, tenant, read_topic):
    headers, sid = session
    filler = "y" * 1000
    events = [run(sid, i, stderrPreview=filler) for i in range(190)]
    body = json.dumps({"interviewSessionId": sid, "events": events}).encode()
    body = body[:-2] + b" " * (257 * 1024 - len(body)) + body[-2:]
    assert len(body) == 257 * 1024
    resp = await api.post(URL, content=body, headers={**headers, "Content-Type": "application/json"})
    assert resp.status_code == 413
    err = resp.json()["error"]
    assert err["code"] == "payload_too_large" and err["details"] == [{"rule": "max_payload_bytes", "limit": 262144}]
    # The same bytes streamed without a Content-Length are cut off at the limit too.

    async def chunks():
        for i in range(0, len(body), 16384):
            yield body[i:i + 16384]

    streamed = await api.post(URL, content=chunks(), headers={**headers, "Content-Type": "application/json"})
    assert streamed.status_code == 413
    assert await _raw_batches(read_topic, tenant) == []


@pytest.mark.parametrize(("event", "index_field", "type_"), [
    ({"type": "keystroke", "ts": "2025-03-04T10:00:00Z"}, "type", "union_tag_invalid"),  # unknown type
    ({"ts": "2025-03-04T10:00:00Z"}, "type", "union_tag_not_found"),  # no type at all
    ({"type": "run", "ts": "2025-03-04T10:00:00Z", "status": "crashed"}, "status", "literal_error"),  # bad enum
    ({"type": "turn", "ts": "2025-03-04T10:00:00Z", "role": "interviewer"}, "text", "missing"),
    ({"type": "code_edit", "ts": "2025-03-04T10:00:00Z", "diffChars": "many"}, "diffChars", "int_parsing"),
    ({"type": "control", "ts": "yesterday", "action": "hint"}, "ts", "value_error"),  # not ISO8601
    ({"type": "code_edit", "ts": "2025-03-04T10:00:00Z", "diffChars": 1, "cursor": {"line": -1, "column": 0}},
     "cursor.line", "greater_than_equal"),
    ({"type": "code_edit", "ts": "2025-03-04T10:00:00Z", "diffChars": 1, "colour": "red"}, "colour",
     "extra_forbidden"),
])
async def test_invalid_event_is_refused_naming_index_and_field(api, session, tenant, read_topic, event, index_field,
                                                               type_):
    headers, sid = session
    bad = {"sessionId": sid, **event}
    resp = await api.post(URL, json={"interviewSessionId": sid, "events": [edit(sid), edit(sid, 1), bad]},
                          headers=headers)
    assert resp.status_code == 422, resp.text
    err = resp.json()["error"]
    assert err["code"] == "invalid_events"
    assert [(d["eventIndex"], d["field"], d["type"]) for d in err["details"]] == [(2, index_field, type_)]
    assert err["message"].startswith(f"events[2].{index_field}:")
    assert await _raw_batches(read_topic, tenant) == [], "nothing of a refused batch is published"


async def test_event_of_another_session_and_bad_envelopes(api, session, tenant, read_topic):
    headers, sid = session
    resp = await api.post(URL, json={"interviewSessionId": sid, "events": [edit("other-session")]}, headers=headers)
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0] | {"msg": ""} == {
        "eventIndex": 0, "field": "sessionId", "loc": ["events", 0, "sessionId"], "msg": "", "type": "session_mismatch"}
    for body, code in (([], "validation_failed"), ({"events": []}, "validation_failed"),
                       ({"interviewSessionId": sid, "events": "lots"}, "validation_failed"),
                       ({"interviewSessionId": sid, "extra": 1}, "validation_failed")):
        resp = await api.post(URL, json=body, headers=headers)
        assert resp.status_code == 422 and resp.json()["error"]["code"] == code, body
    malformed = await api.post(URL, content=b'{"interviewSessionId": "x", "events": [', headers=headers)
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "malformed_json"
    assert await _raw_batches(read_topic, tenant) == []


async def test_unknown_session_and_missing_consent(api, tenant, read_topic, pg):
    headers = auth_headers(tenant)
    sid = f"{tenant}-nope"
    for body in ({"interviewSessionId": sid}, {"interviewSessionId": sid, "events": [edit(sid)]}):
        resp = await api.post(URL, json=body, headers=headers)
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "unknown_session"
    no_consent = f"{tenant}-nc"
    await api.post(BASE, json={"sessionId": no_consent, "interviewerId": "dana", "consentRecording": False},
                   headers=headers)
    for body in ({"interviewSessionId": no_consent}, {"interviewSessionId": no_consent, "events": [edit(no_consent)]}):
        resp = await api.post(URL, json=body, headers=headers)
        assert resp.status_code == 403
        assert resp.json()["error"]["code"] == "consent_required"
        assert "consent" in resp.json()["error"]["message"]
    assert pg.execute("SELECT count(*) FROM telemetry_sessions WHERE session_id=%s", (no_consent,)).fetchone()[0] == 0
    assert await _raw_batches(read_topic, tenant) == []


async def test_broker_down_answers_503_and_accepts_nothing(api_factory, tmp_path, tenant, pg):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    # Sessions are created through the healthy gateway's database; this one only lacks Kafka.
    pg.execute("INSERT INTO sessions (session_id, tenant, interviewer_id, consent_recording) VALUES (%s, %s, 'dana', true)",
               (f"{tenant}-s1", tenant))
    async with api_factory(KAFKA_PORT=dead_port, OBJECT_STORE_URL=tmp_path.as_uri()) as broken:
        broken.app.state.publisher.timeout_s = 2.0
        resp = await broken.post(URL, json={"interviewSessionId": f"{tenant}-s1", "events": [edit(f"{tenant}-s1")]},
                                 headers=auth_headers(tenant))
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "broker_unavailable" and resp.headers["Retry-After"] == "5"
