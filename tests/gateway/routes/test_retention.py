"""GET/PUT /api/admin/retention and DELETE /api/interviews/session/{id} through the in-process
gateway, on real PostgreSQL, Kafka, Redis and Weaviate. The full erasure of a session that went
through the pipeline is tests/e2e/test_erasure.py."""

from schemas.topics import SESSIONS_LIFECYCLE
from tests.credentials import auth_headers

POLICY = "/api/admin/retention"
SESSIONS = "/api/interviews/session"


def _unknown(sid: str) -> dict:
    return {"error": {"code": "unknown_session", "message": f"No session {sid!r} in this tenant.", "details": []}}


async def test_reads_and_changes_the_tenant_retention(api, tenant, pg, cfg):
    admin = auth_headers(tenant, scopes=["admin"])
    defaults = {"recordings": cfg.RETENTION_RECORDINGS_DAYS, "telemetry": cfg.RETENTION_TELEMETRY_DAYS,
                "vectors": cfg.RETENTION_VECTORS_DAYS, "eval": cfg.RETENTION_EVAL_DAYS}
    got = await api.get(POLICY, headers=admin)
    assert got.status_code == 200, got.text
    assert got.json() == {"tenant": tenant, "days": defaults, "defaults": defaults,
                          "source": dict.fromkeys(defaults, "default")}
    put = await api.put(POLICY, json={"recordings": 30, "eval": 0}, headers=admin)
    assert put.status_code == 200, put.text
    assert put.json()["days"] == {**defaults, "recordings": 30, "eval": 0}
    assert put.json()["source"] == {"recordings": "tenant", "telemetry": "default", "vectors": "default",
                                    "eval": "tenant"}
    reset = await api.put(POLICY, json={"recordings": None}, headers=admin)
    assert reset.json()["days"] == {**defaults, "eval": 0} and reset.json()["source"]["recordings"] == "default"
    assert (await api.get(POLICY, headers=admin)).json() == reset.json()
    assert pg.execute("SELECT kind, days FROM tenant_retention WHERE tenant=%s", (tenant,)).fetchall() == [("eval", 0)]
    audits = pg.execute("SELECT resource_type, resource_id, detail->'changes' FROM audit_log WHERE tenant=%s"
                        " AND action='retention.policy_set' ORDER BY ts", (tenant,)).fetchall()
    assert audits == [("retention_policy", tenant, {"recordings": 30, "eval": 0}),
                      ("retention_policy", tenant, {"recordings": None})]
    for bad in ({}, {"recordings": -1}, {"audit": 5}, {"telemetry": "forever"}):
        resp = await api.put(POLICY, json=bad, headers=admin)
        assert resp.status_code == 422 and resp.json()["error"]["code"] == "validation_failed", bad


async def test_retention_policy_needs_an_admin_key(api, tenant):
    assert (await api.get(POLICY)).status_code == 401
    denied = await api.put(POLICY, json={"eval": 1}, headers=auth_headers(tenant, scopes=["capture", "train"]))
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "insufficient_scope"


async def test_erasure_is_admin_only_tenant_scoped_and_idempotent(api, tenant, pg, read_topic):
    sid = f"{tenant}-s1"
    body = {"sessionId": sid, "interviewerId": "dana", "candidateRef": "cand-1", "consentRecording": True}
    created = await api.post(SESSIONS, json=body, headers=auth_headers(tenant, scopes=["capture"]))
    assert created.status_code == 201, created.text

    assert (await api.delete(f"{SESSIONS}/{sid}")).status_code == 401
    capture = await api.delete(f"{SESSIONS}/{sid}", headers=auth_headers(tenant, scopes=["capture"]))
    assert capture.status_code == 403 and capture.json()["error"]["code"] == "insufficient_scope"
    others = await api.delete(f"{SESSIONS}/{sid}", headers=auth_headers(tenant, scopes=["admin"], interviewers=["lee"]))
    assert others.status_code == 403 and others.json()["error"]["code"] == "interviewer_forbidden"
    elsewhere = await api.delete(f"{SESSIONS}/{sid}", headers=auth_headers(f"{tenant}-x", scopes=["admin"]))
    assert (elsewhere.status_code, elsewhere.json()) == (404, _unknown(sid)), "another tenant's session is unknown"
    missing = await api.delete(f"{SESSIONS}/{tenant}-nope", headers=auth_headers(tenant, scopes=["admin"]))
    assert (missing.status_code, missing.json()) == (404, _unknown(f"{tenant}-nope"))
    assert pg.execute("SELECT count(*) FROM sessions WHERE session_id=%s", (sid,)).fetchone()[0] == 1

    admin = auth_headers(tenant, scopes=["admin"])
    erased = await api.delete(f"{SESSIONS}/{sid}", headers=admin)
    assert erased.status_code == 200, erased.text
    body = erased.json()
    assert body["sessionId"] == sid and body["alreadyErased"] is False
    assert body["erased"]["postgres"]["sessions"] == 1 and set(body["totals"]) == {"postgres", "objects",
                                                                                   "weaviate", "redis"}
    assert pg.execute("SELECT count(*) FROM sessions WHERE session_id=%s", (sid,)).fetchone()[0] == 0
    events = await read_topic(SESSIONS_LIFECYCLE, lambda m: m.sessionId == sid, count=2)
    assert [e.kind for e in events] == ["created", "erased"] and events[1].candidateRef is None

    again = await api.delete(f"{SESSIONS}/{sid}", headers=admin)
    assert again.status_code == 200 and again.json()["alreadyErased"] is True
    assert set(again.json()["totals"].values()) == {0}
    assert (await api.get(f"{SESSIONS}/{sid}", headers=auth_headers(tenant))).status_code == 404
    reuse = await api.post(SESSIONS, json={"sessionId": sid, "interviewerId": "dana"}, headers=auth_headers(tenant))
    assert reuse.status_code == 409 and reuse.json()["error"]["code"] == "session_erased"
    audits = pg.execute("SELECT count(*) FROM audit_log WHERE tenant=%s AND action='session.erase'"
                        " AND resource_id=%s", (tenant, sid)).fetchone()[0]
    assert audits == 8, "one record per store, per erasure"
