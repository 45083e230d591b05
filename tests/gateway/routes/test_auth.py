"""Authentication, scopes and two-tenant isolation over every route of the OpenAPI schema.

Tenant A owns real resources (a trained interviewer, a session with telemetry and a recording, a
training job, a rating, an API key, audit records). Tenant B holds a key with every scope. For each
route of the schema the table below builds one request aimed at A's resource and the same request
aimed at an id nobody has: B must get the same status and error code for both (another tenant's data
is indistinguishable from no data), and no response to B may mention A's ids. A route missing from
the table fails the test, so new routes cannot skip isolation.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey

from tests.credentials import api_key, auth_headers
from tests.gateway.routes.test_recordings import HEADERS as MULTIPART, chunked, mp4_bytes, multipart

pytestmark = pytest.mark.usefixtures("postgres_dsn")

UNAUDITED = {"/healthz", "/readyz", "/metrics"}


@dataclass
class Ids:
    """The resource ids one request may name."""

    tenant: str
    interviewer: str
    session: str
    job: str
    rating: str
    key: str
    config_interviewer: str = ""


def _multipart_for(session: str) -> dict[str, Any]:
    return {"content": multipart(chunked(mp4_bytes(4096))), "params": {"interviewSessionId": session},
            "headers": MULTIPART}


# (method, path template) -> request kwargs for a target's ids. Bodies are valid, so only the ids decide.
ROUTES: dict[tuple[str, str], Callable[[Ids], dict[str, Any]]] = {
    ("POST", "/api/digital-twin/respond"): lambda t: {"json": {
        "interviewerId": t.interviewer, "sessionId": t.session, "history": [], "candidateTurn": "Hello."}},
    ("POST", "/api/digital-twin/train"): lambda t: {"json": {
        "interviewerId": t.interviewer, "datasetRef": f"live:{t.tenant}"}},
    ("GET", "/api/digital-twin/train/{jobId}"): lambda t: {"url": f"/api/digital-twin/train/{t.job}"},
    ("POST", "/api/interviews/session"): lambda t: {"json": {
        "sessionId": t.session, "interviewerId": "someone-else", "consentRecording": True}},
    ("GET", "/api/interviews/session/{session_id}"): lambda t: {"url": f"/api/interviews/session/{t.session}"},
    ("PATCH", "/api/interviews/session/{session_id}"): lambda t: {
        "url": f"/api/interviews/session/{t.session}", "json": {"status": "ended"}},
    ("POST", "/api/interviews/session/telemetry"): lambda t: {"json": {"interviewSessionId": t.session}},
    ("POST", "/api/interviews/session/screen-recording"): lambda t: _multipart_for(t.session),
    ("POST", "/api/digital-twin/eval/ratings/login"): lambda t: {},
    ("GET", "/api/digital-twin/eval/ratings/next"): lambda t: {"params": {"interviewerId": t.interviewer}},
    ("POST", "/api/digital-twin/eval/ratings/{rating_id}"): lambda t: {
        "url": f"/api/digital-twin/eval/ratings/{t.rating}", "json": {"choice": "A"}},
    ("GET", "/api/digital-twin/eval/{interviewerId}"): lambda t: {"url": f"/api/digital-twin/eval/{t.interviewer}"},
    ("POST", "/api/admin/keys"): lambda t: {"json": {"name": "b-key", "scopes": ["eval"]}},
    ("GET", "/api/admin/keys"): lambda t: {"params": {"includeRevoked": "true"}},
    ("DELETE", "/api/admin/keys/{keyId}"): lambda t: {"url": f"/api/admin/keys/{t.key}"},
    ("GET", "/api/admin/audit"): lambda t: {"params": {"resourceId": t.session}},
    # Configuration (issue 7): the tenant layer is always the caller's own; interviewer layers are A's.
    ("GET", "/api/admin/config/tenant"): lambda t: {},
    ("PUT", "/api/admin/config/tenant"): lambda t: {"json": {"flags": {"tools": True}}},
    ("PATCH", "/api/admin/config/tenant"): lambda t: {"json": {"flags": {"tools": True}}},
    ("DELETE", "/api/admin/config/tenant"): lambda t: {},
    ("GET", "/api/admin/config/tenant/effective"): lambda t: {},
    ("GET", "/api/admin/config/interviewers/{interviewerId}"): lambda t: {
        "url": f"/api/admin/config/interviewers/{t.interviewer}"},
    ("PUT", "/api/admin/config/interviewers/{interviewerId}"): lambda t: {
        "url": f"/api/admin/config/interviewers/{t.interviewer}", "json": {"flags": {"tools": False}}},
    ("PATCH", "/api/admin/config/interviewers/{interviewerId}"): lambda t: {
        "url": f"/api/admin/config/interviewers/{t.interviewer}", "json": {"flags": {"tools": False}}},
    ("DELETE", "/api/admin/config/interviewers/{interviewerId}"): lambda t: {
        "url": f"/api/admin/config/interviewers/{t.interviewer}"},
    ("GET", "/api/admin/config/interviewers/{interviewerId}/effective"): lambda t: {
        "url": f"/api/admin/config/interviewers/{t.interviewer}/effective"},
    # Canary deployments (issue 8): A's interviewer, seen from B, is one B never trained.
    ("POST", "/api/digital-twin/canary/{interviewerId}"): lambda t: {
        "url": f"/api/digital-twin/canary/{t.interviewer}", "json": {"share": 0.5}},
    ("GET", "/api/digital-twin/canary/{interviewerId}"): lambda t: {"url": f"/api/digital-twin/canary/{t.interviewer}"},
    ("POST", "/api/digital-twin/canary/{interviewerId}/rollback"): lambda t: {
        "url": f"/api/digital-twin/canary/{t.interviewer}/rollback"},
    ("POST", "/api/digital-twin/canary/{interviewerId}/promote"): lambda t: {
        "url": f"/api/digital-twin/canary/{t.interviewer}/promote"},
    # Retention and erasure (issue 7): the policy is always the caller's own; erasing A's session is a 404.
    ("GET", "/api/admin/retention"): lambda t: {},
    ("PUT", "/api/admin/retention"): lambda t: {"json": {"eval": 400}},
    ("DELETE", "/api/interviews/session/{session_id}"): lambda t: {"url": f"/api/interviews/session/{t.session}"},
}

# Routes that create something in the caller's tenant whatever the ids: B gets B's own result,
# so only "no A id in the answer, A unchanged" applies, not "same as a missing id".
OWN_TENANT_ONLY = {("POST", "/api/admin/keys"), ("GET", "/api/admin/keys"), ("GET", "/api/admin/audit"),
                   ("POST", "/api/digital-twin/eval/ratings/login"), ("GET", "/api/digital-twin/eval/ratings/next"),
                   *((m, "/api/admin/config/tenant") for m in ("GET", "PUT", "PATCH", "DELETE")),
                   ("GET", "/api/admin/config/tenant/effective"),
                   ("GET", "/api/admin/retention"), ("PUT", "/api/admin/retention")}


def _schema_routes(app) -> set[tuple[str, str]]:
    spec = app.openapi()
    return {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops
            if path not in UNAUDITED}


async def _required_scope(client, method: str, path: str, kwargs: dict[str, Any], tenant: str) -> str:
    """The scope a route demands, as its 403 names it (a rater-only key is refused by all others)."""
    resp = await _call(client, method, path, kwargs, auth_headers(tenant, scopes=["rater"]))
    if resp.status_code == 403 and resp.json()["error"]["code"] == "insufficient_scope":
        return resp.json()["error"]["details"][0]["required"]
    return "rater"


async def _call(client, method: str, path: str, kwargs: dict[str, Any], headers: dict[str, str]):
    kwargs = dict(kwargs)
    url = kwargs.pop("url", path)
    extra = kwargs.pop("headers", {})
    return await client.request(method, url, headers={**extra, **headers}, **kwargs)


@pytest.fixture(scope="module")
def tenants(sample_tenant, pg_module):
    """A = the tenant where 'dana' is trained, with a session, job, rating and key; B = a fresh tenant."""
    a = sample_tenant
    b = f"t-iso-{uuid.uuid4().hex[:8]}"
    session = f"iso-{uuid.uuid4().hex[:10]}"  # nothing of the tenant's name in it
    job = str(uuid.uuid4())
    rating = f"rating-{uuid.uuid4().hex[:8]}"
    pg_module.execute("INSERT INTO training_jobs (job_id, tenant, interviewer_id, dataset_ref, status)"
                      " VALUES (%s, %s, 'dana', 'ds_x', 'succeeded')", (job, a))
    pg_module.execute("INSERT INTO eval_ratings (rating_id, tenant, interviewer_id, rater, kind, session_id,"
                      " sample_ids, real_option) VALUES (%s, %s, 'dana', 'someone', 'turn', %s, '{}', 'A')",
                      (rating, a, session))
    key = api_key(a, scopes=["eval"], name="a-victim").split(".")[0].removeprefix("twk_")
    return Ids(a, "dana", session, job, rating, key), b


@pytest.fixture(scope="module")
def pg_module(postgres_dsn):
    import psycopg

    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
async def client(api_factory, tmp_path_factory):
    root = tmp_path_factory.mktemp("objects-auth")
    async with api_factory(OBJECT_STORE_URL=root.as_uri(), AUTH_JWT_SECRET="jwt-test-secret-" + "x" * 32,
                           AUTH_JWT_ISSUER="https://issuer.test", AUTH_JWT_AUDIENCE="interviewer-twin") as c:
        yield c


async def _seed_a(client, ids: Ids) -> None:
    headers = auth_headers(ids.tenant)
    created = await client.post("/api/interviews/session", json={
        "sessionId": ids.session, "interviewerId": "dana", "consentRecording": True}, headers=headers)
    assert created.status_code in (200, 201), created.text
    init = await client.post("/api/interviews/session/telemetry", json={"interviewSessionId": ids.session},
                             headers=headers)
    assert init.status_code == 200, init.text
    rec = await client.post("/api/interviews/session/screen-recording", **{
        **_multipart_for(ids.session), "headers": {**MULTIPART, **headers}})
    assert rec.status_code == 201, rec.text


def test_the_gateway_knows_the_scopes_keys_are_issued_with():
    from gateway.auth import Scope
    from infra.apikeys import SCOPES

    assert [s.value for s in Scope] == list(SCOPES)


async def test_every_route_is_in_the_isolation_table(client):
    assert _schema_routes(client.app) == set(ROUTES), "add new routes to ROUTES (and OWN_TENANT_ONLY if they create)"


async def test_another_tenant_sees_nothing_of_a_on_any_route(client, tenants, pg_module):
    a, b = tenants
    await _seed_a(client, a)
    before = pg_module.execute("SELECT status, interviewer_id FROM sessions WHERE session_id=%s",
                               (a.session,)).fetchone()
    ghost = Ids(a.tenant, f"ghost-{uuid.uuid4().hex[:6]}", f"ghost-{uuid.uuid4().hex[:6]}", str(uuid.uuid4()),
                f"ghost-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:16])
    b_headers = auth_headers(b)
    secrets = {a.tenant, a.session, a.job, a.rating, a.key}
    for (method, path), build in sorted(ROUTES.items()):
        sent = build(a)
        real = await _call(client, method, path, sent, b_headers)
        assert real.status_code < 500, (method, path, real.text)
        # An id B itself sent may be echoed back ("no session X"); anything else of A's may not appear.
        leaked = [s for s in secrets if s in real.text and s not in repr({k: v for k, v in sent.items()
                                                                            if k != "content"})]
        assert not leaked, (method, path, leaked, real.text)
        if (method, path) in OWN_TENANT_ONLY:
            continue
        if (method, path) == ("POST", "/api/interviews/session"):
            # Session ids are global (clients may choose them): a taken id answers the same 409 as a
            # same-tenant conflict, which says the id is taken and nothing about A's session.
            assert real.status_code == 409 and real.json()["error"]["code"] == "session_exists"
            continue
        missing = await _call(client, method, path, build(ghost), b_headers)
        code = lambda r: r.json().get("error", {}).get("code") if r.status_code >= 400 else None  # noqa: E731
        assert (real.status_code, code(real)) == (missing.status_code, code(missing)), (method, path, real.text,
                                                                                     missing.text)
        assert real.status_code in (404, 409), (method, path, real.status_code, real.text)
    # A's rows are untouched by everything B sent.
    assert pg_module.execute("SELECT status, interviewer_id FROM sessions WHERE session_id=%s",
                             (a.session,)).fetchone() == before
    assert pg_module.execute("SELECT revoked_at FROM api_keys WHERE key_id=%s", (a.key,)).fetchone() == (None,)
    assert pg_module.execute("SELECT answered_at FROM eval_ratings WHERE rating_id=%s", (a.rating,)).fetchone() \
        == (None,)
    assert pg_module.execute("SELECT count(*) FROM api_keys WHERE tenant=%s AND name='b-key'", (a.tenant,)
                             ).fetchone() == (0,)


async def test_every_route_needs_credentials_and_its_scope(client, tenants):
    a, _ = tenants
    for (method, path), build in sorted(ROUTES.items()):
        kwargs = build(a)
        for headers in ({}, {"Authorization": "Bearer twk_0000000000000000.not-a-real-secret-at-all"},
                        {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer not.a.jwt"}):
            resp = await _call(client, method, path, kwargs, headers)
            assert resp.status_code == 401, (method, path, headers, resp.text)
            assert resp.json()["error"]["code"] == "unauthenticated" and resp.headers["www-authenticate"]
        scope = await _required_scope(client, method, path, build(a), a.tenant)
        others = [s for s in ("capture", "respond", "train", "eval", "rater", "admin") if s != scope]
        denied = await _call(client, method, path, build(a), auth_headers(a.tenant, scopes=others))
        assert denied.status_code == 403, (method, path, denied.text)
        body = denied.json()["error"]
        assert body["code"] == "insufficient_scope" and body["details"][0]["required"] == scope


async def test_tenant_header_must_match_the_credential(client, tenants):
    a, b = tenants
    resp = await client.get(f"/api/interviews/session/{a.session}", headers={**auth_headers(b), "X-Tenant-Id": a.tenant})
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "tenant_mismatch"


async def test_a_key_limited_to_one_interviewer_cannot_act_for_another(client, tenants):
    a, _ = tenants
    await _seed_a(client, a)
    limited = auth_headers(a.tenant, interviewers=["someone-else"])
    for resp in (
        await client.get(f"/api/interviews/session/{a.session}", headers=limited),
        await client.post("/api/digital-twin/respond", headers=limited, json={
            "interviewerId": "dana", "sessionId": "s", "history": [], "candidateTurn": "Hi"}),
        await client.get("/api/digital-twin/eval/dana", headers=limited),
    ):
        assert resp.status_code == 403 and resp.json()["error"]["code"] == "interviewer_forbidden", resp.text
    allowed = await client.get(f"/api/interviews/session/{a.session}",
                               headers=auth_headers(a.tenant, interviewers=["dana"]))
    assert allowed.status_code == 200


async def test_revoked_and_expired_keys_stop_working(client, tenants, pg_module):
    _, b = tenants
    from datetime import timedelta

    from infra.apikeys import create_api_key
    from infra.settings import Settings

    token = create_api_key(Settings(), b, scopes=["admin"], name="short")
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/admin/keys", headers=headers)).status_code == 200
    key_id = token.split(".")[0].removeprefix("twk_")
    revoked = await client.delete(f"/api/admin/keys/{key_id}", headers=headers)
    assert revoked.status_code == 200 and revoked.json()["revokedAt"]
    client.app.state.key_cache._entries.clear()  # the TTL cache would honour it for AUTH_CACHE_TTL_S more seconds
    assert (await client.get("/api/admin/keys", headers=headers)).status_code == 401
    expired = create_api_key(Settings(), b, scopes=["admin"], name="expired", expires_in=timedelta(seconds=1))
    time.sleep(1.2)
    resp = await client.get("/api/admin/keys", headers={"Authorization": f"Bearer {expired}"})
    assert resp.status_code == 401 and "expired" in resp.json()["error"]["message"]
    stored = pg_module.execute("SELECT secret_sha256 FROM api_keys WHERE key_id=%s", (key_id,)).fetchone()[0]
    assert token.split(".", 1)[1] not in stored and len(stored) == 64  # only a hash is kept


async def test_admin_creates_a_key_whose_token_works_once_shown(client, tenants):
    _, b = tenants
    made = await client.post("/api/admin/keys", headers=auth_headers(b),
                             json={"name": "ui", "scopes": ["capture"], "interviewers": ["dana"]})
    assert made.status_code == 201, made.text
    token = made.json()["token"]
    listed = (await client.get("/api/admin/keys", headers=auth_headers(b))).json()["keys"]
    assert token not in json.dumps(listed) and any(k["keyId"] == made.json()["key"]["keyId"] for k in listed)
    resp = await client.post("/api/interviews/session", headers={"Authorization": f"Bearer {token}"},
                             json={"interviewerId": "dana", "consentRecording": True})
    assert resp.status_code == 201
    bad = await client.post("/api/admin/keys", headers=auth_headers(b), json={"name": "x", "scopes": ["root"]})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_failed"


async def test_jwt_with_issuer_audience_and_scopes(client, tenants):
    a, b = tenants
    key = OctKey.import_key("jwt-test-secret-" + "x" * 32)

    def token(**claims) -> dict[str, str]:
        base = {"iss": "https://issuer.test", "aud": "interviewer-twin", "exp": int(time.time()) + 300,
                "sub": "svc-analytics", "tenant": a.tenant, "scope": "eval"}
        return {"Authorization": f"Bearer {jwt.encode({'alg': 'HS256'}, {**base, **claims}, key)}"}

    ok = await client.get("/api/digital-twin/eval/dana", headers=token())
    assert ok.status_code in (200, 404) and ok.json().get("error", {}).get("code") != "unauthenticated"
    for bad in (token(aud="someone-else"), token(iss="https://evil.test"), token(exp=int(time.time()) - 3600),
                {"Authorization": "Bearer " + jwt.encode({"alg": "HS256"}, {"tenant": a.tenant, "scope": "eval",
                 "exp": int(time.time()) + 60, "iss": "https://issuer.test", "aud": "interviewer-twin"},
                 OctKey.import_key("another-secret-" + "y" * 32))}):
        resp = await client.get("/api/digital-twin/eval/dana", headers=bad)
        assert resp.status_code == 401, resp.text
    wrong_scope = await client.get("/api/digital-twin/eval/dana", headers=token(scope="capture"))
    assert wrong_scope.status_code == 403
    other_tenant = await client.get("/api/digital-twin/eval/dana", headers=token(tenant=b))
    assert other_tenant.status_code == 404


async def test_every_request_is_audited_with_actor_route_resource_and_outcome(client, tenants, read_topic):
    from schemas.topics import AUDIT_RECORDS

    a, b = tenants
    marker = f"audit-{uuid.uuid4().hex[:8]}"
    await client.get(f"/api/interviews/session/{marker}", headers=auth_headers(b))
    await client.get(f"/api/interviews/session/{marker}")  # no credentials
    records = await read_topic(AUDIT_RECORDS, where=lambda r: r.resourceId == marker, count=2, timeout=30)
    by_outcome = {r.outcome: r for r in records}
    assert set(by_outcome) == {"not_found", "unauthenticated"}
    seen = by_outcome["not_found"]
    assert seen.tenant == b and seen.actor.startswith("key:") and seen.action == \
        "GET /api/interviews/session/{session_id}" and seen.resourceType == "session"
    assert by_outcome["unauthenticated"].actor == "anonymous"
