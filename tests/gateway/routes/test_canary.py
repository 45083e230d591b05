"""The canary admin API in-process (real PostgreSQL): start, status, roll back, promote, errors."""

from __future__ import annotations

import json
import uuid

import pytest

from processors.twin.policy import PolicyStats
from processors.twin.profiles import InterviewerProfile, ProfileStore
from processors.twin.style import StyleProfile
from tests.credentials import auth_headers

pytestmark = pytest.mark.usefixtures("postgres_dsn")

URL = "/api/digital-twin/canary/dana"


@pytest.fixture
def versions(postgres_dsn, tenant) -> ProfileStore:
    """dana v1 (active) and v2 (trained without activation) in a fresh tenant."""
    store = ProfileStore(postgres_dsn, ttl_s=0)
    for v in (1, 2):
        store.save(InterviewerProfile(tenant, "dana", v, StyleProfile(), PolicyStats(), {"config": {}}))
    store.activate(tenant, "dana", 1)
    return store


async def test_start_read_and_roll_back(api, versions, tenant, pg):
    admin = auth_headers(tenant, scopes=["admin"])
    started = await api.post(URL, headers=admin, json={"share": 0.2, "minSamples": 7, "scoreMargin": 0.1})
    assert started.status_code == 201, started.text
    body = started.json()
    assert (body["candidateVersion"], body["baselineVersion"], body["share"], body["status"]) == (2, 1, 0.2, "running")
    assert body["minSamples"] == 7 and body["thresholds"]["scoreMargin"] == 0.1 and body["startedBy"].startswith("key:")

    status = await api.get(URL, headers=admin)
    assert status.status_code == 200
    got = status.json()
    assert got["canary"]["canaryId"] == body["canaryId"] and got["history"] == []
    assert got["candidate"] == {"version": 2, "samples": 0, "scored": 0, "meanScore": None, "interventions": 0,
                                "safetyRate": None}

    again = await api.post(URL, headers=admin, json={"share": 0.5})
    assert again.status_code == 409 and again.json()["error"]["code"] == "canary_running"

    rolled = await api.post(f"{URL}/rollback", headers=admin, json={"reason": "a customer complained"})
    assert rolled.status_code == 200, rolled.text
    assert (rolled.json()["status"], rolled.json()["share"], rolled.json()["reason"]) == \
        ("rolled_back", 0.0, "a customer complained")
    actions = [r[0] for r in pg.execute("SELECT action FROM audit_log WHERE tenant=%s AND resource_type='canary'"
                                        " ORDER BY ts", (tenant,))]
    assert actions == ["canary.start", "canary.rollback"]

    nothing = await api.post(f"{URL}/promote", headers=admin)
    assert nothing.status_code == 404 and nothing.json()["error"]["code"] == "no_running_canary"


async def test_promote_makes_the_candidate_active(api, versions, tenant):
    admin = auth_headers(tenant, scopes=["admin"])
    assert (await api.post(URL, headers=admin, json={"share": 0.5, "candidateVersion": 2})).status_code == 201
    promoted = await api.post(f"{URL}/promote", headers=admin)
    assert promoted.status_code == 200 and promoted.json()["status"] == "promoted"
    assert versions.load(tenant, "dana").version == 2
    latest = (await api.get(URL, headers=admin)).json()
    assert latest["canary"]["status"] == "promoted" and latest["canary"]["decidedBy"].startswith("key:")


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"share": 0.5, "candidateVersion": 1}, 409, "version_active"),
    ({"share": 0.5, "candidateVersion": 5}, 404, "unknown_version"),
    ({"share": 0}, 422, "validation_failed"),
    ({"share": 1.2}, 422, "validation_failed"),
    ({"share": 0.5, "minSamples": 0}, 422, "validation_failed"),
    ({"share": 0.5, "surprise": True}, 422, "validation_failed"),
], ids=["active-version", "unknown-version", "zero-share", "share-above-one", "no-samples", "unknown-field"])
async def test_bad_starts_are_refused(api, versions, tenant, body, status, code):
    resp = await api.post(URL, headers=auth_headers(tenant, scopes=["admin"]), json=body)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code


async def test_unknown_interviewer_and_no_canary(api, versions, tenant):
    admin = auth_headers(tenant, scopes=["admin"])
    resp = await api.post("/api/digital-twin/canary/nobody", headers=admin, json={"share": 0.5})
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "unknown_interviewer"
    resp = await api.get(URL, headers=admin)
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "no_canary"


async def test_only_admins_and_only_for_their_interviewers(api, versions, tenant):
    resp = await api.post(URL, headers=auth_headers(tenant, scopes=["train", "eval"]), json={"share": 0.5})
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "insufficient_scope"
    limited = auth_headers(tenant, scopes=["admin"], interviewers=["someone-else"])
    resp = await api.post(URL, headers=limited, json={"share": 0.5})
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "interviewer_forbidden"


async def test_the_cli_runs_the_same_operations(versions, tenant, pg):
    from typer.testing import CliRunner

    from infra.cli import app

    runner = CliRunner()
    out = runner.invoke(app, ["canary", "start", "dana", "-t", tenant, "--share", "0.3", "--min-samples", "5",
                              "--json"])
    assert out.exit_code == 0, out.output
    started = json.loads(out.stdout)
    assert started["candidateVersion"] == 2 and started["startedBy"].startswith("cli:")
    status = runner.invoke(app, ["canary", "status", "dana", "-t", tenant])
    assert status.exit_code == 0 and "running" in status.stdout and "v2" in status.stdout
    dry = runner.invoke(app, ["canary", "evaluate", "dana", "-t", tenant, "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)[0]["decision"]["action"] == "wait"
    rolled = runner.invoke(app, ["canary", "rollback", "dana", "-t", tenant, "--reason", "manual"])
    assert rolled.exit_code == 0 and "rolled_back" in rolled.stdout
    again = runner.invoke(app, ["canary", "rollback", "dana", "-t", tenant])
    assert again.exit_code == 1 and "no running canary" in again.output
    listed = runner.invoke(app, ["canary", "status", "-t", tenant, "--json"])
    assert [c["status"] for c in json.loads(listed.stdout)] == ["rolled_back"]
    assert pg.execute("SELECT actor FROM audit_log WHERE tenant=%s AND action='canary.rollback'",
                      (tenant,)).fetchone()[0].startswith("cli:")
    assert uuid.UUID(started["canaryId"])
