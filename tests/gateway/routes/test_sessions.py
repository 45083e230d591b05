"""POST/GET/PATCH /api/interviews/session against real PostgreSQL and Kafka."""

from schemas.topics import AUDIT_RECORDS, SESSIONS_LIFECYCLE
from tests.credentials import auth_headers

BASE = "/api/interviews/session"


def _create_body(session_id: str, **extra) -> dict:
    return {"sessionId": session_id, "interviewerId": "dana", "candidateRef": "cand-1", "role": "Backend Engineer",
            "seniority": "senior", "domain": "payments", "consentRecording": True, "consentTraining": True, **extra}


async def test_creates_session_row_and_publishes_lifecycle_event(api, tenant, pg, read_topic):
    headers = auth_headers(tenant)
    resp = await api.post(BASE, json=_create_body(f"{tenant}-s1"), headers=headers)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["sessionId"] == f"{tenant}-s1" and body["tenant"] == tenant and body["status"] == "active"
    row = pg.execute("SELECT tenant, interviewer_id, consent_recording, consent_training FROM sessions"
                     " WHERE session_id=%s", (f"{tenant}-s1",)).fetchone()
    assert row == (tenant, "dana", True, True)
    events = await read_topic(SESSIONS_LIFECYCLE, lambda m: m.tenant == tenant, count=1)
    assert [(e.kind, e.sessionId, e.consentRecording) for e in events] == [("created", f"{tenant}-s1", True)]
    audits = await read_topic(AUDIT_RECORDS, lambda m: m.tenant == tenant, count=1)
    assert audits[0].action == "session.consent_recorded" and audits[0].detail["consentRecording"] is True


async def test_retried_create_is_idempotent_and_a_conflicting_one_is_refused(api, tenant, pg):
    headers = auth_headers(tenant)
    body = _create_body(f"{tenant}-s1")
    assert (await api.post(BASE, json=body, headers=headers)).status_code == 201
    again = await api.post(BASE, json=body, headers=headers)
    assert again.status_code == 200 and again.json()["sessionId"] == f"{tenant}-s1"
    conflict = await api.post(BASE, json={**body, "interviewerId": "someone-else"}, headers=headers)
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "session_exists"
    other_tenant = await api.post(BASE, json=body, headers=auth_headers(f"{tenant}-x"))
    assert other_tenant.status_code == 409
    assert pg.execute("SELECT count(*) FROM sessions WHERE session_id=%s", (f"{tenant}-s1",)).fetchone()[0] == 1


async def test_generated_session_id_and_validation_errors(api, tenant):
    headers = auth_headers(tenant)
    resp = await api.post(BASE, json={"interviewerId": "dana"}, headers=headers)
    assert resp.status_code == 201 and resp.json()["sessionId"].startswith("sess-")
    assert resp.json()["consentRecording"] is False
    bad = await api.post(BASE, json={"interviewerId": "", "consentRecording": "maybe"}, headers=headers)
    assert bad.status_code == 422
    err = bad.json()["error"]
    assert err["code"] == "validation_failed" and {tuple(d["loc"]) for d in err["details"]} >= {
        ("body", "interviewerId"), ("body", "consentRecording")}
    malformed = await api.post(BASE, content=b'{"interviewerId": ', headers={**headers, "Content-Type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "malformed_json"


async def test_patch_persists_video_url_and_publishes_update(api, tenant, pg, read_topic):
    headers = auth_headers(tenant)
    sid = f"{tenant}-s1"
    await api.post(BASE, json=_create_body(sid), headers=headers)
    url = f"s3://recordings/{tenant}/{sid}/rec.mp4"
    resp = await api.patch(f"{BASE}/{sid}", json={"videoUrl": url}, headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.json()["videoUrl"] == url
    assert pg.execute("SELECT video_url FROM sessions WHERE session_id=%s", (sid,)).fetchone()[0] == url
    ended = await api.patch(f"{BASE}/{sid}", json={"status": "ended"}, headers=headers)
    assert ended.json()["status"] == "ended"
    events = await read_topic(SESSIONS_LIFECYCLE, lambda m: m.tenant == tenant, count=3)
    assert [e.kind for e in events] == ["created", "updated", "ended"]
    assert events[1].videoUrl == url and events[2].videoUrl == url
    assert (await api.get(f"{BASE}/{sid}", headers=headers)).json()["videoUrl"] == url


async def test_patch_refuses_video_url_without_consent_and_unknown_sessions(api, tenant, pg):
    headers = auth_headers(tenant)
    sid = f"{tenant}-s1"
    await api.post(BASE, json=_create_body(sid, consentRecording=False), headers=headers)
    resp = await api.patch(f"{BASE}/{sid}", json={"videoUrl": "s3://b/k.mp4"}, headers=headers)
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "consent_required" and "consent" in resp.json()["error"]["message"]
    assert pg.execute("SELECT video_url FROM sessions WHERE session_id=%s", (sid,)).fetchone()[0] is None
    # Consent and the URL in one request are fine: the check sees the new consent.
    both = await api.patch(f"{BASE}/{sid}", json={"consentRecording": True, "videoUrl": "s3://b/k.mp4"},
                           headers=headers)
    assert both.status_code == 200
    missing = await api.patch(f"{BASE}/nope-{tenant}", json={"status": "ended"}, headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_session"
    other = await api.patch(f"{BASE}/{sid}", json={"status": "ended"}, headers=auth_headers(f"{tenant}-x"))
    assert other.status_code == 404, "another tenant's session does not exist for this tenant"
    empty = await api.patch(f"{BASE}/{sid}", json={}, headers=headers)
    assert empty.status_code == 422
    bad_url = await api.patch(f"{BASE}/{sid}", json={"videoUrl": "not a url"}, headers=headers)
    assert bad_url.status_code == 422 and bad_url.json()["error"]["details"][0]["loc"] == ["body", "videoUrl"]


async def test_openapi_documents_every_capture_endpoint_with_examples(api):
    spec = (await api.get("/openapi.json")).json()
    paths = spec["paths"]
    create = paths[BASE]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("SessionCreate")
    assert spec["components"]["schemas"]["SessionCreate"]["examples"]
    for path, method in ((BASE, "post"), (f"{BASE}/{{session_id}}", "patch"), (f"{BASE}/telemetry", "post"),
                         (f"{BASE}/screen-recording", "post")):
        op = paths[path][method]
        assert op.get("description") or op.get("summary"), path
        errors = [code for code in op["responses"] if code.startswith(("4", "5"))]
        assert errors, path
        for code in errors:
            example = op["responses"][code]["content"]["application/json"]["example"]
            assert set(example["error"]) == {"code", "message", "details"}, (path, code)
    telemetry_body = paths[f"{BASE}/telemetry"]["post"]["requestBody"]["content"]["application/json"]
    assert telemetry_body["examples"]["append"]["value"]["events"]
    assert "multipart/form-data" in paths[f"{BASE}/screen-recording"]["post"]["requestBody"]["content"]
