"""/api/admin/config: layers, precedence, merge patches, validation, versions, tenancy and scopes; a write
reaches a worker-side ConfigStore (same Redis) on its very next read."""

from __future__ import annotations

import pytest

from infra.settings import Settings
from processors.twin.config import ConfigStore
from tests.credentials import auth_headers

URL = "/api/admin/config"


@pytest.fixture
def owner(tenant, pg) -> str:
    """A tenant with two known interviewers."""
    pg.execute("INSERT INTO tenants (tenant, name) VALUES (%s, %s)", (tenant, tenant))
    for iid in ("dana", "lee"):
        pg.execute("INSERT INTO interviewers (tenant, interviewer_id) VALUES (%s, %s)", (tenant, iid))
    return tenant


async def test_layers_merge_tenant_then_interviewer_and_say_where_each_value_comes_from(api, owner):
    h = auth_headers(owner)
    empty = await api.get(f"{URL}/tenant", headers=h)
    assert empty.status_code == 200 and empty.json()["version"] == 0 and empty.json()["config"]["flags"] == {
        "tools": None, "disabledTools": None, "guardrails": None, "generator": None, "adapters": None}
    put = await api.put(f"{URL}/tenant", headers=h, json={
        "controls": {"verbosity": "terse", "challengeLevel": 0.4}, "prohibitedTopics": ["salary"],
        "companyGuidelines": ["Never promise an offer."], "flags": {"tools": False, "generator": "offline"}})
    assert put.status_code == 200, put.text
    assert put.json()["version"] == 1 and put.headers["etag"] == '"1"' and put.json()["live"] is True
    assert put.json()["updatedBy"].startswith("key:")
    mine = await api.put(f"{URL}/interviewers/dana", headers=h, json={
        "controls": {"challengeLevel": 0.9}, "prohibitedTopics": ["visa"], "flags": {"tools": True}})
    assert mine.status_code == 200 and mine.json()["interviewerId"] == "dana"

    eff = (await api.get(f"{URL}/interviewers/dana/effective", headers=h)).json()
    assert eff["controls"]["verbosity"] == "terse" and eff["sources"]["controls.verbosity"] == "tenant"
    assert eff["controls"]["challengeLevel"] == 0.9 and eff["sources"]["controls.challengeLevel"] == "interviewer"
    assert eff["flags"]["tools"] is True and eff["flags"]["generator"] == "offline"
    assert eff["prohibitedTopics"] == ["salary", "visa"] and eff["companyGuidelines"] == ["Never promise an offer."]
    assert eff["versions"] == {"tenant": 1, "interviewer": 1, "profile": 0} and eff["version"] == "t1.i1.p0"
    # lee has no layer of their own: the tenant's applies.
    lee = (await api.get(f"{URL}/interviewers/lee/effective", headers=h)).json()
    assert lee["flags"]["tools"] is False and lee["prohibitedTopics"] == ["salary"]
    tenant_eff = (await api.get(f"{URL}/tenant/effective", headers=h)).json()
    assert tenant_eff["interviewerId"] is None and tenant_eff["controls"]["challengeLevel"] == 0.4


async def test_patch_is_a_merge_patch_and_delete_resets(api, owner):
    h = auth_headers(owner)
    await api.put(f"{URL}/interviewers/dana", headers=h, json={"controls": {"verbosity": "terse", "tone": "warm"},
                                                                "flags": {"tools": False}})
    patched = await api.patch(f"{URL}/interviewers/dana", headers={**h, "content-type": "application/merge-patch+json"},
                              json={"controls": {"tone": None, "challengeLevel": 0.2}, "flags": {"disabledTools": [
                                  "run_code"]}})
    assert patched.status_code == 200, patched.text
    config = patched.json()["config"]
    assert config["controls"]["tone"] is None and config["controls"]["verbosity"] == "terse"
    assert config["controls"]["challengeLevel"] == 0.2 and config["flags"]["disabledTools"] == ["run_code"]
    assert config["flags"]["tools"] is False and patched.json()["version"] == 2
    gone = await api.delete(f"{URL}/interviewers/dana", headers=h)
    assert gone.status_code == 200 and gone.json()["version"] == 0
    got = await api.get(f"{URL}/interviewers/dana", headers=h)
    assert got.json()["version"] == 0 and got.json()["config"]["controls"]["verbosity"] is None


@pytest.mark.parametrize("method, body, where", [
    ("put", {"controls": {"challengeLevel": 2}}, "controls.challengeLevel"),
    ("put", {"controls": {"verbosity": "chatty"}}, "controls.verbosity"),
    ("put", {"flags": {"generator": "gpt-5"}}, "flags.generator"),
    ("put", {"flags": {"disabledTools": ["shell"]}}, "flags.disabledTools.0"),
    ("put", {"featureX": True}, "featureX"),
    ("patch", {"controls": {"coachingRatio": -1}}, "controls.coachingRatio"),
    ("patch", {"flags": {"generator": "gpt-9"}}, "flags.generator"),
    ("patch", {"prohibitedTopics": "salary"}, "prohibitedTopics"),  # a list, not a string
])
async def test_invalid_config_is_a_422_naming_the_field(api, owner, method, body, where):
    h = auth_headers(owner)
    resp = await getattr(api, method)(f"{URL}/interviewers/dana", headers=h, json=body)
    assert resp.status_code == 422, resp.text
    err = resp.json()["error"]
    assert err["code"] == "validation_failed" and err["message"].startswith(where)
    assert any(".".join(str(p) for p in d["loc"][1:]) == where for d in err["details"]), err["details"]
    # Nothing was stored.
    assert (await api.get(f"{URL}/interviewers/dana", headers=h)).json()["version"] == 0


async def test_if_match_refuses_a_write_over_someone_elses_change(api, owner):
    h = auth_headers(owner)
    first = await api.put(f"{URL}/tenant", headers=h, json={"flags": {"tools": False}})
    etag = first.headers["etag"]
    assert (await api.patch(f"{URL}/tenant", headers={**h, "If-Match": etag}, json={"flags": {"adapters": False}})
            ).status_code == 200
    stale = await api.patch(f"{URL}/tenant", headers={**h, "If-Match": etag}, json={"flags": {"tools": True}})
    assert stale.status_code == 412 and stale.json()["error"]["code"] == "version_conflict"
    assert stale.json()["error"]["details"] == [{"version": 2, "ifMatch": 1}]
    bad = await api.put(f"{URL}/tenant", headers={**h, "If-Match": "yesterday"}, json={})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_if_match"


async def test_other_tenants_and_unknown_interviewers_are_404_and_untouched(api, owner):
    stranger = f"{owner}-b"
    hb = auth_headers(stranger)
    await api.put(f"{URL}/interviewers/dana", headers=auth_headers(owner), json={"prohibitedTopics": ["secret-a"]})
    for method, kwargs in (("get", {}), ("put", {"json": {"flags": {"tools": False}}}),
                           ("patch", {"json": {"flags": {"tools": False}}}), ("delete", {})):
        resp = await getattr(api, method)(f"{URL}/interviewers/dana", headers=hb, **kwargs)
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "unknown_interviewer", resp.text
        assert "secret-a" not in resp.text
    eff = await api.get(f"{URL}/interviewers/dana/effective", headers=hb)
    assert eff.status_code == 404
    # B's own tenant layer is B's: writing it changes nothing of A's.
    assert (await api.put(f"{URL}/tenant", headers=hb, json={"flags": {"tools": False}})).status_code == 200
    a = (await api.get(f"{URL}/interviewers/dana/effective", headers=auth_headers(owner))).json()
    assert a["prohibitedTopics"] == ["secret-a"] and a["flags"]["tools"] is True
    nobody = await api.get(f"{URL}/interviewers/nobody", headers=auth_headers(owner))
    assert nobody.status_code == 404


async def test_credentials_and_the_admin_scope_are_required(api, owner):
    assert (await api.get(f"{URL}/tenant")).status_code == 401
    no_admin = auth_headers(owner, scopes=["capture", "respond", "train", "eval", "rater"])
    for method, path in (("get", "/tenant"), ("put", "/tenant"), ("patch", "/interviewers/dana"),
                         ("get", "/interviewers/dana/effective")):
        kwargs = {"json": {}} if method in ("put", "patch") else {}
        resp = await getattr(api, method)(f"{URL}{path}", headers=no_admin, **kwargs)
        assert resp.status_code == 403 and resp.json()["error"]["code"] == "insufficient_scope", (path, resp.text)
    only_lee = auth_headers(owner, scopes=["admin"], interviewers=["lee"])
    resp = await api.put(f"{URL}/interviewers/dana", headers=only_lee, json={})
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "interviewer_forbidden"
    assert (await api.put(f"{URL}/interviewers/lee", headers=only_lee, json={})).status_code == 200


async def test_a_write_through_the_api_invalidates_a_workers_cached_config(api, owner, cfg):
    worker = ConfigStore.from_settings(Settings())  # the gateway and workers share REDIS_KEY_PREFIX
    try:
        assert worker.effective(owner, "dana").controls.verbosity == "normal"
        assert worker.effective(owner, "dana").controls.verbosity == "normal"
        assert worker.stats["hits"] == 1
        resp = await api.patch(f"{URL}/interviewers/dana", headers=auth_headers(owner),
                               json={"controls": {"verbosity": "terse"}})
        assert resp.status_code == 200 and resp.json()["live"] is True
        assert worker.effective(owner, "dana").controls.verbosity == "terse"
    finally:
        worker.close()
